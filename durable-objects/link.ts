/**
 * The edge's half of the reliable link (see protocol/src/wire.ts). Outgoing reliable frames get a
 * seq and stay in an outbox until the agent acknowledges them: in memory when they belong to a
 * request in flight (the request keeps the object awake), in SQLite when they must survive eviction
 * (run control). Incoming frames are processed once: the highest agent seq processed (`recv`) is
 * kept in memory per socket and copied to the socket's attachment, which survives hibernation, each
 * time it is acknowledged (every ACK_EVERY frames or ACK_DELAY_MS): a pending ack timer keeps the
 * object from hibernating, so the attachment is current before it can. It is written to storage on
 * close and together with every side effect that is itself stored. Seqs are reserved in blocks, so a woken
 * object never reuses one.
 */
import { CLOSE, INITIAL_CREDIT, isReliable, type EdgeFrame } from "@outpost/protocol";
import { agentAttachment } from "./agent-socket.js";
import type { Sql } from "./sql.js";

const SEQ_BLOCK = 1000;
const ACK_EVERY = 32;
const ACK_DELAY_MS = 100;
/** Frames that may wait for an earlier one, and how long, before the link is reset. */
const MAX_HELD = 256;
const GAP_MS = 2_000;

type Sequenced = EdgeFrame & { seq?: number; ack?: number };

export class EdgeLink {
  private nextSeq = 0;
  private reserved = 0;
  private readonly volatile = new Map<number, Sequenced>();
  private unacked = 0;
  private ackTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly credit = new Map<string, { granted: number; waiters: Array<() => void> }>();
  private readonly held = new Map<number, { seq?: number }>();
  private gapTimer: ReturnType<typeof setTimeout> | null = null;
  /** Credit this edge has granted for streams it receives; unsequenced, so resent after a reconnect. */
  private readonly grants = new Map<string, number>();
  /** Per socket: the recv processed, and the recv its attachment holds. */
  private positions = new WeakMap<WebSocket, { recv: number; saved: number; resume: number | undefined }>();
  /**
   * The lowest seq in the durable outbox (null: it is empty; undefined: not read since this wake),
   * so that the ack every agent frame carries costs no query while no durable frame waits.
   */
  private durableLowest: number | null | undefined = undefined;

  constructor(private readonly sql: Sql) {}

  /** Sends a frame; reliable kinds are sequenced and kept (durably under `key` when given). */
  send(ws: WebSocket | null, frame: EdgeFrame, durableKey?: string): number | null {
    let out: Sequenced = frame;
    if (isReliable(frame)) {
      out = { ...frame, seq: this.allocate() };
      if (durableKey) {
        this.sql`INSERT INTO outbox (seq, key, frame) VALUES (${out.seq!}, ${durableKey}, ${JSON.stringify(out)})`;
        // Seqs only grow: a frame already waiting stays the lowest; into an empty outbox this one is.
        if (this.durableLowest === null) this.durableLowest = out.seq!;
      } else this.volatile.set(out.seq!, out);
    }
    if (ws) this.transmit(ws, out);
    return out.seq ?? null;
  }

  /**
   * The frames to process now, in order. A resent frame (seq ≤ recv) is dropped but acknowledged
   * again. When the agent said where its seqs resume, a frame that arrives ahead of its turn waits
   * (in memory, bounded) for the ones before it; a gap that does not fill closes the link, and the
   * agent resends from our ack.
   */
  receive<F extends { seq?: number; ack?: number }>(ws: WebSocket, frame: F): F[] {
    if (frame.ack !== undefined) this.acknowledged(frame.ack);
    if (frame.seq === undefined) return [frame];
    const meta = this.position(ws);
    if (!meta) return [];
    this.scheduleAck(ws);
    if (frame.seq <= meta.recv) return [];
    const expected = Math.max(meta.recv + 1, meta.resume ?? 0);
    if (!meta.resume || frame.seq === expected) {
      const ready = [frame];
      let recv = frame.seq;
      for (let next = this.held.get(recv + 1); next; next = this.held.get(recv + 1)) {
        this.held.delete(recv + 1);
        ready.push(next as F);
        recv++;
      }
      meta.recv = recv;
      if (this.held.size === 0 && this.gapTimer) (clearTimeout(this.gapTimer), (this.gapTimer = null));
      return ready;
    }
    if (frame.seq > expected) {
      this.held.set(frame.seq, frame);
      if (this.held.size > MAX_HELD) this.gap(ws, `more than ${MAX_HELD} frames arrived ahead of seq ${expected}`);
      else this.gapTimer ??= setTimeout(() => this.gap(ws, `seq ${expected} did not arrive within ${GAP_MS} ms`), GAP_MS);
    }
    return [];
  }

  /** A new connection (its attachment now says where it resumes): forget frames held for the old one. */
  reset(): void {
    this.positions = new WeakMap();
    this.held.clear();
    if (this.gapTimer) clearTimeout(this.gapTimer);
    this.gapTimer = null;
  }

  private gap(ws: WebSocket, why: string): void {
    this.reset();
    try {
      ws.close(CLOSE.protocolError, `gap in frames: ${why}`.slice(0, 120));
    } catch {
      // already closed
    }
  }

  /** The agent has processed everything up to `ack`: forget it. */
  acknowledged(ack: number): void {
    for (const seq of this.volatile.keys()) if (seq <= ack) this.volatile.delete(seq);
    if (this.durableLowest === undefined) this.durableLowest = this.lowestDurable();
    if (this.durableLowest === null || this.durableLowest > ack) return;
    this.sql`DELETE FROM outbox WHERE seq <= ${ack}`;
    this.durableLowest = this.lowestDurable();
  }

  private lowestDurable(): number | null {
    return this.sql<{ seq: number | null }>`SELECT MIN(seq) AS seq FROM outbox`[0]?.seq ?? null;
  }

  /**
   * After hello: drop what the agent already has, resend the rest in seq order, then the credit
   * granted so far. Returns the ids of the requests resent.
   */
  replay(ws: WebSocket, agentAck: number): Set<string> {
    this.acknowledged(agentAck);
    const durable = this.sql<{ frame: string }>`SELECT frame FROM outbox ORDER BY seq`.map((r) => JSON.parse(r.frame) as Sequenced);
    const all = [...durable, ...this.volatile.values()].sort((a, b) => a.seq! - b.seq!);
    const resent = new Set<string>();
    for (const frame of all) {
      this.transmit(ws, frame);
      if (frame.kind === "request") resent.add(frame.id);
    }
    for (const [re, n] of this.grants) this.transmit(ws, { v: 1, kind: "credit", re, n });
    return resent;
  }

  /** Lets the agent send chunks of `re` up to `n`; remembered until `endGrant`. */
  grantCredit(ws: WebSocket | null, re: string, n: number): void {
    if ((this.grants.get(re) ?? -1) >= n) return;
    this.grants.set(re, n);
    if (ws) this.transmit(ws, { v: 1, kind: "credit", re, n });
  }

  endGrant(re: string): void {
    this.grants.delete(re);
  }

  /** Has the agent acknowledged the (volatile) frame sent with this seq? */
  delivered(seq: number): boolean {
    return !this.volatile.has(seq);
  }

  /** Is a durable frame with this key still waiting for the agent? */
  hasPending(key: string): boolean {
    return this.sql`SELECT seq FROM outbox WHERE key = ${key} LIMIT 1`.length > 0;
  }

  /** The highest agent seq processed, as the socket knows it. */
  recvOf(ws: WebSocket): number {
    return this.position(ws)?.recv ?? 0;
  }

  private position(ws: WebSocket): { recv: number; saved: number; resume: number | undefined } | null {
    let p = this.positions.get(ws);
    if (!p) {
      const meta = agentAttachment(ws);
      if (!meta) return null;
      p = { recv: meta.recv, saved: meta.recv, resume: meta.resume };
      this.positions.set(ws, p);
    }
    return p;
  }

  /** Copies recv into the attachment when it moved (with each ack, so before any hibernation). */
  private save(ws: WebSocket): void {
    const p = this.positions.get(ws);
    const meta = p && p.recv !== p.saved ? agentAttachment(ws) : null;
    if (!p || !meta) return;
    try {
      ws.serializeAttachment({ ...meta, recv: p.recv });
      p.saved = p.recv;
    } catch {
      // the socket is gone; its recv goes to storage on close
    }
  }

  // ---- credit for the chunk streams the edge sends (file.write uploads) ----

  openCredit(re: string): void {
    this.credit.set(re, { granted: INITIAL_CREDIT - 1, waiters: [] });
  }

  grant(re: string, n: number): void {
    const c = this.credit.get(re);
    if (!c || n <= c.granted) return;
    c.granted = n;
    const waiters = c.waiters;
    c.waiters = [];
    for (const w of waiters) w();
  }

  /** Resolves once chunk `n` of `re` may be sent (or the stream was closed). */
  async waitCredit(re: string, n: number): Promise<void> {
    for (;;) {
      const c = this.credit.get(re);
      if (!c || n <= c.granted) return;
      await new Promise<void>((resolve) => c.waiters.push(resolve));
    }
  }

  closeCredit(re: string): void {
    const c = this.credit.get(re);
    this.credit.delete(re);
    for (const w of c?.waiters ?? []) w();
  }

  private transmit(ws: WebSocket, frame: Sequenced): void {
    try {
      ws.send(JSON.stringify({ ...frame, ack: this.recvOf(ws) }));
    } catch {
      // the socket closed; the frame stays in the outbox for the next connection
    }
  }

  private scheduleAck(ws: WebSocket): void {
    if (++this.unacked >= ACK_EVERY) return this.sendAck(ws);
    this.ackTimer ??= setTimeout(() => this.sendAck(ws), ACK_DELAY_MS);
  }

  private sendAck(ws: WebSocket): void {
    if (this.ackTimer) clearTimeout(this.ackTimer);
    this.ackTimer = null;
    this.unacked = 0;
    this.save(ws);
    try {
      ws.send(JSON.stringify({ v: 1, kind: "ack", ack: this.recvOf(ws) }));
    } catch {
      // closed: the agent learns our recv from the next welcome
    }
  }

  private allocate(): number {
    if (this.nextSeq === 0 || this.nextSeq > this.reserved) {
      const [row] = this.sql<{ r: number }>`SELECT edge_seq_reserved AS r FROM environment LIMIT 1`;
      const stored = row?.r ?? 0;
      if (this.nextSeq === 0) this.nextSeq = stored + 1;
      this.reserved = Math.max(stored, this.nextSeq - 1) + SEQ_BLOCK;
      this.sql`UPDATE environment SET edge_seq_reserved = ${this.reserved}`;
    }
    return this.nextSeq++;
  }
}
