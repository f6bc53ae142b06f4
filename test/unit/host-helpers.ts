/** Shared peers for the provider host's tests: host tokens, git repositories, process checks, a stand-in host registry. */
import { execFileSync } from "node:child_process";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { mkdirSync, readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { WebSocketServer, type WebSocket } from "ws";

export const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
export const cliSource = path.join(repoRoot, "provider-agent/src/cli.ts");
/** Node flags that run the CLI from source, usable from any working directory. */
export const tsxImport = ["--import", pathToFileURL(path.join(repoRoot, "node_modules/tsx/dist/loader.mjs")).href];
/** How a host started in a test runs the in-environment agent: the CLI from source. */
export const agentCommand = [process.execPath, ...tsxImport, cliSource];

/** A host token as the control plane would issue it; the host only reads the payload. */
export function hostToken(claims: Record<string, unknown> = { sub: "box-1", org: "acme", aud: "outpost:host" }): string {
  const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  return `${part({ alg: "HS256", typ: "JWT" })}.${part(claims)}.c2lnbmF0dXJl`;
}

export function git(cwd: string, ...args: string[]): string {
  return execFileSync("git", args, { cwd, encoding: "utf8", env: { ...process.env, GIT_OPTIONAL_LOCKS: "0" } }).trim();
}

/** A repository with one commit on `main`. */
export function gitRepo(dir: string): string {
  mkdirSync(dir, { recursive: true });
  git(dir, "init", "-q", "-b", "main");
  git(dir, "config", "user.email", "test@outpost.invalid");
  git(dir, "config", "user.name", "Outpost test");
  execFileSync("sh", ["-c", "echo hello > README.md"], { cwd: dir });
  git(dir, "add", "README.md");
  git(dir, "commit", "-q", "-m", "initial");
  return dir;
}

/** The argv of a live process (Linux), empty when it is gone. */
export function commandLineOf(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  } catch {
    return [];
  }
}

export type Frame = Record<string, unknown>;

export type RegistryConnection = {
  ws: WebSocket;
  request: IncomingMessage;
  frames: Frame[];
  pings: number;
  closed: Promise<{ code: number; reason: string }>;
};

/**
 * A stand-in for the org's host registry (`GET /v1/hosts/connect`): it refuses a wrong bearer token
 * with 401, answers host.hello with host.welcome and `ping` with `pong`, sends host.request frames
 * and collects host.reply and host.status.
 */
export class TestRegistry {
  readonly connections: RegistryConnection[] = [];
  readonly #server: Server;
  readonly #wss = new WebSocketServer({ noServer: true });
  #waiters: Array<() => void> = [];
  #nextId = 0;

  private constructor(readonly options: { token: string; heartbeatMs: number; pong: boolean }) {
    this.#server = createServer((_req, res) => res.writeHead(426).end());
    this.#server.on("upgrade", (req, socket, head) => {
      const url = new URL(req.url ?? "/", "http://x");
      if (url.pathname !== "/v1/hosts/connect" || req.headers.authorization !== `Bearer ${options.token}`) {
        const body = JSON.stringify({ status: 401, title: "Unauthorized", detail: "bad host token", code: "unauthorized" });
        socket.end(`HTTP/1.1 401 Unauthorized\r\nContent-Type: application/problem+json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
        return;
      }
      this.#wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws, req));
    });
  }

  static async start(options: { token: string; heartbeatMs?: number; pong?: boolean }): Promise<TestRegistry> {
    const registry = new TestRegistry({ heartbeatMs: 10_000, pong: true, ...options });
    await new Promise<void>((resolve) => registry.#server.listen(0, "127.0.0.1", resolve));
    return registry;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  #accept(ws: WebSocket, request: IncomingMessage): void {
    const conn: RegistryConnection = {
      ws,
      request,
      frames: [],
      pings: 0,
      closed: new Promise((resolve) => ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() }))),
    };
    ws.on("message", (data) => {
      const text = (data as Buffer).toString("utf8");
      if (text === "ping") {
        conn.pings++;
        if (this.options.pong) ws.send("pong");
      } else {
        const frame = JSON.parse(text) as Frame;
        conn.frames.push(frame);
        if (frame.kind === "host.hello") {
          const host = frame.host as { name: string };
          ws.send(JSON.stringify({ v: 1, kind: "host.welcome", hostName: host.name, heartbeatMs: this.options.heartbeatMs }));
        }
      }
      this.#wake();
    });
    this.connections.push(conn);
    this.#wake();
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  until<T>(check: () => T | undefined | null | false, timeoutMs = 10_000, what = "the registry"): Promise<T> {
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

  /** The host.hello of connection `index`. */
  hello(index: number, timeoutMs = 20_000): Promise<Frame> {
    return this.until(() => this.connections[index]?.frames.find((f) => f.kind === "host.hello"), timeoutMs, `host.hello on connection ${index}`);
  }

  /** Every frame of `kind` on every connection, in order. */
  framesOf(kind: string): Frame[] {
    return this.connections.flatMap((c) => c.frames.filter((f) => f.kind === kind));
  }

  /** Sends a host.request on the latest connection (or the raw `frame`) and resolves with its reply. */
  async request(op: string, params: unknown, timeoutMs = 60_000, frame?: Frame): Promise<Frame> {
    const id = (frame?.id as string | undefined) ?? `hr_${++this.#nextId}`;
    const conn = this.connections.at(-1);
    if (!conn) throw new Error("no host connected");
    const before = this.framesOf("host.reply").filter((f) => f.re === id).length;
    conn.ws.send(JSON.stringify(frame ?? { v: 1, kind: "host.request", id, op, params, timeoutMs }));
    return this.until(() => this.framesOf("host.reply").filter((f) => f.re === id)[before], timeoutMs + 5_000, `the reply to ${op} ${id}`);
  }

  async close(): Promise<void> {
    for (const c of this.connections) c.ws.terminate();
    this.#wss.close();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await closed;
  }
}
