/**
 * The part of a link to the control plane that the agent (`Link`) and the provider host
 * (`HostLink`) share: dial out with a bearer token, keep the connection alive with text pings and
 * notice a half-open one by missing pongs, tell a refusal worth retrying from one that is not,
 * reconnect forever with jittered backoff (prompt for the first minute of an outage while nobody
 * listens, from the start again once a connection has stayed up),
 * and stop cleanly. What is said on the connection (hello, welcome, frames) is the owner's, through
 * the hooks.
 */
import WebSocket from "ws";
import type { IncomingMessage } from "node:http";
import { CLOSE, FATAL_CLOSE_CODES, HEARTBEAT_PING, HEARTBEAT_PONG, MAX_FRAME_BYTES } from "@outpost/protocol";
import { backoffDelay, type BackoffOptions } from "./backoff.js";
import { realClock, type Clock, type TimerHandle } from "./clock.js";
import { silentLogger, type Logger } from "./log.js";

export const DEFAULT_HEARTBEAT_MS = 10_000;
export const DEFAULT_STABLE_MS = 10_000;
/** Pings in a row without any answer before the link counts as half-open. */
const MISSED_PINGS = 2;
/**
 * The same before the welcome. A control plane serving a storm of returning agents accepts the
 * upgrades long before it gets to their hellos (locally about 100 a second, behind every queued
 * upgrade); cutting such a link after two pings puts its upgrade and hello at the back of the queue
 * again, and a whole fleet doing it keeps the storm from ever settling.
 */
const MISSED_PINGS_BEFORE_WELCOME = 6;
/** HTTP statuses on the upgrade after which reconnecting with the same token is pointless. */
const FATAL_STATUSES = new Set([401, 403, 404]);

export type LinkEnd = { kind: "stopped" } | { kind: "fatal"; reason: string; code?: number; status?: number };

export type Connection = {
  ws: WebSocket;
  unanswered: number;
  heartbeat: TimerHandle | null;
  stable: TimerHandle | null;
  /** Frames flow only once the other side has welcomed this connection. */
  welcomed: boolean;
  /** Set when this connection ended in a way that must not be retried. */
  fatal: LinkEnd | null;
  refused: boolean;
  /** Nobody was listening (ECONNREFUSED): a retry costs the other side nothing. */
  unreachable: boolean;
};

export interface DialerOptions {
  /** ws:// or wss:// address. */
  url: string;
  token: string;
  heartbeatMs?: number;
  /** How long a welcomed link must stay up before the backoff starts again from the beginning. */
  stableMs?: number;
  backoff?: BackoffOptions;
  clock?: Clock;
  log?: Logger;
  handshakeTimeoutMs?: number;
}

export interface DialerHooks {
  /** The socket is open: say hello. */
  open(conn: Connection): void;
  /** Anything but a pong (the dialer has already counted it as a sign of life). */
  message(conn: Connection, text: string, isBinary: boolean): void;
  /** The connection is gone, whatever comes next (a reconnect or the end). */
  closed?(conn: Connection): void;
  /** The link is over for good, before `done` resolves. */
  ended?(end: LinkEnd): void;
}

export class Dialer {
  readonly done: Promise<LinkEnd>;
  #finish!: (end: LinkEnd) => void;
  #conn: Connection | null = null;
  #attempt = 0;
  /** What the next connection dials with: `options.token` until a renewed one is set. */
  #token: string;
  /** When the outage began: the last stable link ended, or the first dial (null while a link is stable). */
  #downSince: number | null = null;
  #heartbeatMs: number;
  #reconnect: TimerHandle | null = null;
  #closeGrace: TimerHandle | null = null;
  #stopping = false;
  #ended = false;
  readonly clock: Clock;
  readonly log: Logger;

  constructor(
    private readonly options: DialerOptions,
    private readonly hooks: DialerHooks,
  ) {
    this.#token = options.token;
    this.#heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    this.clock = options.clock ?? realClock();
    this.log = options.log ?? silentLogger;
    this.done = new Promise((resolve) => {
      this.#finish = resolve;
    });
  }

  /** The connection of the moment (open or opening), if any. */
  get current(): Connection | null {
    return this.#conn;
  }

  /** Stopped, or ended for good: nothing more will be sent. */
  get closed(): boolean {
    return this.#stopping || this.#ended;
  }

  /** The token the next connection dials with (the one of the moment stays up). */
  setToken(token: string): void {
    this.#token = token;
  }

  start(): void {
    if (this.#conn || this.#ended) return;
    this.#downSince ??= this.clock.now();
    this.#connect();
  }

  /** The connection, when frames may flow on it (open and welcomed). */
  ready(): Connection | null {
    const conn = this.#conn;
    return conn && conn.welcomed && conn.ws.readyState === WebSocket.OPEN ? conn : null;
  }

  /** The other side welcomed `conn`: ping at its interval, and count the connection stable after a while. */
  welcomed(conn: Connection, heartbeatMs: number): void {
    conn.welcomed = true;
    this.#heartbeatMs = heartbeatMs;
    this.#armHeartbeat(conn);
    if (conn.stable) this.clock.clearTimeout(conn.stable);
    conn.stable = this.clock.setTimeout(() => {
      conn.stable = null;
      this.#attempt = 0;
      this.#downSince = null;
    }, this.options.stableMs ?? DEFAULT_STABLE_MS);
  }

  /** Closes the link for good; resolves when the socket is closed. */
  stop(code: number, reason: string): Promise<LinkEnd> {
    if (this.#stopping || this.#ended) return this.done;
    this.#stopping = true;
    if (this.#reconnect) this.clock.clearTimeout(this.#reconnect);
    const conn = this.#conn;
    if (!conn) this.#end({ kind: "stopped" });
    else if (conn.ws.readyState === WebSocket.CONNECTING) conn.ws.terminate();
    else {
      conn.ws.close(code, reason);
      // A peer that never answers the close must not hold us up.
      this.#closeGrace = this.clock.setTimeout(() => conn.ws.terminate(), 2_000);
    }
    return this.done;
  }

  #connect(): void {
    this.#reconnect = null;
    const { url } = this.options;
    this.log.info(`connecting to ${url}`);
    const ws = new WebSocket(url, {
      headers: { Authorization: `Bearer ${this.#token}` },
      maxPayload: MAX_FRAME_BYTES,
      // No compression: deflating every chunk frame (random bytes as base64) cost the agent and
      // workerd about three quarters of a file transfer's CPU, for little saved on the wire.
      perMessageDeflate: false,
      handshakeTimeout: this.options.handshakeTimeoutMs ?? 30_000,
    });
    const conn: Connection = { ws, unanswered: 0, heartbeat: null, stable: null, welcomed: false, fatal: null, refused: false, unreachable: false };
    this.#conn = conn;
    ws.on("open", () => {
      this.hooks.open(conn);
      this.#armHeartbeat(conn);
    });
    ws.on("message", (data, isBinary) => {
      // Anything from the other side proves the link is alive, not only a pong.
      conn.unanswered = 0;
      const text = rawText(data);
      if (!isBinary && text === HEARTBEAT_PONG) return;
      this.hooks.message(conn, text, isBinary);
    });
    ws.on("unexpected-response", (_req, res) => this.#onRefused(conn, res));
    ws.on("error", (err) => {
      if ((err as NodeJS.ErrnoException).code === "ECONNREFUSED") conn.unreachable = true;
      if (!conn.refused) this.log.warn(`link error: ${err.message}`);
    });
    ws.on("close", (code, reason) => this.#onClose(conn, code, reason.toString("utf8")));
  }

  #armHeartbeat(conn: Connection): void {
    if (conn.heartbeat) this.clock.clearTimeout(conn.heartbeat);
    conn.heartbeat = this.clock.setTimeout(() => {
      conn.heartbeat = null;
      if (conn.ws.readyState !== WebSocket.OPEN) return;
      const missed = conn.welcomed ? MISSED_PINGS : MISSED_PINGS_BEFORE_WELCOME;
      if (conn.unanswered >= missed) {
        this.log.warn(`no pong for ${missed} heartbeats${conn.welcomed ? "" : " and no welcome"}; the link is half-open, reconnecting`);
        conn.ws.terminate();
        return;
      }
      conn.unanswered++;
      conn.ws.send(HEARTBEAT_PING);
      this.#armHeartbeat(conn);
    }, this.#heartbeatMs);
  }

  #onRefused(conn: Connection, res: IncomingMessage): void {
    conn.refused = true;
    const status = res.statusCode ?? 0;
    let body = "";
    const done = () => {
      const detail = problemDetail(body) ?? res.statusMessage ?? "";
      const reason = `the control plane refused the connection: HTTP ${status}${detail ? ` ${detail}` : ""}`;
      if (FATAL_STATUSES.has(status)) conn.fatal = { kind: "fatal", status, reason };
      else this.log.warn(reason);
      conn.ws.terminate();
    };
    res.setEncoding("utf8");
    res.on("data", (piece: string) => {
      if (body.length < 16_384) body += piece;
    });
    res.once("end", done);
    res.once("error", done);
  }

  #onClose(conn: Connection, code: number, reason: string): void {
    if (this.#conn !== conn) return;
    this.#conn = null;
    if (conn.heartbeat) this.clock.clearTimeout(conn.heartbeat);
    if (conn.stable) this.clock.clearTimeout(conn.stable);
    this.hooks.closed?.(conn);
    if (this.#stopping) return this.#end({ kind: "stopped" });
    if (conn.fatal) return this.#end(conn.fatal);
    if (FATAL_CLOSE_CODES.has(code)) return this.#end({ kind: "fatal", code, reason: `the control plane closed the link: ${code} ${reason}`.trim() });
    const now = this.clock.now();
    this.#downSince ??= now;
    // Prompt retries only while they cost the other side nothing: right after a welcomed link is
    // cut, or while nobody listens. A control plane that was reached and still failed us (refused
    // the upgrade, timed out, closed before the welcome) may be overloaded: the long cap at once.
    const prompt = conn.welcomed || conn.unreachable;
    const delay = Math.round(backoffDelay(this.#attempt, prompt ? now - this.#downSince : Infinity, this.options.backoff));
    this.#attempt++;
    if (!conn.refused) this.log.info(`disconnected (${code}${reason ? ` ${reason}` : ""}); reconnecting in ${delay} ms`);
    else this.log.info(`reconnecting in ${delay} ms`);
    this.#reconnect = this.clock.setTimeout(() => this.#connect(), delay);
  }

  #end(end: LinkEnd): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#closeGrace) this.clock.clearTimeout(this.#closeGrace);
    if (end.kind === "fatal" && end.code === CLOSE.stopped) this.log.info(end.reason);
    else if (end.kind === "fatal") this.log.error(end.reason);
    this.hooks.ended?.(end);
    this.#finish(end);
  }
}

function rawText(data: WebSocket.RawData): string {
  if (Buffer.isBuffer(data)) return data.toString("utf8");
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  return Buffer.from(data).toString("utf8");
}

/** The `detail` of a problem+json body, if the body is one. */
function problemDetail(body: string): string | null {
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed === "object" && parsed !== null && "detail" in parsed && typeof parsed.detail === "string") return parsed.detail;
  } catch {
    // not JSON
  }
  const text = body.trim();
  return text ? text.slice(0, 200) : null;
}
