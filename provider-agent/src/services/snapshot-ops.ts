/**
 * The snapshot operations as the agent serves them: take, bundle (written beside the shadow
 * repository), read (a bundle streamed out in chunks, then removed), import (chunks in, verified,
 * then checked out) and diff (git's patch streamed out). Bytes move in chunks paced by `emit`.
 */
import { createHash } from "node:crypto";
import { open, rm } from "node:fs/promises";
import { CHUNK_BYTES, type OpParams } from "@outpost/protocol";
import { AgentError } from "../errors.js";
import { ShadowGit } from "./shadow-git.js";
import { BundleReceiver, importSnapshot } from "./snapshot-import.js";
import type { SnapshotService } from "./snapshots.js";

export type Emit = (chunk: { n: number; data: Buffer; last: boolean }) => Promise<void>;

/** Streams a bundle written by snapshot.bundle, then removes it; answers its size and sha256. */
export async function readBundle(service: SnapshotService, bundleId: string, emit: Emit, signal: AbortSignal, chunkBytes = CHUNK_BYTES): Promise<{ size: number; sha256: string }> {
  await service.git();
  const file = await service.outgoingFile(bundleId);
  const hash = createHash("sha256");
  const fh = await open(file, "r");
  let size = 0;
  try {
    const buf = Buffer.alloc(chunkBytes);
    for (let n = 0; ; n++) {
      if (signal.aborted) throw signal.reason;
      const { bytesRead } = await fh.read(buf, 0, chunkBytes, null);
      const data = Buffer.from(buf.subarray(0, bytesRead));
      hash.update(data);
      size += bytesRead;
      await emit({ n, data, last: bytesRead === 0 });
      if (bytesRead === 0) break;
    }
  } finally {
    await fh.close();
  }
  await rm(file, { force: true });
  return { size, sha256: hash.digest("hex") };
}

/** The receiver an import's chunks go to; `finish` verifies and checks the snapshot out. */
export function receiveImport(service: SnapshotService, p: OpParams<"snapshot.import">, onWritten: (n: number, bytes: number) => void) {
  const ready = service.git();
  const receiver = ready.then(() => new BundleReceiver(service.incoming, { size: p.size, sha256: p.sha256 }, { onWritten }));
  const early: Array<[number, Buffer, boolean]> = [];
  let live: BundleReceiver | null = null;
  let aborted: unknown = null;
  void receiver.then((r) => {
    live = r;
    for (const [n, d, l] of early.splice(0)) r.push(n, d, l);
    if (aborted) r.abort(aborted);
  }, () => undefined);
  return {
    push(n: number, data: Buffer, last: boolean) {
      if (live) live.push(n, data, last);
      else early.push([n, data, last]);
    },
    abort(reason: unknown) {
      aborted = reason;
      live?.abort(reason);
    },
    async finish(): Promise<unknown> {
      const file = await (await receiver).done;
      return importSnapshot(service, file, p);
    },
  };
}

/** git's patch (or stat, or a format-patch mail) from one commit to another, streamed. */
export function diffSnapshots(service: SnapshotService, p: OpParams<"snapshot.diff">, emit: Emit, signal: AbortSignal): Promise<{ size: number }> {
  return service.exclusive(async (git: ShadowGit) => {
    for (const c of [p.from, p.to]) if (!(await git.resolve(c))) throw new AgentError("not_found", `commit ${c} is not in this environment's shadow repository`);
    let args: string[];
    const flags = ["--no-color", "--no-ext-diff", "--no-textconv", "--full-index"];
    if (p.format === "format-patch") {
      // One commit from `from` to `to`'s files, so the mail applies with `git am` onto `from`.
      const tree = await git.ok(["rev-parse", `${p.to}^{tree}`]);
      const body = await git.ok(["log", "-1", "--format=%B", p.to]);
      const commit = await git.ok(["commit-tree", tree, "-p", p.from, "-F", "-"], `${body}\n`);
      args = ["format-patch", "-1", "--stdout", "--binary", ...flags, commit];
    } else if (p.format === "stat") {
      args = ["diff", "--stat=200", ...flags, p.from, p.to];
    } else {
      args = ["diff", "--binary", ...flags, p.from, p.to];
    }
    let n = 0;
    let size = 0;
    const r = await git.run(args, {
      signal,
      onStdout: async (data) => {
        size += data.length;
        await emit({ n: n++, data, last: false });
      },
    });
    if (r.code !== 0) throw new AgentError("agent_error", `git ${args[0]} failed: ${r.stderr || `exit code ${r.code}`}`);
    await emit({ n: n++, data: Buffer.alloc(0), last: true });
    return { size };
  });
}
