/** Test-side helpers that talk to the real Worker (inside workerd) over its fetch handler. */
import { env, SELF } from "cloudflare:test";
import { SignJWT } from "jose";
import { AUDIENCE, TOKEN_ISSUER, type Role } from "@outpost/protocol";

export const BASE = "http://outpost.test";

export async function userToken(o: { org?: string; role?: Role; exp?: number | string; audience?: string; secret?: string } = {}): Promise<string> {
  return new SignJWT({ org: o.org ?? "acme", role: o.role ?? "admin" })
    .setProtectedHeader({ alg: "HS256" })
    .setIssuer(TOKEN_ISSUER)
    .setAudience(o.audience ?? AUDIENCE.api)
    .setSubject("tester")
    .setIssuedAt()
    .setExpirationTime(o.exp ?? "1h")
    .sign(new TextEncoder().encode(o.secret ?? env.OUTPOST_JWT_SECRET));
}

export interface CallOptions {
  token?: string;
  json?: unknown;
  body?: BodyInit;
  headers?: Record<string, string>;
}

export function call(method: string, path: string, o: CallOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { ...o.headers };
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  let body = o.body;
  if (o.json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(o.json);
  }
  return SELF.fetch(`${BASE}${path}`, { method, headers, body });
}

/** Creates an environment (`body`: more create fields, e.g. lifecycle); throws unless 201. */
export async function createEnvironment(token: string, name: string, provider = "local", body: Record<string, unknown> = {}) {
  const res = await call("POST", "/v1/environments", { token, json: { name, provider, ...body } });
  if (res.status !== 201) throw new Error(`create ${name}: ${res.status} ${await res.text()}`);
  return (await res.json()) as { environment: { id: string; name: string; state: string }; agentToken: string };
}

/** The environment's state, as GET /v1/environments/{id} answers it. */
export async function stateOf(token: string, id: string): Promise<string> {
  const res = await call("GET", `/v1/environments/${id}`, { token });
  return ((await res.json()) as { environment: { state: string } }).environment.state;
}

/** The environment's event log (GET …/events, first page). */
export async function eventsOf(token: string, env: string): Promise<Array<{ seq: number; type: string; data: Record<string, unknown> }>> {
  const res = await call("GET", `/v1/environments/${env}/events`, { token });
  return ((await res.json()) as { events: Array<{ seq: number; type: string; data: Record<string, unknown> }> }).events;
}

/** An ndjson response body, one object per line. */
export async function ndjson(res: Response): Promise<Array<Record<string, unknown>>> {
  return (await res.text()).trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
}

export async function expectProblem(res: Response, status: number, code?: string): Promise<{ detail: string; code: string }> {
  const text = await res.text();
  if (res.status !== status) throw new Error(`expected ${status}, got ${res.status}: ${text}`);
  if (!res.headers.get("content-type")?.startsWith("application/problem+json")) throw new Error(`not problem+json: ${res.headers.get("content-type")}`);
  const body = JSON.parse(text) as { detail: string; code: string; status: number };
  if (body.status !== status) throw new Error(`body status ${body.status} != ${status}`);
  if (code && body.code !== code) throw new Error(`expected code ${code}, got ${body.code}: ${body.detail}`);
  return body;
}

/** A stand-in provider-agent speaking the wire protocol from inside the test. */
export class TestAgent {
  readonly frames: Array<Record<string, unknown>> = [];
  readonly texts: string[] = [];
  closed: { code: number; reason: string } | null = null;
  private waiters: Array<() => void> = [];

  constructor(readonly ws: WebSocket) {
    ws.addEventListener("message", (e) => {
      const data = typeof e.data === "string" ? e.data : "";
      this.texts.push(data);
      try {
        this.frames.push(JSON.parse(data) as Record<string, unknown>);
      } catch {
        // heartbeat text
      }
      this.wake();
    });
    ws.addEventListener("close", (e) => {
      this.closed = { code: e.code, reason: e.reason };
      this.wake();
    });
  }

  static async connect(id: string, token: string): Promise<TestAgent> {
    const res = await SELF.fetch(`${BASE}/v1/environments/${id}/connect`, { headers: { upgrade: "websocket", authorization: `Bearer ${token}` } });
    if (!res.webSocket) throw new Error(`upgrade refused: ${res.status} ${await res.text()}`);
    res.webSocket.accept();
    return new TestAgent(res.webSocket);
  }

  /** Connects, says hello and waits for the welcome: an agent the environment counts as connected. */
  static async ready(id: string, token: string): Promise<TestAgent> {
    const agent = await TestAgent.connect(id, token);
    agent.hello();
    await agent.next("welcome");
    return agent;
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /** `resume`: where this peer's seqs start (the test frames number them from 1). */
  hello(protocol = "1.0", resume = 1): void {
    this.send({ v: 1, kind: "hello", protocol, resume, agent: { version: "test", hostname: "test-host", platform: "linux", arch: "x64", node: "v20", pid: 1 }, capabilities: ["exec", "files"] });
  }

  async next(kind: string, timeoutMs = 5000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.frames.findIndex((f) => f.kind === kind);
      if (i >= 0) return this.frames.splice(i, 1)[0]!;
      if (this.closed) throw new Error(`socket closed (${this.closed.code} ${this.closed.reason}) while waiting for ${kind}`);
      if (Date.now() > deadline) throw new Error(`no ${kind} frame within ${timeoutMs} ms`);
      await this.waitAny(deadline - Date.now());
    }
  }

  async waitClosed(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error("socket not closed in time");
      await this.waitAny(deadline - Date.now());
    }
    return this.closed;
  }

  private waitAny(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, Math.max(1, ms));
      this.waiters.push(() => (clearTimeout(t), resolve()));
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

/** Polls until `fn` returns a truthy value (bounded). */
export async function eventually<T>(fn: () => Promise<T | undefined | null | false>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}
