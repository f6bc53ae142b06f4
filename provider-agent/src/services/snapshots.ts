/**
 * Workspace snapshots: a shadow git repository per workspace, kept in the agent's state directory
 * (its own GIT_DIR, the workspace as work tree; the workspace's .gitignore respected, the user's
 * `.git` neither read as a repository nor written). A snapshot is a commit on its thread:
 * `refs/outpost/threads/<thread>/head` moves forward, `refs/outpost/threads/<thread>/snapshots/<id>`
 * and `refs/outpost/snapshots/<id>` name it for good. Bundles and archives of snapshots are written
 * beside the repository for the transfer code to stream; imports are verified before the work
 * tree is touched (snapshot-import.ts). Every operation runs one at a time.
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, readdir, realpath, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { BundleFormat, OpParams, SnapshotTaken } from "@outpost/protocol";
import { AgentError } from "../errors.js";
import { silentLogger, type Logger } from "../log.js";
import { checkBaseOutside } from "./diff-snapshot.js";
import { requireGit } from "./git-version.js";
import { ShadowGit } from "./shadow-git.js";

/** Bundles and partial imports older than this are removed when the service starts. */
const STALE_TRANSFER_MS = 3_600_000;
export const NO_THREAD = "_unthreaded";

/** Where a workspace's snapshots live by default: beside the agent's state, never in the workspace. */
export function defaultSnapshotDir(key: string): string {
  const stateHome = process.env.XDG_STATE_HOME || path.join(os.homedir(), ".local", "state");
  return path.join(stateHome, "outpost-agent", `${key}-snapshots`);
}

/** A thread id as one ref component: characters git refuses in ref names are %-escaped. */
export function threadRefKey(threadId: string | null | undefined): string {
  if (!threadId) return NO_THREAD;
  return threadId.replace(/[^A-Za-z0-9_-]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`);
}

export const threadHead = (t: string | null | undefined) => `refs/outpost/threads/${threadRefKey(t)}/head`;
export const threadSnapshot = (t: string | null | undefined, id: string) => `refs/outpost/threads/${threadRefKey(t)}/snapshots/${id}`;
export const snapshotRef = (id: string) => `refs/outpost/snapshots/${id}`;

export async function sha256File(file: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { size, sha256: hash.digest("hex") };
}

export interface SnapshotServiceOptions {
  workspace: string;
  /** Directory for the shadow repository and transfers; must be outside the workspace. */
  dir: string;
  log?: Logger;
}

export class SnapshotService {
  readonly dir: string;
  readonly gitDir: string;
  readonly #workspace: string;
  readonly #log: Logger;
  #ready: Promise<ShadowGit> | null = null;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: SnapshotServiceOptions) {
    this.dir = path.resolve(options.dir);
    this.gitDir = path.join(this.dir, "shadow.git");
    this.#workspace = options.workspace;
    this.#log = options.log ?? silentLogger;
  }

  /** The workspace (the shadow repository's work tree, and the user's repository when it has one). */
  get workspace(): string {
    return this.#workspace;
  }

  get outgoing(): string {
    return path.join(this.dir, "outgoing");
  }

  get incoming(): string {
    return path.join(this.dir, "incoming");
  }

  /** Runs `fn` after every operation before it: the index and the work tree have one user at a time. */
  exclusive<T>(fn: (git: ShadowGit) => Promise<T>): Promise<T> {
    const run = this.#queue.then(() => this.git()).then(fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** The shadow repository, created on first use. */
  git(): Promise<ShadowGit> {
    const ready =
      this.#ready ??
      (this.#ready = (async () => {
        const version = await requireGit();
        await checkBaseOutside(this.#workspace, this.dir);
        const workTree = await realpath(this.#workspace);
        await mkdir(this.dir, { recursive: true, mode: 0o700 });
        const git = new ShadowGit({ gitDir: this.gitDir, workTree });
        if (!(await stat(path.join(this.gitDir, "HEAD")).catch(() => null))) {
          this.#log.info(`creating the shadow repository for ${workTree} in ${this.gitDir} (git ${version})`);
          await git.ok(["init", "-q", "--template="]);
        }
        await mkdir(this.outgoing, { recursive: true, mode: 0o700 });
        await mkdir(this.incoming, { recursive: true, mode: 0o700 });
        await this.#sweep();
        return git;
      })());
    return ready.catch((err: unknown) => {
      this.#ready = null;
      throw err;
    });
  }

  /** The thread the workspace is on: its next snapshot's parent is that thread's head. */
  async currentThread(git: ShadowGit): Promise<string | null> {
    const r = await git.run(["config", "--get", "outpost.thread"]);
    const t = r.stdout.toString("utf8").trim();
    return r.code === 0 && t !== "" ? t : null;
  }

  async setCurrentThread(git: ShadowGit, threadId: string | null): Promise<void> {
    if (threadId) await git.ok(["config", "outpost.thread", threadId]);
    else await git.run(["config", "--unset", "outpost.thread"]);
  }

  take(params: OpParams<"snapshot.take">): Promise<SnapshotTaken> {
    return this.exclusive((git) => this.takeLocked(git, params));
  }

  /**
   * Records the work tree as a commit on its thread; only inside `exclusive`. A detached snapshot
   * (the safety copy before an import) is named but does not move the thread's head.
   */
  async takeLocked(git: ShadowGit, params: OpParams<"snapshot.take">, o: { detached?: boolean } = {}): Promise<SnapshotTaken> {
    const threadId = params.threadId ?? (await this.currentThread(git));
    await git.ok(["add", "-A"]);
    const tree = await git.ok(["write-tree"]);
    const parent = await git.resolve(threadHead(threadId));
    const message = snapshotMessage(params.message ?? "snapshot", {
      Snapshot: params.snapshotId,
      Thread: threadId,
      Run: params.runId ?? null,
      Objective: params.objectiveId ?? null,
    });
    const commit = await git.ok(["commit-tree", tree, ...(parent ? ["-p", parent] : []), "-F", "-"], message);
    await git.ok(["update-ref", snapshotRef(params.snapshotId), commit]);
    await git.ok(["update-ref", threadSnapshot(threadId, params.snapshotId), commit]);
    if (!o.detached) {
      await git.ok(["update-ref", threadHead(threadId), commit, ...(parent ? [parent] : [])]);
      if (params.threadId) await this.setCurrentThread(git, params.threadId);
    }
    const { files, bytes } = await treeSize(git, tree);
    this.#log.info(`snapshot ${params.snapshotId}: ${commit.slice(0, 12)} on ${threadRefKey(threadId)} (${files} files, ${bytes} bytes)`);
    return {
      snapshotId: params.snapshotId,
      commit,
      tree,
      parent,
      threadId,
      runId: params.runId ?? null,
      objectiveId: params.objectiveId ?? null,
      files,
      bytes,
      message: params.message ?? "snapshot",
    };
  }

  /**
   * Writes a git bundle of the snapshot (all of its history, or only what `baseCommit` lacks), or
   * a tar.gz of its files, into the outgoing directory; answers its id, size and sha256.
   */
  bundle(params: { snapshotId: string; commit: string; format: BundleFormat; baseCommit?: string }): Promise<{ bundleId: string; size: number; sha256: string; file: string }> {
    return this.exclusive(async (git) => {
      const ref = snapshotRef(params.snapshotId);
      const at = await git.resolve(ref);
      if (at !== params.commit) throw new AgentError("not_found", `snapshot ${params.snapshotId} is not in this environment's shadow repository`);
      const bundleId = randomBytes(12).toString("hex");
      const file = path.join(this.outgoing, `${bundleId}.${params.format === "bundle" ? "bundle" : "tar.gz"}`);
      try {
        if (params.format === "tar.gz") {
          await git.ok(["archive", "--format=tar.gz", "-o", file, params.commit]);
        } else {
          const exclude: string[] = [];
          if (params.baseCommit) {
            if (!(await git.resolve(params.baseCommit))) throw new AgentError("not_found", `the base commit ${params.baseCommit} is not in this environment`);
            const r = await git.run(["merge-base", "--is-ancestor", params.baseCommit, params.commit]);
            if (r.code !== 0) throw new AgentError("bad_request", "the base snapshot is not an ancestor of this snapshot; export a full bundle");
            if (params.baseCommit === params.commit) throw new AgentError("bad_request", "the base snapshot is the snapshot itself; nothing to send");
            exclude.push(`^${params.baseCommit}`);
          }
          await git.ok(["bundle", "create", "-q", file, ...exclude, ref]);
        }
        const { size, sha256 } = await sha256File(file);
        return { bundleId, size, sha256, file };
      } catch (err) {
        await rm(file, { force: true });
        throw err;
      }
    });
  }

  /** The file of a bundle written by `bundle`, or not_found. */
  async outgoingFile(bundleId: string): Promise<string> {
    const names = await readdir(this.outgoing).catch(() => [] as string[]);
    const name = names.find((n) => n.startsWith(`${bundleId}.`));
    if (!name) throw new AgentError("not_found", `no bundle ${bundleId} is waiting to be read`);
    return path.join(this.outgoing, name);
  }

  /** Leftovers of transfers that never finished (an agent killed mid-way). */
  async #sweep(): Promise<void> {
    for (const d of [this.outgoing, this.incoming]) {
      for (const name of await readdir(d).catch(() => [] as string[])) {
        const p = path.join(d, name);
        const st = await stat(p).catch(() => null);
        if (st && Date.now() - st.mtimeMs > STALE_TRANSFER_MS) await rm(p, { recursive: true, force: true });
      }
    }
  }
}

/** The commit message: the snapshot's words, then trailers that carry its place in the hierarchy. */
export function snapshotMessage(text: string, trailers: Record<string, string | null>): string {
  const lines = Object.entries(trailers)
    .filter(([, v]) => v)
    .map(([k, v]) => `Outpost-${k}: ${v}`);
  return `${text.trim() || "snapshot"}\n\n${lines.join("\n")}\n`;
}

/** Files (blobs and links) and their bytes in a tree. */
async function treeSize(git: ShadowGit, tree: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  let rest = "";
  await git.run(["ls-tree", "-r", "-l", "-z", tree], {
    onStdout: async (data) => {
      const parts = (rest + data.toString("utf8")).split("\0");
      rest = parts.pop() ?? "";
      for (const p of parts) {
        const size = Number(p.split(/\s+/)[3]);
        files++;
        if (Number.isFinite(size)) bytes += size;
      }
    },
  });
  return { files, bytes };
}
