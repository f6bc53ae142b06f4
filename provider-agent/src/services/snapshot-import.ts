/**
 * Bringing a snapshot into this workspace. The bytes arrive into a file outside the workspace,
 * hashed as they come; only when their size and sha256 are what the control plane recorded, and
 * git accepts the bundle, does anything reach the shadow repository, and only then is the work
 * tree changed, in one step (`read-tree -u`), after a safety snapshot of what was there.
 *
 * Strategies: replace (the workspace becomes the snapshot); patch (a three-way merge of the
 * snapshot into the workspace, conflicts left marked as git does and listed); branch (the
 * snapshot lands on a new thread and is checked out; the workspace's state stays on its own
 * thread, and paths that would have conflicted are listed); fetch (into the shadow repository
 * only, for diffs).
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, open, rm, type FileHandle } from "node:fs/promises";
import path from "node:path";
import type { OpParams, SnapshotImportResult } from "@outpost/protocol";
import { AgentError } from "../errors.js";
import { runGit } from "./git-runner.js";
import { ShadowGit } from "./shadow-git.js";
import { snapshotMessage, snapshotRef, threadHead, threadSnapshot, type SnapshotService } from "./snapshots.js";

type ImportParams = OpParams<"snapshot.import">;

/**
 * The incoming bytes of one import: written in order of `n` to a file in `dir`, hashed on the
 * way. `done` resolves with the file once the last chunk came and the size and sha256 match; on
 * any mismatch the file is removed and `done` rejects with integrity_failed.
 */
export class BundleReceiver {
  readonly done: Promise<string>;
  readonly file: string;
  #resolve!: (file: string) => void;
  #reject!: (e: unknown) => void;
  #fh: Promise<FileHandle>;
  #queue: Promise<unknown>;
  #hash = createHash("sha256");
  #received = 0;
  #next = 0;
  #settled = false;

  constructor(
    dir: string,
    private readonly expect: { size: number; sha256: string },
    private readonly hooks: { onWritten?: (n: number, bytes: number) => void } = {},
  ) {
    this.file = path.join(dir, `${randomBytes(12).toString("hex")}.part`);
    this.done = new Promise((resolve, reject) => ((this.#resolve = resolve), (this.#reject = reject)));
    this.#fh = open(this.file, "wx", 0o600);
    this.#queue = this.#fh.catch((err: unknown) => this.#fail(err));
  }

  push(n: number, data: Buffer, last: boolean): void {
    if (this.#settled) return;
    this.#queue = this.#queue.then(() => this.#write(n, data, last)).catch((err: unknown) => this.#fail(err));
  }

  abort(reason: unknown): void {
    void this.#queue.then(() => this.#fail(reason));
  }

  async #write(n: number, data: Buffer, last: boolean): Promise<void> {
    if (this.#settled) return;
    if (n !== this.#next) throw new AgentError("bad_request", `chunk ${n} arrived, expected chunk ${this.#next}`);
    this.#next++;
    this.#received += data.length;
    if (this.#received > this.expect.size) throw integrity(`more than the recorded ${this.expect.size} bytes arrived`);
    this.#hash.update(data);
    const fh = await this.#fh;
    if (data.length > 0) await fh.write(data, 0, data.length, null);
    this.hooks.onWritten?.(n, this.#received);
    if (!last) return;
    await fh.close();
    if (this.#received !== this.expect.size) throw integrity(`the bundle is truncated: ${this.#received} of ${this.expect.size} bytes arrived`);
    const sha = this.#hash.digest("hex");
    if (sha !== this.expect.sha256) throw integrity(`the bundle is corrupted: its sha256 is ${sha}, the recorded one is ${this.expect.sha256}`);
    this.#settled = true;
    this.#resolve(this.file);
  }

  async #fail(err: unknown): Promise<void> {
    if (this.#settled) return;
    this.#settled = true;
    await this.#fh.then((fh) => fh.close()).catch(() => {});
    await rm(this.file, { force: true });
    this.#reject(err);
  }
}

const integrity = (message: string) => new AgentError("integrity_failed", message);

/** Brings a verified bundle (or archive) file into the shadow repository and checks it out. */
export function importSnapshot(service: SnapshotService, file: string, p: ImportParams): Promise<SnapshotImportResult> {
  return service
    .exclusive(async (git) => {
      const commit = p.format === "bundle" ? await unbundle(git, file, p) : await unarchive(service, git, file, p);
      // The safety snapshot of the workspace as it is, before any thread ref moves; it moves no head.
      const before = await service.currentThread(git);
      const pre =
        p.strategy === "fetch"
          ? null
          : await service.takeLocked(git, { snapshotId: p.preImportSnapshotId, ...(before ? { threadId: before } : {}), message: `the workspace before importing ${p.snapshotId}` }, { detached: true });
      await git.ok(["update-ref", snapshotRef(p.snapshotId), commit]);
      for (const [id, c] of Object.entries(p.refs ?? {})) {
        if (id !== p.snapshotId && (await git.resolve(c))) await git.ok(["update-ref", snapshotRef(id), c]);
      }
      const thread = p.strategy === "branch" ? (p.intoThreadId ?? null) : p.threadId;
      if (p.strategy === "branch" && !thread) throw new AgentError("bad_request", "the branch strategy needs intoThreadId");
      await git.ok(["update-ref", threadSnapshot(thread, p.snapshotId), commit]);
      // The thread's head moves forward only: a head that has gone another way here is kept.
      const head = await git.resolve(threadHead(thread));
      const forward = !head || (await git.run(["merge-base", "--is-ancestor", head, commit])).code === 0;
      if (forward) await git.ok(["update-ref", threadHead(thread), commit]);
      if (!pre) return { snapshotId: p.snapshotId, commit, strategy: p.strategy, threadId: thread, preImport: null, conflicts: [], changed: [] };
      // Replace needs no merge; patch applies it; branch only reports what would have conflicted.
      const merged = p.strategy === "replace" ? { tree: "", conflicts: [] } : await mergeTrees(git, pre.commit, commit);
      const target = p.strategy === "patch" ? merged.tree : await git.ok(["rev-parse", `${commit}^{tree}`]);
      const changed = (await git.ok(["diff-tree", "-r", "--name-only", "-z", "--no-renames", pre.tree, target])).split("\0").filter(Boolean);
      await git.ok(["read-tree", "-u", "--reset", target]);
      if (p.strategy !== "patch") await service.setCurrentThread(git, thread);
      return { snapshotId: p.snapshotId, commit, strategy: p.strategy, threadId: thread, preImport: pre, conflicts: merged.conflicts, changed };
    })
    .finally(() => rm(file, { force: true }));
}

async function unbundle(git: ShadowGit, file: string, p: ImportParams): Promise<string> {
  const verify = await git.run(["bundle", "verify", file]);
  if (verify.code !== 0) {
    if (/prerequisite/i.test(verify.stderr)) {
      throw new AgentError("invalid_state", "the bundle is incremental and its base snapshot is not in this environment; import the base snapshot (or a full bundle) first");
    }
    throw integrity(`the bundle is not a valid git bundle: ${verify.stderr.split("\n")[0] || `exit code ${verify.code}`}`);
  }
  const ref = snapshotRef(p.snapshotId);
  await git.ok(["fetch", "-q", "--no-tags", "--no-write-fetch-head", file, `+${ref}:refs/outpost/incoming/${p.snapshotId}`]);
  const got = await git.resolve(`refs/outpost/incoming/${p.snapshotId}`);
  await git.run(["update-ref", "-d", `refs/outpost/incoming/${p.snapshotId}`]);
  if (got !== p.commit) throw integrity(`the bundle holds commit ${got}, not the snapshot's ${p.commit}`);
  return p.commit;
}

/** A tar.gz carries files only: they become a commit of their own (no history) on arrival. */
async function unarchive(service: SnapshotService, git: ShadowGit, file: string, p: ImportParams): Promise<string> {
  const dir = await mkdtemp(path.join(service.incoming, "tree-"));
  try {
    await untar(file, dir);
    const index = `${dir}.index`;
    const tmp = new ShadowGit({ gitDir: service.gitDir, workTree: dir, indexFile: index });
    try {
      await tmp.ok(["add", "-A", "-f"]);
      const tree = await tmp.ok(["write-tree"]);
      return await git.ok(["commit-tree", tree, "-F", "-"], snapshotMessage(`imported from an archive`, { Snapshot: p.snapshotId, Thread: p.threadId, Source: p.commit }));
    } finally {
      await rm(index, { force: true });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function untar(file: string, dir: string): Promise<void> {
  const r = await runGit(["-xzf", file, "-C", dir, "--no-same-owner"], { program: "tar", cwd: dir });
  if (r.code !== 0) throw integrity(`the archive could not be read: ${r.stderr.slice(0, 2048) || `tar exited ${r.code}`}`);
}

/** A three-way merge of two commits (their merge base, or nothing when unrelated) without a work tree. */
async function mergeTrees(git: ShadowGit, ours: string, theirs: string): Promise<{ tree: string; conflicts: string[] }> {
  const r = await git.run(["merge-tree", "--write-tree", "--name-only", "-z", "--allow-unrelated-histories", ours, theirs]);
  if (r.code !== 0 && r.code !== 1) throw new AgentError("agent_error", `git merge-tree failed: ${r.stderr || `exit code ${r.code}`}`);
  // Output: <tree>\0 then, on conflicts, one conflicted path per \0, then \0 and messages.
  const text = r.stdout.toString("utf8");
  const [tree, ...rest] = text.split("\0");
  const conflicts: string[] = [];
  if (r.code === 1) for (const name of rest) {
    if (name === "") break;
    if (!conflicts.includes(name)) conflicts.push(name);
  }
  return { tree: (tree ?? "").trim(), conflicts };
}
