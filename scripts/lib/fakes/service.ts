/**
 * A local stand-in for a cloud service: a Node HTTP server on 127.0.0.1 whose routes a test or a
 * fake writes (`"METHOD /path/:param"`), recording every call. The unit tests of the cloud
 * providers script it route by route; the stateful fakes beside it (e2b.ts, daytona.ts,
 * cloudflare-containers.ts) build a whole service on it for the conformance kit.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export type Call = {
  method: string;
  path: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: Buffer;
  json?: unknown;
  /** The route's `:params`, decoded, once a route matched. */
  params: Record<string, string>;
  /** The URL's query. */
  query: URLSearchParams;
};
export type Route = (call: Call, res: ServerResponse) => void | Promise<void>;

export class FakeService {
  readonly calls: Call[] = [];
  /** `"METHOD /path/with/:params"` → handler; the first match wins. */
  readonly routes: Array<[string, Route]> = [];
  readonly #server: Server;
  readonly #open = new Set<ServerResponse>();

  private constructor() {
    this.#server = createServer((req, res) => void this.#handle(req, res));
  }

  static async start(): Promise<FakeService> {
    const fake = new FakeService();
    await new Promise<void>((resolve) => fake.#server.listen(0, "127.0.0.1", resolve));
    return fake;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** Adds a route in front of the others (so a test can override one). */
  on(route: string, handler: Route): this {
    this.routes.unshift([route, handler]);
    return this;
  }

  /** Calls to `method` whose path matches the route pattern. */
  callsTo(route: string): Call[] {
    return this.calls.filter((c) => matches(route, c) !== null);
  }

  /** Keeps `res` open (a stream) until it ends or the service closes. */
  hold(res: ServerResponse): void {
    this.#open.add(res);
    res.on("close", () => this.#open.delete(res));
  }

  async close(): Promise<void> {
    for (const res of this.#open) res.destroy();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await closed;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url ?? "/", "http://x");
    const call: Call = { method: req.method ?? "GET", path: url.pathname, url: req.url ?? "/", headers: req.headers, body, params: {}, query: url.searchParams };
    try {
      if ((req.headers["content-type"] ?? "").startsWith("application/json") && body.length > 0) call.json = JSON.parse(body.toString("utf8"));
    } catch {
      this.calls.push(call);
      return json(res, 400, { message: "the body is not JSON" });
    }
    this.calls.push(call);
    for (const [route, handler] of this.routes) {
      const params = matches(route, call);
      if (params === null) continue;
      call.params = params;
      try {
        await handler(call, res);
      } catch (err) {
        if (!res.headersSent) json(res, 500, { message: err instanceof Error ? err.message : String(err) });
        else res.destroy();
      }
      return;
    }
    json(res, 404, { message: `no route for ${call.method} ${call.path}` });
  }
}

function matches(route: string, call: { method: string; path: string }): Record<string, string> | null {
  const [method, pattern] = route.split(" ") as [string, string];
  if (method !== call.method) return null;
  const want = pattern.split("/");
  const got = call.path.split("/");
  if (want.length !== got.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    if (want[i]!.startsWith(":")) params[want[i]!.slice(1)] = decodeURIComponent(got[i]!);
    else if (want[i] !== got[i]) return null;
  }
  return params;
}

export function json(res: ServerResponse, status: number, body: unknown): void {
  const text = body === undefined ? "" : JSON.stringify(body);
  res.writeHead(status, text ? { "content-type": "application/json" } : {}).end(text);
}
