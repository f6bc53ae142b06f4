import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { DiffResult } from "@outpost/protocol";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DiffService } from "../../provider-agent/src/services/diff.js";
import { git as gitIn } from "../lib/workspace-files.js";
import { snapshot, tempDir } from "./helpers.js";

let base: { dir: string; cleanup: () => Promise<void> };
let ws: string;
let baseDir: string;

beforeEach(async () => {
  base = await tempDir();
  ws = path.join(base.dir, "ws");
  baseDir = path.join(base.dir, "state", "env_test-base");
  await mkdir(ws);
});
afterEach(() => base.cleanup());

const git = (...args: string[]) => gitIn(ws, ...args);
const put = async (rel: string, data: string | Buffer) => {
  await mkdir(path.dirname(path.join(ws, rel)), { recursive: true });
  await writeFile(path.join(ws, rel), data);
};
const lines = (n: number, tag: string) => Array.from({ length: n }, (_, i) => `${tag} line ${i}`).join("\n") + "\n";
const service = () => new DiffService({ workspace: ws, baseDir });
const summary = (r: DiffResult) => r.files.map((f) => [f.path, f.status, ...(f.from ? [f.from] : [])]);
const byPath = (r: DiffResult, p: string) => r.files.find((f) => f.path === p);

describe("diff in a git repository", () => {
  beforeEach(async () => {
    git("init", "-q", "-b", "main");
    await put("modified.txt", lines(10, "m"));
    await put("deleted.txt", "going away\n");
    await put("staged-old.txt", lines(20, "staged rename"));
    await put("moved-src.txt", lines(5, "moved without git"));
    await put("image.bin", Buffer.from([0, 1, 2, 3, 0, 255]));
    await put("big.txt", lines(2000, "big"));
    await put("with space [x].txt", "one\n");
    await put("same.txt", "unchanged\n");
    git("add", "-A");
    git("commit", "-q", "-m", "base");

    await put("modified.txt", lines(10, "m").replace("m line 4\n", "m line four\n"));
    await rm(path.join(ws, "deleted.txt"));
    git("mv", "staged-old.txt", "staged-new.txt");
    await rename(path.join(ws, "moved-src.txt"), path.join(ws, "moved-dst.txt"));
    await put("untracked/new.txt", "brand new\n");
    await put("image.bin", Buffer.from([0, 9, 9, 9, 0, 255]));
    await put("big.txt", lines(2000, "BIG"));
    await put("with space [x].txt", "two\n");
  });

  it("lists modified, added, deleted and renamed files against HEAD, sorted, without .git", async () => {
    const r = DiffResult.parse(await service().diff({ maxFileBytes: 4096 }));
    expect(r.base).toBe("git");
    expect(summary(r)).toEqual([
      ["big.txt", "modified"],
      ["deleted.txt", "deleted"],
      ["image.bin", "modified"],
      ["modified.txt", "modified"],
      ["moved-dst.txt", "renamed", "moved-src.txt"],
      ["staged-new.txt", "renamed", "staged-old.txt"],
      ["untracked/new.txt", "added"],
      ["with space [x].txt", "modified"],
    ]);
    expect(r.files.some((f) => f.path.startsWith(".git"))).toBe(false);
    // The snapshot base is not used (nor recorded) for a git workspace.
    expect(existsSync(baseDir)).toBe(false);
  });

  it("gives unified diffs per file, flags binaries and truncates at maxFileBytes", async () => {
    const r = await service().diff({ maxFileBytes: 4096 });
    const modified = byPath(r, "modified.txt");
    expect(modified).toMatchObject({ binary: false });
    expect(modified?.truncated).toBeUndefined();
    expect(modified?.diff).toContain("--- a/modified.txt\n+++ b/modified.txt\n");
    expect(modified?.diff).toContain("-m line 4\n+m line four\n");
    expect(byPath(r, "untracked/new.txt")?.diff).toContain("+brand new\n");
    expect(byPath(r, "deleted.txt")?.diff).toContain("-going away\n");
    expect(byPath(r, "with space [x].txt")?.diff).toContain("-one\n+two\n");
    expect(byPath(r, "staged-new.txt")?.diff).toContain("rename from staged-old.txt");
    expect(byPath(r, "moved-dst.txt")?.diff).toContain("rename to moved-dst.txt");
    const image = byPath(r, "image.bin");
    expect(image).toMatchObject({ binary: true });
    expect(image?.diff).toBeUndefined();
    const big = byPath(r, "big.txt");
    expect(big).toMatchObject({ binary: false, truncated: true });
    expect(Buffer.byteLength(big?.diff ?? "")).toBeLessThanOrEqual(4096);
    expect(big?.diff?.endsWith("\n")).toBe(true);
  });

  it("leaves the repository untouched (no index refresh, no lock)", async () => {
    const before = await readFile(path.join(ws, ".git/index"));
    await service().diff({});
    expect(await readFile(path.join(ws, ".git/index"))).toEqual(before);
    expect(existsSync(path.join(ws, ".git/index.lock"))).toBe(false);
  });

  it("works in a repository without commits (base: the empty tree)", async () => {
    await rm(path.join(ws, ".git"), { recursive: true, force: true });
    git("init", "-q");
    git("add", "modified.txt");
    const r = await service().diff({});
    expect(r.base).toBe("git");
    expect(byPath(r, "modified.txt")).toMatchObject({ status: "added" });
    expect(byPath(r, "untracked/new.txt")).toMatchObject({ status: "added" });
  });
});

describe("diff against the snapshot base (no git)", () => {
  beforeEach(async () => {
    await put("keep.txt", "keep\n");
    await put("edit.txt", lines(30, "edit"));
    await put("remove.txt", "remove me\n");
    await put("nested/deep.txt", "deep\n");
    await put("blob.bin", Buffer.from([0, 1, 2, 3]));
    await put("huge.txt", lines(20_000, "huge")); // over the 256 KiB copy cap
    await put("touched.txt", "same content\n");
  });

  it("records the base outside the workspace and leaves the workspace untouched", async () => {
    const before = await snapshot(ws);
    await service().prepare();
    expect(await snapshot(ws)).toEqual(before);
    expect(await readdir(baseDir)).toEqual(expect.arrayContaining(["manifest.json", "content"]));
    const manifest = JSON.parse(await readFile(path.join(baseDir, "manifest.json"), "utf8")) as { files: Record<string, unknown> };
    expect(Object.keys(manifest.files).sort()).toEqual(["blob.bin", "edit.txt", "huge.txt", "keep.txt", "nested/deep.txt", "remove.txt", "touched.txt"]);
    expect((await service().diff({})).files).toEqual([]);
  });

  it("reports added, modified and deleted files with in-process unified diffs", async () => {
    await service().prepare();
    await put("edit.txt", lines(30, "edit").replace("edit line 7\n", "edit line seven\n"));
    await rm(path.join(ws, "remove.txt"));
    await put("nested/new.txt", "fresh\n");
    await put("blob.bin", Buffer.from([0, 9, 9]));
    await put("huge.txt", lines(20_000, "HUGE"));
    // Same content, new mtime: not a change.
    const later = new Date(Date.now() + 60_000);
    await utimes(path.join(ws, "touched.txt"), later, later);
    // A repository nested somewhere inside is never part of the diff.
    await put("vendor/.git/HEAD", "ref: refs/heads/main\n");

    // A new service (as after an agent restart) diffs against the same recorded base.
    const r = DiffResult.parse(await service().diff({}));
    expect(r.base).toBe("snapshot");
    expect(summary(r)).toEqual([
      ["blob.bin", "modified"],
      ["edit.txt", "modified"],
      ["huge.txt", "modified"],
      ["nested/new.txt", "added"],
      ["remove.txt", "deleted"],
    ]);
    expect(byPath(r, "edit.txt")?.diff).toBe(
      "--- a/edit.txt\n+++ b/edit.txt\n@@ -5,7 +5,7 @@\n edit line 4\n edit line 5\n edit line 6\n-edit line 7\n+edit line seven\n edit line 8\n edit line 9\n edit line 10\n",
    );
    expect(byPath(r, "nested/new.txt")?.diff).toBe("--- /dev/null\n+++ b/nested/new.txt\n@@ -0,0 +1 @@\n+fresh\n");
    expect(byPath(r, "remove.txt")?.diff).toBe("--- a/remove.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-remove me\n");
    expect(byPath(r, "blob.bin")).toMatchObject({ binary: true });
    expect(byPath(r, "blob.bin")?.diff).toBeUndefined();
    expect(byPath(r, "huge.txt")).toMatchObject({ binary: false, truncated: true });
  });

  it("cuts a diff at maxFileBytes", async () => {
    await service().prepare();
    await put("edit.txt", lines(30, "EDIT"));
    const edit = byPath(await service().diff({ maxFileBytes: 300 }), "edit.txt");
    expect(edit).toMatchObject({ status: "modified", truncated: true });
    expect(Buffer.byteLength(edit?.diff ?? "")).toBeLessThanOrEqual(300);
    expect(edit?.diff?.startsWith("--- a/edit.txt\n")).toBe(true);
  });

  it("refuses a base directory inside the workspace", async () => {
    await expect(new DiffService({ workspace: ws, baseDir: path.join(ws, ".outpost-base") }).prepare()).rejects.toMatchObject({ code: "invalid_state" });
    expect(existsSync(path.join(ws, ".outpost-base"))).toBe(false);
  });
});
