/**
 * @outpost/client covers the API: every operation of the OpenAPI document (built from the route list
 * the Worker serves, see test/workers/openapi.test.ts) has a client method of the same name that
 * sends that method to that path, and the client has no method for an operation that is gone.
 * Each method is called with placeholder arguments against a fetch that records the request and
 * refuses it; nothing reaches a server, only the request line is checked.
 */
import { describe, expect, it } from "vitest";
import { Client } from "@outpost/client";
import { openApiDocument } from "../../worker/openapi/document.js";
import { ROUTES } from "../../worker/openapi/routes.js";

/** Operations a person's client has no business calling: they are the agents' own links. */
const NOT_IN_CLIENT: Record<string, string> = {
  connectAgent: "the provider-agent's WebSocket, opened with an agent token by outpost-agent",
  connectHost: "the provider host's WebSocket, opened with a host token by outpost-agent host",
};
/** Client methods that are another way to call an operation (a stream instead of a buffer). */
const VARIANTS: Record<string, string> = { execStream: "exec", readFileStream: "readFile" };
/** The client's plumbing, not an operation. */
const PLUMBING = new Set(["constructor", "request", "call"]);

type Json = Record<string, any>;
const doc = openApiDocument(ROUTES, "0.0.0") as Json;
const operations = new Map(
  Object.entries(doc.paths as Json).flatMap(([path, item]) => Object.entries(item as Json).map(([method, op]) => [(op as Json).operationId as string, { method: method.toUpperCase(), path }] as const)),
);
const methods = Object.getOwnPropertyNames(Client.prototype).filter((m) => !PLUMBING.has(m));

class Refused extends Error {}

/** Calls client[name] with placeholders and answers the method and path of its last request. */
async function requestOf(name: string): Promise<{ method: string; path: string }> {
  const seen: Array<{ method: string; url: string }> = [];
  const fetch = (async (url: string, init: RequestInit) => {
    seen.push({ method: init.method ?? "GET", url });
    // the event stream checks access with one page of events before it opens its WebSocket
    if (name === "streamEvents") return Response.json({ events: [], next: 0 });
    throw new Refused();
  }) as unknown as typeof globalThis.fetch;
  const webSocket = (url: string) => {
    seen.push({ method: "GET", url });
    throw new Refused();
  };
  const client = new Client("http://outpost.test", "token", { fetch, webSocket }) as unknown as Record<string, (...a: unknown[]) => unknown>;
  const result = client[name]!("a0", "a1", "a2");
  const settle = async () => {
    if (result && typeof result === "object" && Symbol.asyncIterator in result) await (result as AsyncGenerator).next();
    else await result;
  };
  await expect(settle()).rejects.toBeInstanceOf(Refused);
  const last = seen.at(-1)!;
  return { method: last.method, path: new URL(last.url).pathname };
}

const matches = (template: string, path: string) => new RegExp(`^${template.replace(/\{[^}]+\}/g, "a[0-2]")}$`).test(path);

describe("@outpost/client against the OpenAPI document", () => {
  it("has a method for every operation, except the agents' own links", () => {
    const missing = [...operations.keys()].filter((id) => !methods.includes(id) && !(id in NOT_IN_CLIENT));
    expect(missing, "operations without a client method: add one to client/src/client.ts").toEqual([]);
    for (const id of Object.keys(NOT_IN_CLIENT)) expect(operations.has(id), `${id} is excluded but no longer an operation`).toBe(true);
  });

  it("has no method for an operation that is not in the document", () => {
    const stale = methods.filter((m) => !operations.has(m) && !(m in VARIANTS));
    expect(stale).toEqual([]);
  });

  it("each method sends its operation's HTTP method to its operation's path", async () => {
    const wrong: string[] = [];
    for (const name of methods) {
      const op = operations.get(VARIANTS[name] ?? name);
      if (!op) continue; // a stale method: the test above names it
      const sent = await requestOf(name);
      if (sent.method !== op.method || !matches(op.path, sent.path)) wrong.push(`${name}: sent ${sent.method} ${sent.path}, the document says ${op.method} ${op.path}`);
    }
    expect(wrong).toEqual([]);
    expect(methods.length).toBeGreaterThan(50);
  });
});
