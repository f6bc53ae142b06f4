/**
 * Requests sent to the agent and not yet answered, keyed by request id. A request's timer is an
 * idle deadline: each chunk that arrives for it (or, for an upload, each credit the agent grants)
 * pushes the deadline back, so a long transfer that keeps moving is never cut, and one that stalls is.
 */
import type { Chunk, ErrorInfo, Reply } from "@outpost/protocol";

export type ReplyOutcome = { ok: true; result: unknown } | { ok: false; error: ErrorInfo };

interface Entry {
  settle: (r: ReplyOutcome) => void;
  onChunk?: (c: Chunk) => void;
  nextChunk: number;
  timer: ReturnType<typeof setTimeout>;
  idleMs: number;
  onTimeout: () => void;
}

export class PendingRequests {
  private readonly entries = new Map<string, Entry>();

  get size(): number {
    return this.entries.size;
  }

  open(id: string, idleMs: number, onTimeout: () => void, onChunk?: (c: Chunk) => void): Promise<ReplyOutcome> {
    return new Promise((resolve) => {
      const entry: Entry = {
        settle: resolve,
        onChunk,
        nextChunk: 0,
        idleMs,
        onTimeout,
        timer: setTimeout(() => this.expire(id), idleMs),
      };
      this.entries.set(id, entry);
    });
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  /** Feeds a chunk to its request; a chunk out of order fails the request rather than corrupt data. */
  chunk(c: Chunk): boolean {
    const e = this.entries.get(c.re);
    if (!e) return false;
    if (!e.onChunk || c.n !== e.nextChunk) {
      this.finish(c.re, { ok: false, error: { code: "agent_error", message: `chunk ${c.n} arrived out of order (expected ${e.nextChunk})` } });
      return true;
    }
    e.nextChunk++;
    clearTimeout(e.timer);
    e.timer = setTimeout(() => this.expire(c.re), e.idleMs);
    e.onChunk(c);
    return true;
  }

  /** The request moved (an upload was granted more credit): push its idle deadline back. */
  touch(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    clearTimeout(e.timer);
    e.timer = setTimeout(() => this.expire(id), e.idleMs);
  }

  reply(r: Reply): boolean {
    return this.finish(r.re, r.ok ? { ok: true, result: r.result } : { ok: false, error: r.error });
  }

  finish(id: string, outcome: ReplyOutcome): boolean {
    const e = this.entries.get(id);
    if (!e) return false;
    clearTimeout(e.timer);
    this.entries.delete(id);
    e.settle(outcome);
    return true;
  }

  failAll(error: ErrorInfo): void {
    this.failWhere(() => true, error);
  }

  failWhere(match: (id: string) => boolean, error: ErrorInfo): void {
    for (const id of [...this.entries.keys()]) if (match(id)) this.finish(id, { ok: false, error });
  }

  private expire(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    e.onTimeout();
    this.finish(id, { ok: false, error: { code: "timeout", message: `the agent did not answer within ${e.idleMs} ms` } });
  }
}
