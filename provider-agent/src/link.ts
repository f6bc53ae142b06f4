/**
 * The agent's one connection to the control plane: dial out, say hello, keep the link alive with
 * text pings, notice a half-open link by missing pongs, and reconnect forever with jittered backoff
 * unless the control plane says retrying is pointless (bad token, archived, version mismatch).
 *
 * The link is lossless across reconnects (see wire.ts): reliable frames are sequenced and kept in
 * the outbox until acknowledged, resent after every welcome; frames from the edge are processed once
 * by seq and acknowledged; chunk streams the agent sends wait for the edge's credit.
 */
import WebSocket from "ws";
import {
  CLOSE,
  isReliable,
  MAX_FRAME_BYTES,
  parseEdgeFrame,
  protocolCompatible,
  type AgentFrame,
  type EdgeFrame,
  type Hello,
  type Welcome,
} from "@outpost/protocol";
import type { Clock, TimerHandle } from "./clock.js";
import { CreditLedger } from "./credit.js";
import { Dialer, type Connection, type DialerOptions, type LinkEnd } from "./dialer.js";
import { AgentError } from "./errors.js";
import type { Logger } from "./log.js";
import { Outbox, type OutboxOptions } from "./outbox.js";

export { DEFAULT_HEARTBEAT_MS, DEFAULT_STABLE_MS, type LinkEnd } from "./dialer.js";
/** A standalone ack goes out after this many reliable frames, or this long after the first, with nothing else to carry it. */
export const ACK_EVERY_FRAMES = 32;
export const ACK_DELAY_MS = 200;
/** Room left in a frame for the seq and ack the link adds. */
const SEQ_ACK_ROOM = 64;
export interface LinkOptions extends DialerOptions {
  /** ws:// or wss:// address of the environment's connect endpoint. */
  url: string;
  /** Sent first on every connection (with `ack` set by the link); a function is asked each time. */
  hello: Hello | (() => Hello);
  /** Every frame from the edge except credit and ack, which the link consumes; resent duplicates are dropped. */
  onFrame?: (frame: EdgeFrame) => void;
  /** The highest edge seq an earlier agent process processed (from the state file). */
  recv?: number;
  /** The highest seq an earlier agent process may have used; this one continues above it. */
  lastSeq?: number;
  /** Outbox limits and spool. */
  outbox?: Omit<OutboxOptions, "lastSeq" | "reserve">;
  /** Called synchronously before seqs up to `ceiling` are used: persist it, so no seq repeats after a crash. */
  reserveSeq?: (ceiling: number) => void;
  /** Called whenever recv or lastSeq moves (persist them, debounced). */
  onProgress?: (progress: { recv: number; lastSeq: number }) => void;
}

export class Link {
  onFrame: (frame: EdgeFrame) => void;
  readonly done: Promise<LinkEnd>;
  readonly #dialer: Dialer;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #outbox: Outbox;
  readonly #credit = new CreditLedger();
  /** The highest edge seq processed. */
  #recv: number;
  /** Reliable frames received since an ack last went out. */
  #ackOwed = 0;
  #ackTimer: TimerHandle | null = null;
  /** The edge did not send welcome.ack: it neither acknowledges nor grants credit. */
  #legacyEdge = false;

  constructor(private readonly options: LinkOptions) {
    this.onFrame = options.onFrame ?? (() => {});
    this.#dialer = new Dialer(options, {
      open: (conn) => this.#onOpen(conn),
      message: (conn, text, isBinary) => this.#onMessage(conn, text, isBinary),
      closed: () => {
        if (this.#ackTimer) this.#clock.clearTimeout(this.#ackTimer);
        this.#ackTimer = null;
      },
      ended: () => this.#ended(),
    });
    this.#clock = this.#dialer.clock;
    this.#log = this.#dialer.log;
    this.#recv = options.recv ?? 0;
    this.#outbox = new Outbox({ ...options.outbox, lastSeq: options.lastSeq ?? 0, reserve: (ceiling) => options.reserveSeq?.(ceiling) });
    this.done = this.#dialer.done;
  }

  /** Dial with `token` from the next connection on (a renewed token of the same generation). */
  setToken(token: string): void {
    this.#dialer.setToken(token);
  }

  /** The highest edge seq processed. */
  get recv(): number {
    return this.#recv;
  }

  /** The highest seq this agent has used. */
  get lastSeq(): number {
    return this.#outbox.lastSeq;
  }

  /** Reliable frames not yet acknowledged by the edge. */
  get unacknowledged(): number {
    return this.#outbox.count;
  }

  start(): void {
    this.#dialer.start();
  }

  get connected(): boolean {
    return this.#dialer.current?.ws.readyState === WebSocket.OPEN;
  }

  /**
   * Sends a frame. A reliable frame (a reply, say) is always accepted while the link lives, even past
   * the outbox's soft limits, and is delivered once the link is up; returns false only once the link
   * has been stopped. Other frames go out only while the link is up, and are dropped (false) otherwise.
   */
  send(frame: AgentFrame): boolean {
    const body = encode(frame);
    if (this.#dialer.closed) {
      this.#log.debug(`link closed, dropped a ${frame.kind} frame`);
      return false;
    }
    if (isReliable(frame)) {
      this.#outbox.push(body, true);
      this.#flush();
      return true;
    }
    const conn = this.#ready();
    if (!conn) {
      this.#log.debug(`link down, dropped a ${frame.kind} frame`);
      return false;
    }
    this.#transmit(conn, body);
    return true;
  }

  /**
   * Sends a frame from a producer that can wait: a chunk waits for the edge's credit, and any
   * reliable frame waits for room in the outbox. Resolves once the frame is in the outbox (it is
   * then delivered whatever happens to the connection); rejects when `signal` aborts, when the
   * stream is ended by `endStream`, or when the link is stopped.
   */
  async sendPaced(frame: AgentFrame, signal?: AbortSignal): Promise<void> {
    const body = encode(frame);
    this.#assertOpen();
    if (!isReliable(frame)) {
      this.send(frame);
      return;
    }
    if (frame.kind === "chunk") await this.#credit.wait(frame.re, frame.n, signal);
    while (!this.#outbox.hasRoom()) await this.#outbox.whenRoom(signal);
    this.#assertOpen();
    if (signal?.aborted) throw signal.reason;
    this.#outbox.push(body);
    this.#flush();
  }

  /** The chunk stream of request `re` is over: forget its credit, failing a producer still waiting. */
  endStream(re: string): void {
    this.#credit.end(re, new AgentError("cancelled", `the stream of ${re} has ended`));
  }

  /** Resolves true once the edge has acknowledged every reliable frame, false after `timeoutMs`. */
  drained(timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = this.#clock.setTimeout(() => resolve(false), timeoutMs);
      void this.#outbox.whenEmpty().then(() => {
        this.#clock.clearTimeout(timer);
        resolve(this.#outbox.count === 0);
      });
    });
  }

  /** Closes the link for good (code 1000 unless told otherwise); resolves when the socket is closed. */
  stop(code: number = CLOSE.normal, reason = "agent stopping"): Promise<LinkEnd> {
    return this.#dialer.stop(code, reason);
  }

  #onOpen(conn: Connection): void {
    this.#log.info(`connected; sending hello (ack ${this.#recv})`);
    this.#transmit(conn, encode({ ...this.#hello(), resume: this.#outbox.resumeFrom }));
  }

  #onMessage(conn: Connection, text: string, isBinary: boolean): void {
    const parsed = isBinary ? { ok: false as const, error: "binary frames are not part of the protocol" } : parseEdgeFrame(text);
    if (!parsed.ok) {
      this.#log.warn(`unparsable frame from the edge: ${parsed.error.slice(0, 200)}`);
      this.send({ v: 1, kind: "error", error: { code: "bad_request", message: parsed.error.slice(0, 4096) } });
      return;
    }
    const frame = parsed.frame;
    if (frame.kind === "welcome") return this.#onWelcome(conn, frame);
    if (frame.ack !== undefined) this.#acknowledged(frame.ack);
    if (frame.kind === "ack") return;
    if (frame.kind === "credit") return this.#credit.grant(frame.re, frame.n);
    if (frame.seq !== undefined) {
      this.#ackOwed++;
      if (frame.seq <= this.#recv) {
        // Resent after a reconnect, but processed already: drop it, and say so again.
        this.#log.debug(`dropped a resent ${frame.kind} (seq ${frame.seq} ≤ ${this.#recv})`);
        return this.#scheduleAck(conn);
      }
      this.#recv = frame.seq;
      this.#progress();
    }
    this.#deliver(frame);
    if (frame.seq !== undefined) this.#scheduleAck(conn);
  }

  #deliver(frame: EdgeFrame): void {
    try {
      this.onFrame(frame);
    } catch (err) {
      this.#log.error(`frame handler failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  #onWelcome(conn: Connection, welcome: Welcome): void {
    if (!protocolCompatible(welcome.protocol)) {
      conn.fatal = { kind: "fatal", code: CLOSE.versionMismatch, reason: `the control plane speaks protocol ${welcome.protocol}, this agent ${this.#hello().protocol}` };
      conn.ws.close(CLOSE.versionMismatch, "protocol version mismatch");
      return;
    }
    this.#log.info(`welcomed to environment ${welcome.environmentId} (heartbeat ${welcome.heartbeatMs} ms, ack ${welcome.ack ?? "none"})`);
    if (welcome.ack === undefined) {
      // An edge from before the lossless link: nothing would ever be acknowledged or credited.
      if (!this.#legacyEdge) this.#log.warn("the control plane does not acknowledge frames (no ack in welcome); frames lost with a connection are not resent");
      this.#legacyEdge = true;
      this.#credit.unlimited = true;
      this.#credit.releaseAll();
      this.#outbox.ack(this.#outbox.lastSeq);
    } else {
      this.#legacyEdge = false;
      this.#credit.unlimited = false;
      if (welcome.ack > this.#outbox.lastSeq) {
        this.#log.warn(`the control plane has processed seq ${welcome.ack} from an earlier agent (state file lost?); continuing above it`);
        this.#outbox.skipPast(welcome.ack);
      }
      this.#acknowledged(welcome.ack);
    }
    conn.welcomed = true;
    this.#outbox.rewind();
    this.#flush();
    // The agent re-grants credit for its uploads: grants are not resent, one may have been lost.
    this.#deliver(welcome);
    this.#dialer.welcomed(conn, welcome.heartbeatMs);
  }

  /** The link is over: producers waiting for room or credit fail. */
  #ended(): void {
    if (this.#ackTimer) this.#clock.clearTimeout(this.#ackTimer);
    const closed = new AgentError("agent_error", "the link to the control plane is closed");
    this.#outbox.close(closed);
    this.#credit.endAll(closed);
  }

  #hello(): Hello {
    const { hello } = this.options;
    return typeof hello === "function" ? hello() : hello;
  }

  #assertOpen(): void {
    if (this.#dialer.closed) throw new AgentError("agent_error", "the link to the control plane is closed");
  }

  #ready(): Connection | null {
    return this.#dialer.ready();
  }

  /** Writes every outbox entry the current connection has not had yet. */
  #flush(): void {
    const conn = this.#ready();
    if (!conn) return;
    const entries = this.#outbox.take();
    for (const entry of entries) this.#transmit(conn, entry.text);
    const last = entries.at(-1);
    if (last) this.#progress();
    if (last && this.#legacyEdge) this.#outbox.ack(last.seq);
  }

  /** Every frame carries the current recv as its ack. */
  #transmit(conn: Connection, text: string): void {
    conn.ws.send(`${text.slice(0, -1)},"ack":${this.#recv}}`);
    this.#ackOwed = 0;
    if (this.#ackTimer) this.#clock.clearTimeout(this.#ackTimer);
    this.#ackTimer = null;
  }

  #scheduleAck(conn: Connection): void {
    if (this.#ackOwed === 0) return;
    if (this.#ackOwed >= ACK_EVERY_FRAMES) return this.#sendAck();
    this.#ackTimer ??= this.#clock.setTimeout(() => {
      this.#ackTimer = null;
      if (this.#dialer.current === conn) this.#sendAck();
    }, ACK_DELAY_MS);
  }

  #sendAck(): void {
    const conn = this.#ready();
    if (conn) this.#transmit(conn, `{"v":1,"kind":"ack"}`);
  }

  #acknowledged(ack: number): void {
    this.#outbox.ack(ack);
    // Acknowledgements make room, and may bring spooled entries back into memory.
    this.#flush();
  }

  #progress(): void {
    this.options.onProgress?.({ recv: this.#recv, lastSeq: this.#outbox.lastSeq });
  }
}

/** The frame's JSON without seq or ack (the link adds those), checked against MAX_FRAME_BYTES. */
function encode(frame: AgentFrame): string {
  const { seq: _seq, ack: _ack, ...body } = frame;
  const text = JSON.stringify(body);
  const bytes = Buffer.byteLength(text) + SEQ_ACK_ROOM;
  if (bytes > MAX_FRAME_BYTES) throw new AgentError("payload_too_large", `a ${frame.kind} frame of ${bytes} bytes exceeds ${MAX_FRAME_BYTES}`);
  return text;
}
