/**
 * Snapshot work relayed to the environment's agent: take, export (the agent writes a bundle, then
 * streams it out paced by credit), import (a byte stream in, paced by the agent's credit), and the
 * diff between two commits (streamed out). Long transfers report progress in the event log:
 * `snapshot.progress` with bytes, total, percent and rate, at most once per PROGRESS_EVERY_MS and
 * once at the end, never per chunk.
 */
import {
  base64ToBytes,
  bytesToBase64,
  CHUNK_BYTES,
  INITIAL_CREDIT,
  Ops,
  type Chunk,
  type OpParams,
  type OpResult,
  type SnapshotBranchResult,
  type SnapshotImportResult,
  type SnapshotTaken,
} from "@outpost/protocol";
import { fail, ok, type Outcome } from "./outcome.js";
import { rechunk, type RelayHost } from "./relay.js";

export const PROGRESS_EVERY_MS = 1_000;

export type ExportedBundle = { size: number; sha256: string; body: ReadableStream<Uint8Array> };

/** Counts bytes of one transfer and appends a progress event when enough time has passed. */
class Progress {
  private bytes = 0;
  private last = 0;
  private readonly started: number;

  constructor(
    private readonly h: RelayHost,
    private readonly now: () => number,
    private readonly what: { snapshotId: string; direction: "export" | "import"; total: number },
  ) {
    this.started = now();
    this.last = this.started;
  }

  add(n: number): void {
    this.bytes += n;
    const t = this.now();
    if (t - this.last >= PROGRESS_EVERY_MS) this.report(t, false);
  }

  done(): void {
    this.report(this.now(), true);
  }

  private report(t: number, done: boolean): void {
    this.last = t;
    const { total } = this.what;
    const seconds = Math.max(0.001, (t - this.started) / 1000);
    this.h.events.append("snapshot.progress", {
      ...this.what,
      bytes: this.bytes,
      percent: total > 0 ? Math.min(100, Math.round((this.bytes / total) * 1000) / 10) : 100,
      bytesPerSecond: Math.round(this.bytes / seconds),
      done,
    });
  }
}

export class SnapshotRelay {
  constructor(
    private readonly h: RelayHost,
    private readonly now: () => number,
    private readonly ask: (op: "snapshot.take" | "snapshot.bundle" | "snapshot.branch", params: unknown, timeoutMs: number) => Promise<Outcome<unknown>>,
  ) {}

  async take(params: OpParams<"snapshot.take">): Promise<Outcome<SnapshotTaken>> {
    const reply = await this.ask("snapshot.take", params, 10 * 60_000);
    if (!reply.ok) return reply;
    const parsed = Ops["snapshot.take"].result.safeParse(reply.value);
    if (!parsed.success) return fail("agent_error", "The agent sent a malformed snapshot.");
    this.h.events.append("snapshot.taken", { snapshotId: parsed.data.snapshotId, commit: parsed.data.commit, threadId: parsed.data.threadId, files: parsed.data.files, bytes: parsed.data.bytes });
    return ok(parsed.data);
  }

  /** A pull-request branch in the user's own repository of the workspace (snapshot-branch.ts in the agent). */
  async branch(params: OpParams<"snapshot.branch">): Promise<Outcome<SnapshotBranchResult>> {
    const reply = await this.ask("snapshot.branch", params, 10 * 60_000);
    if (!reply.ok) return reply;
    const parsed = Ops["snapshot.branch"].result.safeParse(reply.value);
    if (!parsed.success) return fail("agent_error", "The agent sent a malformed branch result.");
    this.h.events.append("snapshot.branch", { branch: parsed.data.branch, commit: parsed.data.commit, base: parsed.data.base, changed: parsed.data.changed.length });
    return ok(parsed.data);
  }

  /**
   * The agent writes the bundle (or archive) and says its size and sha256; then its bytes stream
   * out. Resolves once the size is known, with the body still flowing.
   */
  async exportBundle(params: OpParams<"snapshot.bundle">): Promise<Outcome<ExportedBundle>> {
    const made = await this.ask("snapshot.bundle", params, 10 * 60_000);
    if (!made.ok) return made;
    const parsed = Ops["snapshot.bundle"].result.safeParse(made.value);
    if (!parsed.success) return fail("agent_error", "The agent sent a malformed bundle description.");
    const { bundleId, size, sha256 } = parsed.data;
    const progress = new Progress(this.h, this.now, { snapshotId: params.snapshotId, direction: "export", total: size });
    const body = this.streamOut("snapshot.read", { bundleId }, (n) => progress.add(n), () => progress.done());
    if (!body.ok) return body;
    return ok({ size, sha256, body: body.value });
  }

  /** The patch between two commits of the agent's shadow repository, streamed. */
  diff(params: OpParams<"snapshot.diff">): Outcome<ReadableStream<Uint8Array>> {
    return this.streamOut("snapshot.diff", params);
  }

  /** Streams a bundle into the agent; it verifies size and sha256 before the workspace changes. */
  async importBundle(params: OpParams<"snapshot.import">, body: ReadableStream<Uint8Array>): Promise<Outcome<SnapshotImportResult>> {
    const ready = this.h.agent();
    if (!ready.ok) return ready;
    const ws = ready.value;
    const id = crypto.randomUUID();
    const idle = this.h.timing.transferIdleMs;
    let settled = false;
    // The import's own work (merge, checkout) may take longer than a chunk gap: the agent's reply
    // is waited for with the transfer's idle limit renewed by every chunk, then a long tail.
    const done = this.h.pending
      .open(id, Math.max(idle, 10 * 60_000), () => this.h.link.send(ws, { v: 1, kind: "cancel", re: id }))
      .then((r) => ((settled = true), this.h.link.closeCredit(id), r));
    this.h.link.openCredit(id);
    // The agent's limit covers its verify, unbundle and checkout after the last chunk, too.
    this.h.link.send(ws, { v: 1, kind: "request", id, op: "snapshot.import", params, timeoutMs: Math.max(idle, 10 * 60_000) });
    const progress = new Progress(this.h, this.now, { snapshotId: params.snapshotId, direction: "import", total: params.size });
    let n = 0;
    const sendChunk = async (piece: Uint8Array, last: boolean) => {
      await this.h.link.waitCredit(id, n);
      if (settled) return;
      this.h.link.send(this.h.agentSocket(), { v: 1, kind: "chunk", re: id, n: n++, data: bytesToBase64(piece), ...(last ? { last: true } : {}) });
      progress.add(piece.length);
    };
    try {
      for await (const piece of rechunk(body, CHUNK_BYTES)) {
        if (settled) break;
        await sendChunk(piece, false);
      }
    } catch (err) {
      // The source broke off (a storage read that failed): what arrived so far is all there is;
      // the agent will find it short of the recorded size and refuse it.
      this.h.events.append("snapshot.source_failed", { snapshotId: params.snapshotId, reason: err instanceof Error ? err.message : String(err) });
    }
    if (!settled) await sendChunk(new Uint8Array(0), true);
    progress.done();
    const r = await done;
    if (!r.ok) return { ok: false, error: r.error };
    const parsed = Ops["snapshot.import"].result.safeParse(r.result);
    if (!parsed.success) return fail("agent_error", "The agent sent a malformed import result.");
    this.h.events.append("snapshot.imported", { snapshotId: params.snapshotId, strategy: params.strategy, conflicts: parsed.data.conflicts.length, changed: parsed.data.changed.length });
    return ok(parsed.data);
  }

  /** A request whose chunks become a byte stream; credit follows the reader, so memory stays bounded. */
  private streamOut(op: "snapshot.read" | "snapshot.diff", params: unknown, onBytes?: (n: number) => void, onEnd?: () => void): Outcome<ReadableStream<Uint8Array>> {
    const ready = this.h.agent();
    if (!ready.ok) return ready;
    const ws = ready.value;
    const id = crypto.randomUUID();
    const pipe = new TransformStream<Uint8Array, Uint8Array>();
    const writer = pipe.writable.getWriter();
    const written: Promise<void>[] = [];
    const reply = this.h.pending.open(id, this.h.timing.transferIdleMs, () => this.h.link.send(this.h.agentSocket(), { v: 1, kind: "cancel", re: id }), (c: Chunk) => {
      const bytes = base64ToBytes(c.data);
      onBytes?.(bytes.length);
      const w = writer.write(bytes).then(() => this.h.link.grantCredit(this.h.agentSocket(), id, c.n + INITIAL_CREDIT));
      written.push(w.catch(() => undefined));
    });
    this.h.link.send(ws, { v: 1, kind: "request", id, op, params, timeoutMs: this.h.timing.transferIdleMs });
    void reply.then(async (r) => {
      this.h.link.endGrant(id);
      if (r.ok) {
        await Promise.all(written);
        onEnd?.();
        await writer.close().catch(() => undefined);
      } else {
        await writer.abort(new Error(r.error.message)).catch(() => undefined);
      }
    });
    return ok(pipe.readable);
  }
}

export type { OpResult };
