/** Shared test peers for the provider-agent's unit tests: temp workspaces, tokens, a stand-in edge. */
import { createServer, type IncomingMessage, type Server } from "node:http";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { WebSocketServer, type WebSocket } from "ws";
import { INITIAL_CREDIT, parseAgentFrame, type AgentFrame } from "@outpost/protocol";
import type { Outbound } from "../../provider-agent/src/agent.js";

export async function tempDir(prefix = "outpost-unit-"): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export const ENV_ID = "env_abcdefghij0123456789";

/** An agent token as the control plane would issue it; the agent only reads the payload. */
export function agentToken(claims: Record<string, unknown> = { sub: ENV_ID, org: "acme", gen: 1 }): string {
  const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  return `${part({ alg: "HS256", typ: "JWT" })}.${part(claims)}.c2lnbmF0dXJl`;
}

type Truthy<T> = Exclude<T, false | null | undefined | 0 | "">;

/** Polls `check` until it returns a truthy value; fails after `timeoutMs`. */
export async function waitFor<T>(check: () => T | Promise<T>, timeoutMs = 5_000, what = "condition"): Promise<Truthy<T>> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as Truthy<T>;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Every file and folder under `dir` with its content (files) so a test can prove nothing changed. */
export async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of await readdir(dir, { recursive: true })) {
    const full = path.join(dir, name);
    const st = await stat(full).catch(() => null);
    out[name] = !st ? "<dangling>" : st.isDirectory() ? "<dir>" : (await readFile(full)).toString("base64");
  }
  return out;
}

export type EdgeConnection = {
  ws: WebSocket;
  request: IncomingMessage;
  /** Text frames from the agent, heartbeats included, in arrival order. */
  messages: string[];
  /** Parsed JSON frames (everything but heartbeats). */
  frames: Array<Record<string, unknown>>;
  closed: Promise<{ code: number; reason: string }>;
};

export type Frame = Record<string, unknown>;

export interface EdgeOptions {
  /** Answer hello with welcome (heartbeatMs given). */
  welcomeHeartbeatMs?: number | null;
  /** Answer "ping" with "pong". */
  pong?: boolean;
  /** Refuse the HTTP upgrade with this status and body instead of accepting it. */
  refuse?: (attempt: number) => { status: number; body: string } | null;
  /**
   * The `ack` the welcome carries: by default the edge's recv (what it processed); a test can make
   * it stale to force resends, or undefined to play an edge from before the lossless link.
   */
  welcomeAck?: (edge: TestEdge) => number | undefined;
  /** Acknowledge agent frames with ack frames, every `ackEvery` reliable frames or after `ackDelayMs` (default on: 16, 20 ms). */
  ack?: boolean;
  ackEvery?: number;
  ackDelayMs?: number;
  /** Grant credit for each chunk received (n + INITIAL_CREDIT) and again after each welcome (default "auto"). */
  credit?: "auto" | "manual";
  /** The edge's seq counter starts above this (a restarted agent meets the same edge state). */
  lastSeq?: number;
  /** Called for every agent frame the edge processes (after dedup): tests drop connections here. */
  onFrame?: (frame: Frame, conn: EdgeConnection, edge: TestEdge) => void;
  /** Keep chunk data in `messages`, `frames` and `delivered` (default true); off for transfers of hundreds of MB. */
  keepChunkData?: boolean;
}

/**
 * A stand-in for the control plane's agent endpoint, speaking the wire protocol over a real socket:
 * it processes the agent's reliable frames once by seq (`recv`, `delivered`, `duplicates`),
 * acknowledges them, grants credit for the agent's chunk streams, and keeps its own sequenced
 * frames (`sendReliable`) until the agent acknowledges them, resending them after a hello.
 */
export class TestEdge {
  readonly connections: EdgeConnection[] = [];
  upgrades = 0;
  /** The highest agent seq processed, across connections. */
  recv = 0;
  /** The last ack this edge sent (in a frame or a welcome). */
  ackSent = 0;
  /** Agent frames processed, in order, across connections: resent duplicates excluded. */
  readonly delivered: Frame[] = [];
  /** Resent agent frames dropped because their seq was not above recv. */
  duplicates = 0;
  /** The highest chunk ordinal granted per stream (auto credit). */
  readonly grants = new Map<string, number>();
  /** The edge's sequenced frames the agent has not acknowledged yet. */
  readonly outbox: Frame[] = [];
  #seq: number;
  #owed = 0;
  #ackTimer: NodeJS.Timeout | null = null;
  readonly #server: Server;
  readonly #wss = new WebSocketServer({ noServer: true });
  #waiters: Array<() => void> = [];

  private constructor(readonly options: EdgeOptions) {
    this.#seq = options.lastSeq ?? 0;
    this.#server = createServer((_req, res) => res.writeHead(426).end());
    this.#server.on("upgrade", (req, socket, head) => {
      const refusal = options.refuse?.(this.upgrades++) ?? null;
      if (refusal) {
        const body = Buffer.from(refusal.body);
        socket.end(
          `HTTP/1.1 ${refusal.status} Refused\r\nContent-Type: application/problem+json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${refusal.body}`,
        );
        return;
      }
      this.#wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws, req));
    });
  }

  static async start(options: EdgeOptions = {}, port = 0): Promise<TestEdge> {
    const edge = new TestEdge({ welcomeHeartbeatMs: 10_000, pong: true, ack: true, credit: "auto", ...options });
    await new Promise<void>((resolve) => edge.#server.listen(port, "127.0.0.1", resolve));
    return edge;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  #accept(ws: WebSocket, request: IncomingMessage): void {
    const conn: EdgeConnection = {
      ws,
      request,
      messages: [],
      frames: [],
      closed: new Promise((resolve) => ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() }))),
    };
    ws.on("message", (data) => {
      const text = (data as Buffer).toString("utf8");
      const keep = this.options.keepChunkData !== false;
      if (keep) conn.messages.push(text);
      if (text === "ping") {
        if (this.options.pong) ws.send("pong");
      } else {
        const frame = JSON.parse(text) as Frame;
        conn.frames.push(frame);
        this.#receive(conn, frame);
        // After onFrame has seen it: the frame stays in the records without its bytes.
        if (!keep && frame.kind === "chunk") frame.data = "";
      }
      this.#wake();
    });
    this.connections.push(conn);
    this.#wake();
  }

  #receive(conn: EdgeConnection, frame: Frame): void {
    if (typeof frame.ack === "number") this.#trim(frame.ack);
    if (frame.kind === "hello") {
      if (!this.options.welcomeHeartbeatMs) return;
      const ack = this.options.welcomeAck ? this.options.welcomeAck(this) : this.recv;
      if (ack !== undefined) this.ackSent = ack;
      conn.ws.send(JSON.stringify({ v: 1, kind: "welcome", protocol: "1.0", environmentId: ENV_ID, heartbeatMs: this.options.welcomeHeartbeatMs, ...(ack !== undefined ? { ack } : {}) }));
      // Resend what the agent has not acknowledged, then the credit it may have missed.
      for (const f of this.outbox) conn.ws.send(JSON.stringify({ ...f, ack: this.recv }));
      if (this.options.credit === "auto") for (const [re, n] of this.grants) conn.ws.send(JSON.stringify({ v: 1, kind: "credit", re, n }));
      return;
    }
    if (typeof frame.seq === "number") {
      if (frame.seq <= this.recv) this.duplicates++;
      else {
        this.recv = frame.seq;
        this.#deliver(conn, frame);
      }
      if (conn.ws.readyState === conn.ws.OPEN) this.#owe(conn);
      return;
    }
    this.#deliver(conn, frame);
  }

  #deliver(conn: EdgeConnection, frame: Frame): void {
    this.delivered.push(frame);
    if (frame.kind === "chunk" && this.options.credit === "auto" && !frame.last) {
      const re = frame.re as string;
      const n = (frame.n as number) + INITIAL_CREDIT;
      this.grants.set(re, n);
      conn.ws.send(JSON.stringify({ v: 1, kind: "credit", re, n }));
    }
    if (frame.kind === "reply") this.grants.delete(frame.re as string);
    this.options.onFrame?.(frame, conn, this);
  }

  #owe(conn: EdgeConnection): void {
    if (!this.options.ack) return;
    if (++this.#owed >= (this.options.ackEvery ?? 16)) return this.#sendAck(conn);
    this.#ackTimer ??= setTimeout(() => this.#sendAck(conn), this.options.ackDelayMs ?? 20);
  }

  #sendAck(conn: EdgeConnection): void {
    if (this.#ackTimer) clearTimeout(this.#ackTimer);
    this.#ackTimer = null;
    this.#owed = 0;
    if (conn.ws.readyState !== conn.ws.OPEN) return;
    this.ackSent = this.recv;
    conn.ws.send(JSON.stringify({ v: 1, kind: "ack", ack: this.recv }));
  }

  #trim(ack: number): void {
    while (this.outbox.length > 0 && (this.outbox[0]!.seq as number) <= ack) this.outbox.shift();
  }

  /** Sends a frame under the edge's next seq on the latest connection, keeping it until acknowledged. */
  sendReliable(frame: Frame): number {
    const seq = ++this.#seq;
    const sequenced = { ...frame, seq };
    this.outbox.push(sequenced);
    const conn = this.connections.at(-1);
    if (conn && conn.ws.readyState === conn.ws.OPEN) conn.ws.send(JSON.stringify({ ...sequenced, ack: this.recv }));
    return seq;
  }

  /** Grants credit for the agent's stream `re` up to chunk `n` (manual credit). */
  grant(index: number, re: string, n: number): void {
    this.send(index, { v: 1, kind: "credit", re, n });
  }

  /** The frames the edge processed of `kind` (and `re`), in order. */
  deliveredOf(kind: string, re?: string): Frame[] {
    return this.delivered.filter((f) => f.kind === kind && (re === undefined || f.re === re));
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** Resolves once `check` holds, re-checked on every connection and message. */
  until<T>(check: () => T | undefined | null | false, timeoutMs = 5_000, what = "the edge"): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
      const test = () => {
        const v = check();
        if (v) {
          clearTimeout(timer);
          resolve(v);
        } else this.#waiters.push(test);
      };
      test();
    });
  }

  connection(index: number, timeoutMs = 5_000): Promise<EdgeConnection> {
    return this.until(() => this.connections[index], timeoutMs, `connection ${index}`);
  }

  /** The first frame of `kind` (optionally with re) on connection `index`. */
  frame(index: number, match: (f: Record<string, unknown>) => boolean, timeoutMs = 5_000): Promise<Record<string, unknown>> {
    return this.until(() => this.connections[index]?.frames.find(match), timeoutMs, "a frame");
  }

  send(index: number, frame: unknown): void {
    this.connections[index]?.ws.send(JSON.stringify(frame));
  }

  async close(): Promise<void> {
    if (this.#ackTimer) clearTimeout(this.#ackTimer);
    for (const c of this.connections) c.ws.terminate();
    this.#wss.close();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await closed;
  }
}

/** An agent's outbound that checks every frame against the protocol and keeps it, for tests of the agent's dispatch. */
export class FrameRecorder implements Outbound {
  frames: AgentFrame[] = [];
  send(frame: AgentFrame): boolean {
    const parsed = parseAgentFrame(JSON.stringify(frame));
    if (!parsed.ok) throw new Error(`agent sent an invalid frame: ${parsed.error}`);
    this.frames.push(parsed.frame);
    return true;
  }
  async sendPaced(frame: AgentFrame): Promise<void> {
    this.send(frame);
  }
  of<K extends AgentFrame["kind"]>(kind: K, match: (f: Extract<AgentFrame, { kind: K }>) => boolean = () => true) {
    return this.frames.filter((f): f is Extract<AgentFrame, { kind: K }> => f.kind === kind && match(f as Extract<AgentFrame, { kind: K }>));
  }
  replies(re: string) {
    return this.of("reply", (f) => f.re === re);
  }
  reply(re: string) {
    return waitFor(() => this.replies(re)[0], 10_000, `the reply to ${re}`);
  }
  async result(re: string): Promise<unknown> {
    const r = await this.reply(re);
    if (!r.ok) throw Object.assign(new Error(r.error.message), r.error);
    return r.result;
  }
}
