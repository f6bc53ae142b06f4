/**
 * Paths from the API never reach outside the workspace: bad paths are refused by the Worker
 * (400), and symlinks inside the workspace that lead outside are refused by the agent.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { filesPath } from "../../scripts/lib/api.js";
import { connectAgent } from "./environments.js";
import { expectProblem, startHarness, type Harness } from "./helpers.js";

let h: Harness;
let id = "";
let parent = "";
let workspace = "";
const outsideDir = () => join(parent, "outside");
const secretFile = () => join(outsideDir(), "secret.txt");
const SECRET = "not for the agent\n";

/** Every entry under the workspace's parent that is not inside the workspace, with file contents. */
function outsideSnapshot(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of readdirSync(parent, { recursive: true }) as string[]) {
    const rel = relative(parent, join(parent, entry));
    if (rel === "workspace" || rel.startsWith(`workspace/`)) continue;
    const full = join(parent, entry);
    const st = statSync(full);
    out[rel] = st.isDirectory() ? "<dir>" : `${readFileSync(full, "base64")} ${st.mtimeMs}`;
  }
  return out;
}

beforeAll(async () => {
  h = await startHarness();
  const created = await h.admin.createEnvironment({ name: "paths", provider: "local" });
  id = created.environment.id;
  ({ parent, workspace } = await h.workspace());
  mkdirSync(outsideDir());
  writeFileSync(secretFile(), SECRET);
  await connectAgent(h, id, created.agentToken, workspace);
  // Symlinks inside the workspace that lead out of it: to a directory, and to a file.
  symlinkSync("../outside", join(workspace, "link"));
  symlinkSync(secretFile(), join(workspace, "secret-link"));
  writeFileSync(join(workspace, "inside.txt"), "inside\n");
});
afterAll(async () => {
  await h?.close();
});

describe("paths that leave the workspace", () => {
  const bad: Array<[string, string]> = [
    ["parent traversal", "../x"],
    ["deeper traversal", "a/../../outside/secret.txt"],
    ["absolute", "/tmp/outpost-e2e-absolute"],
    ["absolute into the parent", "/PARENT/escaped.txt"],
    ["NUL byte", "a\u0000b"],
    ["backslash", "..\\x"],
    ["empty", ""],
  ];

  it.each(bad)("%s (%j) is refused with 400 for GET, PUT and DELETE, and nothing is created outside", async (_what, raw) => {
    const path = raw.replace("/PARENT", parent);
    const before = outsideSnapshot();
    await expectProblem(await h.admin.request("GET", filesPath(id, path)), 400, "invalid_path");
    await expectProblem(await h.admin.request("PUT", filesPath(id, path), { body: "escaped" }), 400, "invalid_path");
    await expectProblem(await h.admin.request("DELETE", filesPath(id, path)), 400, "invalid_path");
    expect(outsideSnapshot()).toEqual(before);
    expect(readdirSync(parent).sort()).toEqual(["outside", "workspace"]);
    if (path.startsWith("/")) expect(existsSync(path)).toBe(false);
    expect(readFileSync(secretFile(), "utf8")).toBe(SECRET);
  });

  it("a missing ?path= is refused with 400", async () => {
    await expectProblem(await h.admin.request("GET", `/v1/environments/${id}/files`), 400, "invalid_path");
  });

  it("exec refuses a cwd outside the workspace (.., absolute)", async () => {
    for (const cwd of ["..", "../outside", parent]) {
      await expectProblem(await h.admin.request("POST", `/v1/environments/${id}/exec`, { json: { command: ["pwd"], cwd } }), 400);
    }
  });
});

describe("symlinks inside the workspace that point outside", () => {
  it("GET through a directory symlink or a file symlink is refused (4xx) and reveals nothing", async () => {
    for (const path of ["link/secret.txt", "secret-link"]) {
      const res = await h.admin.request("GET", filesPath(id, path));
      const body = await expectProblem(res, (s) => s >= 400 && s < 500);
      expect(body.detail).not.toContain(SECRET.trim());
    }
  });

  it("PUT through them is refused (4xx); the outside file is untouched and no new file appears outside", async () => {
    const before = outsideSnapshot();
    for (const path of ["link/secret.txt", "link/new.txt", "secret-link", "link/sub/deeper.txt"]) {
      await expectProblem(await h.admin.request("PUT", filesPath(id, path), { body: "overwritten" }), (s) => s >= 400 && s < 500);
    }
    expect(outsideSnapshot()).toEqual(before);
    expect(readFileSync(secretFile(), "utf8")).toBe(SECRET);
  });

  it("DELETE through a directory symlink is refused and the outside file stays", async () => {
    await expectProblem(await h.admin.request("DELETE", filesPath(id, "link/secret.txt")), (s) => s >= 400 && s < 500);
    expect(readFileSync(secretFile(), "utf8")).toBe(SECRET);
  });

  it("exec refuses a cwd through the symlink", async () => {
    await expectProblem(await h.admin.request("POST", `/v1/environments/${id}/exec`, { json: { command: ["pwd"], cwd: "link" } }), (s) => s >= 400 && s < 500);
  });

  it("ordinary files beside the symlinks still work", async () => {
    expect((await h.admin.readFile(id, "inside.txt")).toString("utf8")).toBe("inside\n");
  });
});
