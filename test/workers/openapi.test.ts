/**
 * GET /v1/openapi.json against the Worker's own routing table: a route the Worker answers but the
 * document leaves out (or the reverse) fails here. Declare new routes in worker/openapi/routes.ts.
 */
import { describe, expect, it } from "vitest";
import { app } from "../../worker/app.js";
import { BASE, call } from "./helpers.js";

type Json = Record<string, any>;

/** "METHOD /path/{param}" for each route Hono dispatches (a middleware and its handler are one route). */
function workerRoutes(): string[] {
  const seen = new Set<string>();
  for (const r of app.routes) {
    if (r.method === "ALL") continue; // middleware mounted with use(), not an operation
    seen.add(`${r.method} ${r.path.replace(/:([A-Za-z0-9_]+)(\{[^}]*\})?/g, "{$1}")}`);
  }
  return [...seen].sort();
}

describe("GET /v1/openapi.json", () => {
  it("is served without a token, as JSON naming the origin it was asked from", async () => {
    const res = await call("GET", "/v1/openapi.json");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    const doc = (await res.json()) as Json;
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.info.version).toBe("0.1.0");
    expect(doc.servers).toEqual([{ url: BASE }]);
  });

  it("lists exactly the routes the Worker answers, no more and no fewer", async () => {
    const doc = (await (await call("GET", "/v1/openapi.json")).json()) as Json;
    const documented = Object.entries(doc.paths as Json)
      .flatMap(([path, item]) => Object.keys(item as Json).map((method) => `${method.toUpperCase()} ${path}`))
      .sort();
    const routes = workerRoutes();
    expect(routes.length).toBeGreaterThan(30);
    expect(routes.filter((r) => !documented.includes(r)), "routes missing from worker/openapi/routes.ts").toEqual([]);
    expect(documented.filter((d) => !routes.includes(d)), "documented routes the Worker does not answer").toEqual([]);
  });
});
