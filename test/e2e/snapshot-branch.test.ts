/**
 * A branch ready for a pull request, through the whole path (HTTP → Worker → Durable Object →
 * agent): `outpost/<thread>` in the environment's own repository, rooted at the user's HEAD, one
 * commit with the snapshot's files and a message from the narrative; the user's work tree, index
 * and HEAD byte-identical afterwards; the same name again is a 409. Also into another environment
 * (the snapshot is fetched into its shadow repository first).
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { lstat, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectProblem, startHarness, unlessExited, type Harness } from "./helpers.js";

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

const gitEnv = { ...process.env, GIT_CONFIG_NOSYSTEM: "1", GIT_AUTHOR_NAME: "u", GIT_AUTHOR_EMAIL: "u@e", GIT_COMMITTER_NAME: "u", GIT_COMMITTER_EMAIL: "u@e" };
const git = (cwd: string, ...args: string[]) => execFileSync("git", ["-C", cwd, ...args], { stdio: "pipe", env: gitEnv }).toString();

/** The user's work tree (every file but .git), index and HEAD, byte for byte. */
async function userState(w: string) {
  const files: Record<string, string> = {};
  for (const name of (await readdir(w, { recursive: true })).sort()) {
    if (/^\.git(\/|$)/.test(name)) continue;
    const st = await lstat(join(w, name));
    if (st.isFile()) files[name] = `${st.mode}:${st.mtimeMs}:${createHash("sha256").update(await readFile(join(w, name))).digest("hex")}`;
  }
  return { files, index: readFileSync(join(w, ".git", "index")).toString("hex"), head: readFileSync(join(w, ".git", "HEAD"), "utf8"), commit: git(w, "rev-parse", "HEAD").trim() };
}

async function serve(name: string, prepare: (w: string) => void) {
  const created = await h.admin.createEnvironment({ name, provider: "local" });
  const { workspace } = await h.workspace();
  mkdirSync(workspace, { recursive: true });
  prepare(workspace);
  const agent = h.agent({ token: created.agentToken, workspace });
  await h.admin.waitForEnvironment(created.environment.id, (e) => e.state === "running" && e.connected, { timeoutMs: 30_000, failIf: unlessExited(agent) });
  return { id: created.environment.id, workspace };
}

const userRepo = (w: string) => {
  git(w, "init", "-q", "-b", "main");
  writeFileSync(join(w, "README.md"), "# app\n");
  writeFileSync(join(w, "app.ts"), "export const v = 1;\n");
  git(w, "add", ".");
  git(w, "commit", "-qm", "user's base");
};

describe("a branch ready for a pull request", () => {
  it("outpost/<thread> on the user's HEAD with the snapshot's changes as one commit; the user's tree, index and HEAD untouched; 409 when it exists", async () => {
    const A = await serve("pr-a", (w) => {
      userRepo(w);
      writeFileSync(join(w, "app.ts"), "export const v = 2;\n");
      mkdirSync(join(w, "lib"));
      writeFileSync(join(w, "lib", "util.ts"), "export const u = 1;\n");
      git(w, "add", "lib/util.ts"); // staged, so the index has something of the user's own
    });
    const objective = await h.admin.createObjective({ title: "faster startup" });
    const thread = await h.admin.createThread({ objectiveId: objective.id, title: "lazy loading" });
    const snapshot = await h.admin.createSnapshot({ environment: A.id, threadId: thread.id, message: "Load modules lazily" });
    const before = await userState(A.workspace);

    const { branch } = await h.admin.branchSnapshot(snapshot.id, { environment: A.id });
    expect(branch).toMatchObject({ branch: `outpost/${thread.id}`, base: before.commit, environmentId: A.id });
    expect(branch.changed.sort()).toEqual(["app.ts", "lib/util.ts"]);
    expect(await userState(A.workspace)).toEqual(before);
    const log = git(A.workspace, "log", "--format=%H %P %s", `main..outpost/${thread.id}`).trim().split("\n");
    expect(log).toEqual([`${branch.commit} ${before.commit} Load modules lazily`]);
    const message = git(A.workspace, "log", "-1", "--format=%B", `outpost/${thread.id}`);
    expect(message).toContain("Objective: faster startup");
    expect(message).toContain(`Outpost-Snapshot: ${snapshot.id}`);
    expect(git(A.workspace, "show", `outpost/${thread.id}:app.ts`)).toBe("export const v = 2;\n");
    expect(git(A.workspace, "show", `outpost/${thread.id}:lib/util.ts`)).toBe("export const u = 1;\n");
    expect(git(A.workspace, "diff", "--name-only", `main`, `outpost/${thread.id}`).trim().split("\n").sort()).toEqual(["app.ts", "lib/util.ts"]);

    const again = await h.admin.request("POST", `/v1/snapshots/${snapshot.id}/branch`, { json: { environment: A.id } });
    const problem = await expectProblem(again, 409, "conflict");
    expect(problem.detail).toMatch(/already exists/);
    await expectProblem(await h.admin.request("POST", `/v1/snapshots/${snapshot.id}/branch`, { json: { environment: A.id, name: "../escape" } }), 400, "bad_request");
    expect(await userState(A.workspace)).toEqual(before);

    // Into another environment's repository (its own HEAD), under a chosen name.
    const B = await serve("pr-b", userRepo);
    const beforeB = await userState(B.workspace);
    const { branch: inB } = await h.admin.branchSnapshot(snapshot.id, { environment: B.id, name: "lazy-loading" });
    expect(inB).toMatchObject({ branch: "outpost/lazy-loading", base: beforeB.commit, environmentId: B.id });
    expect(await userState(B.workspace)).toEqual(beforeB);
    expect(git(B.workspace, "rev-list", "--count", "main..outpost/lazy-loading").trim()).toBe("1");
    expect(git(B.workspace, "show", "outpost/lazy-loading:lib/util.ts")).toBe("export const u = 1;\n");
  }, 180_000);
});
