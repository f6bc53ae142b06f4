/**
 * The agent's local forward endpoint: programs inside the environment (its agent loop, scripts,
 * `outpost-agent exec`, `outpost-agent spawn`) forward work to other environments, and spawn and
 * close children, through it without knowing the topology or holding the agent token. It listens on 127.0.0.1 only, answers only requests that
 * carry its per-process secret, and passes each on to the control plane's forward API with the
 * agent token (which never leaves this process); the ndjson answer streams back as it comes.
 *
 * Commands the agent runs find it in OUTPOST_FORWARD_URL and OUTPOST_FORWARD_SECRET; other programs
 * read the endpoint file (0600, beside the state file).
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { writeFileSync, rmSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { ForwardBody } from "@outpost/protocol";
import type { Logger } from "./log.js";

export const FORWARD_URL_ENV = "OUTPOST_FORWARD_URL";
export const FORWARD_SECRET_ENV = "OUTPOST_FORWARD_SECRET";
/** Largest forward body accepted (an exec's stdin may be up to 16 MiB of base64). */
const MAX_BODY = 17 * 1024 * 1024;

export interface ForwardEndpointOptions {
  /** The control plane's base URL (http/https; ws/wss are turned into them). */
  controlUrl: string;
  environmentId: string;
  token: string;
  log: Logger;
  /** Where to write `{ url, secret }` for programs that did not inherit the environment. */
  endpointFile?: string;
}

export interface ForwardEndpoint {
  url: string;
  secret: string;
  /** The agent token was renewed (a changed spawn scope): pass requests on with this one from now. */
  setToken(token: string): void;
  close(): Promise<void>;
}

export function httpBase(url: string): string {
  const u = new URL(url);
  if (u.protocol === "ws:") u.protocol = "http:";
  if (u.protocol === "wss:") u.protocol = "https:";
  return u.toString().replace(/\/+$/, "");
}

export async function startForwardEndpoint(o: ForwardEndpointOptions): Promise<ForwardEndpoint> {
  const secret = randomBytes(32).toString("base64url");
  const expected = Buffer.from(`Bearer ${secret}`);
  const base = `${httpBase(o.controlUrl)}/v1/environments/${o.environmentId}/forward`;
  const childrenBase = `${httpBase(o.controlUrl)}/v1/environments/${o.environmentId}/children`;
  const server = http.createServer((req, res) => {
    void handle(req, res).catch((err: unknown) => {
      o.log.warn(`forward endpoint: ${err instanceof Error ? err.message : String(err)}`);
      if (!res.headersSent) answer(res, 502, "agent_error", "The control plane could not be reached.");
      else res.destroy();
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const given = Buffer.from(req.headers.authorization ?? "");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return answer(res, 401, "unauthorized", `Send Authorization: Bearer $${FORWARD_SECRET_ENV}.`);
    const url = new URL(req.url ?? "/", "http://local");
    const cancel = /^\/forward\/([0-9a-f-]{36})\/cancel$/.exec(url.pathname);
    if (req.method === "POST" && cancel) {
      const r = await fetch(`${base}/${cancel[1]}/cancel`, { method: "POST", headers: { authorization: `Bearer ${o.token}` } });
      return pass(r, res);
    }
    // Children (hierarchical environments): spawn and close, within the scope the environment was granted.
    const close = /^\/children\/([A-Za-z0-9_-]{1,128})$/.exec(url.pathname);
    if (req.method === "DELETE" && close) return pass(await fetch(`${childrenBase}/${close[1]}`, { method: "DELETE", headers: { authorization: `Bearer ${o.token}` } }), res);
    if (req.method === "POST" && url.pathname === "/children") {
      const raw = await readBody(req);
      if (raw === null) return answer(res, 413, "payload_too_large", `The body is larger than ${MAX_BODY} bytes.`);
      return pass(await fetch(childrenBase, { method: "POST", headers: { authorization: `Bearer ${o.token}`, "content-type": "application/json" }, body: raw }), res);
    }
    if (req.method !== "POST" || url.pathname !== "/forward") return answer(res, 404, "not_found", "POST /forward, POST /forward/{forwardId}/cancel, POST /children or DELETE /children/{child}.");
    const raw = await readBody(req);
    if (raw === null) return answer(res, 413, "payload_too_large", `The body is larger than ${MAX_BODY} bytes.`);
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      return answer(res, 400, "bad_request", "The body is not valid JSON.");
    }
    const parsed = ForwardBody.safeParse(json);
    if (!parsed.success) return answer(res, 400, "bad_request", `Invalid forward body: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
    const abort = new AbortController();
    res.on("close", () => abort.abort());
    const r = await fetch(base, {
      method: "POST",
      headers: { authorization: `Bearer ${o.token}`, "content-type": "application/json", accept: req.headers.accept ?? "application/x-ndjson" },
      body: JSON.stringify(parsed.data),
      signal: abort.signal,
    });
    return pass(r, res);
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  if (o.endpointFile) writeFileSync(o.endpointFile, `${JSON.stringify({ url, secret })}\n`, { mode: 0o600 });
  return {
    url,
    secret,
    setToken: (token) => {
      o.token = token;
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (o.endpointFile) rmSync(o.endpointFile, { force: true });
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function answer(res: http.ServerResponse, status: number, code: string, detail: string): void {
  res.writeHead(status, { "content-type": "application/problem+json" });
  res.end(JSON.stringify({ type: `https://outpost.dev/problems/${code}`, title: code, status, detail, code }));
}

/** The control plane's answer, streamed through as it comes. */
async function pass(r: Response, res: http.ServerResponse): Promise<void> {
  res.writeHead(r.status, { "content-type": r.headers.get("content-type") ?? "application/json", "cache-control": "no-store" });
  if (!r.body) return void res.end();
  Readable.fromWeb(r.body as import("node:stream/web").ReadableStream<Uint8Array>).pipe(res);
}

function readBody(req: http.IncomingMessage): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on("data", (b: Buffer) => {
      size += b.length;
      if (size > MAX_BODY) {
        resolve(null);
        req.destroy();
      } else parts.push(b);
    });
    req.on("end", () => resolve(Buffer.concat(parts).toString("utf8")));
    req.on("error", reject);
  });
}
