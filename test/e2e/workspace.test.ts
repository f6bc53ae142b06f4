/**
 * The workspace services through the whole path (HTTP → Worker → Durable Object → real agent):
 * file operations, the diff against git HEAD or against the workspace as first seen, stdin and
 * shell mode, and the agent's health reports on the environment.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEnvironment } from "./environments.js";
import { expectProblem, startHarness, type Harness } from "./helpers.js";

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

const serve = (name: string, prepare: (workspace: string) => void = () => {}) => startEnvironment(h, name, { prepare, agent: { extraArgs: ["--health-interval-ms", "300"] } });

const json = async <T,>(res: Response): Promise<T> => {
  if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
  return (await res.json()) as T;
};

describe("file operations", () => {
  it("mkdir, list, stat, copy, move and recursive delete, each on disk", async () => {
    const { id, workspace } = await serve("fileops");
    const e = `/v1/environments/${id}`;
    await json(await h.admin.request("POST", `${e}/files/mkdir`, { json: { path: "a/b", recursive: true } }));
    await h.admin.writeFile(id, "a/b/one.txt", "one\n");
    const stat = await json<{ type: string; size: number }>(await h.admin.request("GET", `${e}/files/stat?path=a/b/one.txt`));
    expect(stat).toMatchObject({ type: "file", size: 4 });
    await json(await h.admin.request("POST", `${e}/files/copy`, { json: { from: "a", to: "c" } }));
    expect(readFileSync(join(workspace, "c/b/one.txt"), "utf8")).toBe("one\n");
    await expectProblem(await h.admin.request("POST", `${e}/files/copy`, { json: { from: "a", to: "c" } }), 409);
    await json(await h.admin.request("POST", `${e}/files/move`, { json: { from: "c/b/one.txt", to: "moved.txt" } }));
    expect(readFileSync(join(workspace, "moved.txt"), "utf8")).toBe("one\n");
    const list = await json<{ entries: Array<{ path: string; type: string }>; truncated: boolean }>(await h.admin.request("GET", `${e}/files/list?path=.&recursive=true`));
    expect(list.entries.map((x) => x.path).sort()).toEqual(["a", "a/b", "a/b/one.txt", "c", "c/b", "moved.txt"]);
    expect(list.truncated).toBe(false);
    await json(await h.admin.request("DELETE", `${e}/files?path=a&recursive=true`));
    await expectProblem(await h.admin.request("GET", `${e}/files/stat?path=a`), 404, "not_found");
    await expectProblem(await h.admin.request("POST", `${e}/files/move`, { json: { from: "moved.txt", to: "../escape.txt" } }), 400, "invalid_path");
  });
});

describe("diff", () => {
  it("against git HEAD: modified, added, deleted, binary", async () => {
    const { id, workspace } = await serve("gitdiff", (w) => {
      const git = (...args: string[]) => execFileSync("git", ["-C", w, ...args], { stdio: "pipe" });
      git("init", "-q");
      writeFileSync(join(w, "keep.txt"), "a\nb\nc\n");
      writeFileSync(join(w, "gone.txt"), "bye\n");
      git("add", ".");
      git("-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qm", "base");
    });
    writeFileSync(join(workspace, "keep.txt"), "a\nB\nc\n");
    writeFileSync(join(workspace, "new.txt"), "hello\n");
    writeFileSync(join(workspace, "blob.bin"), Buffer.from([0, 1, 2, 0, 255]));
    execFileSync("rm", [join(workspace, "gone.txt")]);
    const d = await json<{ base: string; files: Array<{ path: string; status: string; binary: boolean; diff?: string }> }>(await h.admin.request("GET", `/v1/environments/${id}/diff`));
    expect(d.base).toBe("git");
    const by = Object.fromEntries(d.files.map((f) => [f.path, f]));
    expect(by["keep.txt"]).toMatchObject({ status: "modified", binary: false });
    expect(by["keep.txt"]!.diff).toContain("-b\n+B");
    expect(by["new.txt"]).toMatchObject({ status: "added" });
    expect(by["gone.txt"]).toMatchObject({ status: "deleted" });
    expect(by["blob.bin"]).toMatchObject({ status: "added", binary: true });
  });

  it("in a plain directory, against the workspace as the agent first saw it", async () => {
    const { id, workspace } = await serve("plaindiff", (w) => writeFileSync(join(w, "first.txt"), "1\n2\n"));
    // The agent records its base at start; wait until an empty diff proves it has.
    await expect.poll(async () => (await json<{ files: unknown[] }>(await h.admin.request("GET", `/v1/environments/${id}/diff`))).files, { timeout: 10_000 }).toEqual([]);
    writeFileSync(join(workspace, "first.txt"), "1\ntwo\n");
    writeFileSync(join(workspace, "second.txt"), "x\n");
    const d = await json<{ base: string; files: Array<{ path: string; status: string; diff?: string }> }>(await h.admin.request("GET", `/v1/environments/${id}/diff`));
    expect(d.base).toBe("snapshot");
    expect(d.files.map((f) => [f.path, f.status]).sort()).toEqual([["first.txt", "modified"], ["second.txt", "added"]]);
    expect(d.files.find((f) => f.path === "first.txt")!.diff).toContain("-2\n+two");
  });
});

describe("exec details and health", () => {
  it("stdin reaches the command; shell mode runs one command line; argv never goes through a shell", async () => {
    const { id } = await serve("execx");
    const withStdin = await h.admin.exec(id, { command: ["wc", "-c"], stdin: Buffer.from("12345").toString("base64") });
    expect(withStdin.stdout.trim()).toBe("5");
    const shell = await h.admin.exec(id, { command: ["echo a; echo b | tr b c"], shell: true });
    expect(shell.stdout).toBe("a\nc\n");
    const argv = await h.admin.exec(id, { command: ["echo", "a; rm -rf x", "$(id)"] });
    expect(argv.stdout).toBe("a; rm -rf x $(id)\n");
    await expectProblem(await h.admin.request("POST", `/v1/environments/${id}/exec`, { json: { command: ["echo", "x"], shell: true } }), 400);
  });

  it("health reports show on the environment", async () => {
    const { id } = await serve("healthy");
    await expect
      .poll(async () => (await json<{ environment: { health: unknown } }>(await h.admin.request("GET", `/v1/environments/${id}`))).environment.health, { timeout: 10_000 })
      .not.toBeNull();
    const env = await json<{ environment: { health: { processes: number; disk: { freeBytes: number }; memory: { agentRssBytes: number } } } }>(await h.admin.request("GET", `/v1/environments/${id}`));
    expect(env.environment.health.processes).toBeGreaterThan(0);
    expect(env.environment.health.disk.freeBytes).toBeGreaterThan(0);
    expect(env.environment.health.memory.agentRssBytes).toBeGreaterThan(1_000_000);
  });
});
