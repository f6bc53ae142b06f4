/**
 * The shadow git service on real files and a real git: snapshots as commits on thread refs, the
 * user's own repository left byte-for-byte alone, bundles (full and incremental) and archives
 * carried into another workspace with each strategy, and damaged bundles refused before the
 * workspace changes.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { readdir } from "node:fs/promises";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { timeOrderedId, type BundleFormat, type ImportStrategy } from "@outpost/protocol";
import { AgentError } from "../../provider-agent/src/errors.js";
import { BundleReceiver, importSnapshot } from "../../provider-agent/src/services/snapshot-import.js";
import { branchForPullRequest } from "../../provider-agent/src/services/snapshot-branch.js";
import { diffSnapshots } from "../../provider-agent/src/services/snapshot-ops.js";
import { SnapshotService, threadHead, threadRefKey } from "../../provider-agent/src/services/snapshots.js";
import { pidAlive } from "../../scripts/lib/processes.js";
import { checksums, fingerprint, git, gitEnv } from "../lib/workspace-files.js";
import { tempDir, waitFor } from "./helpers.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function env(name: string) {
  const t = await tempDir(`outpost-snap-${name}-`);
  cleanups.push(t.cleanup);
  const workspace = path.join(t.dir, "workspace");
  mkdirSync(workspace);
  const service = new SnapshotService({ workspace, dir: path.join(t.dir, "state", "snapshots") });
  return { workspace, service, dir: t.dir };
}

const sid = () => timeOrderedId("snap");

/** Feeds a file to a receiver in pieces, as the link would. */
async function receive(dir: string, bytes: Buffer, expect: { size: number; sha256: string }): Promise<string> {
  const r = new BundleReceiver(dir, expect);
  const piece = 64 * 1024;
  let n = 0;
  for (let off = 0; off < bytes.length; off += piece) r.push(n++, bytes.subarray(off, off + piece), false);
  r.push(n, Buffer.alloc(0), true);
  return r.done;
}

async function carry(from: Awaited<ReturnType<typeof env>>, to: Awaited<ReturnType<typeof env>>, snap: { snapshotId: string; commit: string; threadId: string | null }, o: { format?: BundleFormat; baseCommit?: string; strategy?: ImportStrategy; intoThreadId?: string } = {}) {
  const format = o.format ?? "bundle";
  const b = await from.service.bundle({ snapshotId: snap.snapshotId, commit: snap.commit, format, baseCommit: o.baseCommit });
  const bytes = readFileSync(b.file);
  await to.service.git();
  const file = await receive(to.service.incoming, bytes, b);
  const result = await importSnapshot(to.service, file, {
    snapshotId: snap.snapshotId,
    commit: snap.commit,
    format,
    size: b.size,
    sha256: b.sha256,
    strategy: o.strategy ?? "replace",
    threadId: snap.threadId,
    preImportSnapshotId: sid(),
    ...(o.intoThreadId ? { intoThreadId: o.intoThreadId } : {}),
  });
  return { bundle: b, result };
}

describe("taking snapshots", () => {
  it("commits the work tree on its thread, respects .gitignore, and never touches the user's .git", async () => {
    const a = await env("take");
    const w = a.workspace;
    git(w, "init", "-q");
    writeFileSync(path.join(w, ".gitignore"), "node_modules/\n*.log\n");
    writeFileSync(path.join(w, "a.txt"), "one\n");
    git(w, "add", ".");
    git(w, "commit", "-qm", "user commit");
    writeFileSync(path.join(w, "b.txt"), "uncommitted, untracked\n");
    writeFileSync(path.join(w, "debug.log"), "ignored\n");
    mkdirSync(path.join(w, "node_modules"));
    writeFileSync(path.join(w, "node_modules", "x.js"), "ignored\n");
    // (git status refreshes the user's index itself: ask it before taking the fingerprint.)
    const statusBefore = git(w, "status", "--porcelain");
    const before = await fingerprint(path.join(w, ".git"));

    const s1 = await a.service.take({ snapshotId: sid(), threadId: "thr_one", runId: "run_1", objectiveId: "obj_1", message: "first" });
    expect(s1.parent).toBeNull();
    expect(s1.files).toBe(3); // .gitignore, a.txt, b.txt
    const files = execFileSync("git", ["--git-dir", a.service.gitDir, "ls-tree", "-r", "--name-only", s1.commit]).toString().trim().split("\n");
    expect(files.sort()).toEqual([".gitignore", "a.txt", "b.txt"]);
    const message = execFileSync("git", ["--git-dir", a.service.gitDir, "log", "-1", "--format=%B", s1.commit]).toString();
    expect(message).toContain(`Outpost-Snapshot: ${s1.snapshotId}`);
    expect(message).toContain("Outpost-Thread: thr_one");
    expect(message).toContain("Outpost-Run: run_1");

    writeFileSync(path.join(w, "a.txt"), "two\n");
    const s2 = await a.service.take({ snapshotId: sid(), message: "second" });
    expect(s2.parent).toBe(s1.commit);
    expect(s2.threadId).toBe("thr_one"); // the workspace stays on its thread
    const head = execFileSync("git", ["--git-dir", a.service.gitDir, "rev-parse", threadHead("thr_one")]).toString().trim();
    expect(head).toBe(s2.commit);

    expect(await fingerprint(path.join(w, ".git"))).toBe(before);
    expect(statusBefore).toBe("?? b.txt\n");
    expect(git(w, "status", "--porcelain")).toBe(" M a.txt\n?? b.txt\n"); // nothing staged by the snapshots
    expect(git(w, "log", "--format=%s")).toBe("user commit\n");
    expect(a.service.gitDir.startsWith(w)).toBe(false);
  });

  it("escapes thread ids that git refuses in ref names", () => {
    expect(threadRefKey("a:b.c")).toBe("a%3Ab%2Ec");
    expect(threadRefKey(null)).toBe("_unthreaded");
  });

  it("refuses a snapshot directory inside the workspace", async () => {
    const a = await env("inside");
    const bad = new SnapshotService({ workspace: a.workspace, dir: path.join(a.workspace, "state") });
    await expect(bad.take({ snapshotId: sid() })).rejects.toThrow(/outside the workspace/);
  });
});

describe("carrying snapshots between workspaces", () => {
  it("replace: identical files by checksum; history continues; an incremental bundle is smaller", async () => {
    const a = await env("a");
    const b = await env("b");
    for (let i = 0; i < 20; i++) writeFileSync(path.join(a.workspace, `f${i}.txt`), `${"x".repeat(2000)} ${i} ${Math.random()}\n`);
    mkdirSync(path.join(a.workspace, "dir"));
    writeFileSync(path.join(a.workspace, "dir", "bin"), Buffer.from([0, 1, 2, 255]));
    writeFileSync(path.join(b.workspace, "stale.txt"), "only in b\n");
    const s1 = await a.service.take({ snapshotId: sid(), threadId: "thr_t" });
    const full1 = await carry(a, b, s1);
    expect(await checksums(b.workspace)).toEqual(await checksums(a.workspace));
    expect(full1.result.preImport?.files).toBe(1);
    expect(full1.result.changed).toContain("stale.txt");

    writeFileSync(path.join(a.workspace, "f1.txt"), "changed\n");
    const s2 = await a.service.take({ snapshotId: sid() });
    const inc = await carry(a, b, s2, { baseCommit: s1.commit });
    const full2 = await a.service.bundle({ snapshotId: s2.snapshotId, commit: s2.commit, format: "bundle" });
    expect(inc.bundle.size).toBeLessThan(full2.size / 4);
    expect(await checksums(b.workspace)).toEqual(await checksums(a.workspace));

    // B continues the thread: its next snapshot's parent is A's snapshot; back in A it fast-forwards.
    writeFileSync(path.join(b.workspace, "from-b.txt"), "b\n");
    const s3 = await b.service.take({ snapshotId: sid() });
    expect(s3.parent).toBe(s2.commit);
    expect(s3.threadId).toBe("thr_t");
    await carry(b, a, s3, { baseCommit: s2.commit });
    expect(readFileSync(path.join(a.workspace, "from-b.txt"), "utf8")).toBe("b\n");
    const headA = execFileSync("git", ["--git-dir", a.service.gitDir, "rev-parse", threadHead("thr_t")]).toString().trim();
    expect(headA).toBe(s3.commit);
  });

  it("an incremental bundle into a workspace without its base is refused, workspace unchanged", async () => {
    const a = await env("a2");
    const c = await env("c2");
    writeFileSync(path.join(a.workspace, "x"), "1\n");
    const s1 = await a.service.take({ snapshotId: sid() });
    writeFileSync(path.join(a.workspace, "x"), "2\n");
    const s2 = await a.service.take({ snapshotId: sid() });
    writeFileSync(path.join(c.workspace, "mine"), "keep\n");
    const before = await checksums(c.workspace);
    await expect(carry(a, c, s2, { baseCommit: s1.commit })).rejects.toMatchObject({ code: "invalid_state" });
    expect(await checksums(c.workspace)).toEqual(before);
  });

  it("corrupted and truncated bundles are refused before anything changes", async () => {
    const a = await env("a3");
    const b = await env("b3");
    writeFileSync(path.join(a.workspace, "data"), "payload ".repeat(10_000));
    const s = await a.service.take({ snapshotId: sid() });
    const bundle = await a.service.bundle({ snapshotId: s.snapshotId, commit: s.commit, format: "bundle" });
    const bytes = readFileSync(bundle.file);
    writeFileSync(path.join(b.workspace, "mine"), "keep\n");
    await b.service.git();
    const before = await checksums(b.workspace);
    const corrupted = Buffer.from(bytes);
    corrupted[corrupted.length - 100]! ^= 0xff;
    await expect(receive(b.service.incoming, corrupted, bundle)).rejects.toThrow(/corrupted: its sha256/);
    await expect(receive(b.service.incoming, bytes.subarray(0, bytes.length - 10), bundle)).rejects.toThrow(/truncated: \d+ of \d+ bytes/);
    const err = await receive(b.service.incoming, corrupted, bundle).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe("integrity_failed");
    // A bundle whose checksum matches what was recorded but is not a bundle is refused by git.
    const junk = Buffer.from("not a bundle at all\n");
    const junkSum = { size: junk.length, sha256: createHash("sha256").update(junk).digest("hex") };
    const file = await receive(b.service.incoming, junk, junkSum);
    await expect(importSnapshot(b.service, file, { snapshotId: s.snapshotId, commit: s.commit, format: "bundle", ...junkSum, strategy: "replace", threadId: null, preImportSnapshotId: sid() })).rejects.toMatchObject({ code: "integrity_failed" });
    expect(await checksums(b.workspace)).toEqual(before);
    expect(await readdir(b.service.incoming)).toEqual([]);
  });

  it("patch merges into local changes and lists conflicts; branch keeps the old state on its thread", async () => {
    const a = await env("a4");
    const b = await env("b4");
    writeFileSync(path.join(a.workspace, "shared.txt"), "1\n2\n3\n4\n5\n");
    writeFileSync(path.join(a.workspace, "clash.txt"), "base\n");
    const s1 = await a.service.take({ snapshotId: sid(), threadId: "thr_p" });
    await carry(a, b, s1);
    // A edits the top of shared.txt; B edits the bottom, and both change clash.txt.
    writeFileSync(path.join(a.workspace, "shared.txt"), "ONE\n2\n3\n4\n5\n");
    writeFileSync(path.join(a.workspace, "clash.txt"), "from a\n");
    writeFileSync(path.join(a.workspace, "new-in-a.txt"), "a\n");
    const s2 = await a.service.take({ snapshotId: sid() });
    writeFileSync(path.join(b.workspace, "shared.txt"), "1\n2\n3\n4\nFIVE\n");
    writeFileSync(path.join(b.workspace, "clash.txt"), "from b\n");
    const { result } = await carry(a, b, s2, { strategy: "patch", baseCommit: s1.commit });
    expect(result.conflicts).toEqual(["clash.txt"]);
    expect(readFileSync(path.join(b.workspace, "shared.txt"), "utf8")).toBe("ONE\n2\n3\n4\nFIVE\n");
    expect(readFileSync(path.join(b.workspace, "new-in-a.txt"), "utf8")).toBe("a\n");
    expect(readFileSync(path.join(b.workspace, "clash.txt"), "utf8")).toMatch(/<<<<<<<[\s\S]*from b[\s\S]*=======[\s\S]*from a[\s\S]*>>>>>>>/);

    // branch: the snapshot is checked out on a new thread; B's state is its pre-import snapshot.
    const c = await env("c4");
    writeFileSync(path.join(c.workspace, "clash.txt"), "c's own\n");
    const r = await carry(a, c, s2, { strategy: "branch", intoThreadId: "thr_branch" });
    expect(r.result.threadId).toBe("thr_branch");
    expect(readFileSync(path.join(c.workspace, "clash.txt"), "utf8")).toBe("from a\n");
    expect(r.result.conflicts).toEqual(["clash.txt"]);
    const saved = execFileSync("git", ["--git-dir", c.service.gitDir, "show", `${r.result.preImport!.commit}:clash.txt`]).toString();
    expect(saved).toBe("c's own\n");
  });

  it("a tar.gz carries the files without history", async () => {
    const a = await env("a5");
    const b = await env("b5");
    mkdirSync(path.join(a.workspace, "d"));
    writeFileSync(path.join(a.workspace, "d", "f.txt"), "hello\n");
    const s = await a.service.take({ snapshotId: sid() });
    const { bundle, result } = await carry(a, b, s, { format: "tar.gz" });
    expect(bundle.file.endsWith(".tar.gz")).toBe(true);
    expect(result.commit).not.toBe(s.commit);
    expect(await checksums(b.workspace)).toEqual(await checksums(a.workspace));
  });

  it("diffs two snapshots as a patch and as a mail that git am applies", async () => {
    const a = await env("a6");
    writeFileSync(path.join(a.workspace, "f.txt"), "1\n");
    const s1 = await a.service.take({ snapshotId: sid() });
    writeFileSync(path.join(a.workspace, "f.txt"), "2\n");
    const s2 = await a.service.take({ snapshotId: sid(), message: "make it two" });
    const collect = async (format: "patch" | "format-patch" | "stat") => {
      const parts: Buffer[] = [];
      await diffSnapshots(a.service, { from: s1.commit, to: s2.commit, format }, async ({ data }) => void parts.push(data), new AbortController().signal);
      return Buffer.concat(parts).toString("utf8");
    };
    expect(await collect("patch")).toContain("-1\n+2\n");
    expect(await collect("stat")).toContain("f.txt | 2 +-");
    const mail = await collect("format-patch");
    expect(mail).toMatch(/^From [0-9a-f]{40}/);
    expect(mail).toContain("Subject: [PATCH] make it two");
    // The mail applies in an ordinary repository holding the `from` state.
    const repo = (await env("am")).workspace;
    git(repo, "init", "-q");
    writeFileSync(path.join(repo, "f.txt"), "1\n");
    git(repo, "add", ".");
    git(repo, "commit", "-qm", "base");
    execFileSync("git", ["-C", repo, "am", "-q"], { input: mail, env: gitEnv });
    expect(readFileSync(path.join(repo, "f.txt"), "utf8")).toBe("2\n");
    expect(existsSync(path.join(repo, ".git"))).toBe(true);
  });
});

describe("a branch ready for a pull request", () => {
  /** The user's work tree (all but .git), index and HEAD, byte for byte, and what HEAD names. */
  async function userState(w: string) {
    const files = await checksums(w);
    return { files, index: readFileSync(path.join(w, ".git", "index")).toString("hex"), head: readFileSync(path.join(w, ".git", "HEAD"), "utf8"), commit: git(w, "rev-parse", "HEAD"), status: git(w, "--no-optional-locks", "status", "--porcelain") };
  }

  it("outpost/<name> in the user's repository: one commit on HEAD with the snapshot's files; work tree, index and HEAD untouched; an existing name refused", async () => {
    const a = await env("pr");
    const w = a.workspace;
    git(w, "init", "-q", "-b", "main");
    writeFileSync(path.join(w, "a.txt"), "one\n");
    writeFileSync(path.join(w, "keep.txt"), "kept\n");
    git(w, "add", ".");
    git(w, "commit", "-qm", "user's base");
    // Work in progress: an edit, a staged new file, an untracked one; the snapshot carries all of it.
    writeFileSync(path.join(w, "a.txt"), "two\n");
    writeFileSync(path.join(w, "staged.txt"), "staged\n");
    git(w, "add", "staged.txt");
    mkdirSync(path.join(w, "src"));
    writeFileSync(path.join(w, "src", "new.ts"), "export {};\n");
    const snap = await a.service.take({ snapshotId: sid(), threadId: "thr_pr" });
    // Changed after the snapshot: not part of the branch.
    writeFileSync(path.join(w, "later.txt"), "after the snapshot\n");
    const before = await userState(w);
    const mainBefore = readFileSync(path.join(w, ".git", "refs", "heads", "main"), "utf8");

    const r = await branchForPullRequest(a.service, { commit: snap.commit, name: "thr_pr", message: "Add the feature\n\nObjective: ship it\n" });
    expect(r).toMatchObject({ branch: "outpost/thr_pr", base: before.commit.trim() });
    expect(r.changed.sort()).toEqual(["a.txt", "src/new.ts", "staged.txt"]);
    expect(await userState(w)).toEqual(before);
    expect(readFileSync(path.join(w, ".git", "refs", "heads", "main"), "utf8")).toBe(mainBefore);
    // One commit on top of HEAD, with the snapshot's files and the narrative's message.
    expect(git(w, "rev-list", "--count", `${before.commit.trim()}..outpost/thr_pr`).trim()).toBe("1");
    expect(git(w, "rev-parse", "outpost/thr_pr^").trim()).toBe(before.commit.trim());
    expect(git(w, "log", "-1", "--format=%B", "outpost/thr_pr")).toBe("Add the feature\n\nObjective: ship it\n\n");
    expect(git(w, "show", "outpost/thr_pr:a.txt")).toBe("two\n");
    expect(git(w, "show", "outpost/thr_pr:src/new.ts")).toBe("export {};\n");
    expect(git(w, "ls-tree", "-r", "--name-only", "outpost/thr_pr").trim().split("\n").sort()).toEqual(["a.txt", "keep.txt", "src/new.ts", "staged.txt"]);
    expect(git(w, "fsck", "--no-dangling").trim()).toBe("");

    await expect(branchForPullRequest(a.service, { commit: snap.commit, name: "thr_pr", message: "again" })).rejects.toMatchObject({ code: "conflict", message: expect.stringMatching(/outpost\/thr_pr already exists/) });
    expect(git(w, "rev-parse", "outpost/thr_pr").trim()).toBe(r.commit);
    expect(await userState(w)).toEqual(before);
  });

  it("refuses a workspace without a repository of its own, or one without a commit, leaving no ref and no file", async () => {
    const a = await env("pr-none");
    writeFileSync(path.join(a.workspace, "f.txt"), "x\n");
    const snap = await a.service.take({ snapshotId: sid() });
    const files = await checksums(a.workspace, null);
    const shadowRefs = () => execFileSync("git", ["--git-dir", a.service.gitDir, "for-each-ref", "--format=%(refname)"]).toString();
    const refs = shadowRefs();
    await expect(branchForPullRequest(a.service, { commit: snap.commit, name: "x", message: "m" })).rejects.toMatchObject({
      code: "invalid_state",
      message: expect.stringMatching(/^not a git repository: .*git init.*snapshots diff .* --mail/),
    });
    expect(await checksums(a.workspace, null)).toEqual(files);
    expect(existsSync(path.join(a.workspace, ".git"))).toBe(false);
    expect(shadowRefs()).toBe(refs);
    git(a.workspace, "init", "-q");
    await expect(branchForPullRequest(a.service, { commit: snap.commit, name: "x", message: "m" })).rejects.toMatchObject({ code: "invalid_state", message: expect.stringMatching(/no commit yet/) });
    expect(existsSync(path.join(a.workspace, ".git", "refs", "heads", "outpost"))).toBe(false);
  });

  /** A user repository in `w` with one commit (a.txt: "one"). */
  function userRepository(w: string): void {
    git(w, "init", "-q", "-b", "main");
    writeFileSync(path.join(w, "a.txt"), "one\n");
    git(w, "add", ".");
    git(w, "commit", "-qm", "base");
  }

  /** A `git` first on PATH that runs the real one, except for the user-side `rev-parse --show-toplevel`: `stuck` there. */
  async function wrappedGit(stuck: string): Promise<() => void> {
    const t = await tempDir("outpost-git-wrapper-");
    cleanups.push(t.cleanup);
    const real = execFileSync("sh", ["-c", "command -v git"]).toString().trim();
    writeFileSync(path.join(t.dir, "git"), `#!/bin/sh\ncase "$*" in *--show-toplevel*) ${stuck} ;; esac\nexec ${real} "$@"\n`, { mode: 0o755 });
    const before = process.env.PATH;
    process.env.PATH = `${t.dir}:${before}`;
    return () => void (process.env.PATH = before);
  }

  it("a git that reads stdin gets end-of-file, not a wait: the branch is made", async () => {
    const a = await env("pr-stdin");
    userRepository(a.workspace);
    writeFileSync(path.join(a.workspace, "a.txt"), "two\n");
    const snap = await a.service.take({ snapshotId: sid() });
    const restore = await wrappedGit("cat > /dev/null");
    try {
      const r = await branchForPullRequest(a.service, { commit: snap.commit, name: "stdin", message: "m" });
      expect(r.changed).toEqual(["a.txt"]);
    } finally {
      restore();
    }
  });

  it("a stuck git is stopped when the request is cancelled: the refusal comes back, nothing is written, the next operation runs", async () => {
    const a = await env("pr-stuck");
    userRepository(a.workspace);
    const snap = await a.service.take({ snapshotId: sid() });
    const pidFile = path.join(a.dir, "stuck.pid");
    const restore = await wrappedGit(`echo $$ > ${pidFile}; exec sleep 600`);
    const controller = new AbortController();
    try {
      const branching = branchForPullRequest(a.service, { commit: snap.commit, name: "stuck", message: "m" }, controller.signal);
      const pid = Number(await waitFor(() => (existsSync(pidFile) ? readFileSync(pidFile, "utf8").trim() : ""), 10_000, "the stuck git to start"));
      controller.abort(new AgentError("cancelled", "the request was cancelled"));
      await expect(branching).rejects.toMatchObject({ code: "cancelled" });
      await waitFor(() => !pidAlive(pid), 5_000, "the stuck git to be stopped");
    } finally {
      restore();
    }
    expect(git(a.workspace, "for-each-ref", "refs/heads/outpost")).toBe("");
    // The snapshot service's queue is free again.
    expect((await a.service.take({ snapshotId: sid() })).commit).toMatch(/^[0-9a-f]{40}$/);
  });
});
