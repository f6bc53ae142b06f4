import { Hono } from "hono";
import type { Env } from "../env.js";
import { openApiDocument } from "../openapi/document.js";
import { ROUTES } from "../openapi/routes.js";

let built: { version: string; document: Record<string, unknown> } | null = null;

/** GET /v1/openapi.json: built once per isolate; `servers` names the origin it was asked from. */
export const openapi = new Hono<{ Bindings: Env }>().get("/", (c) => {
  if (built?.version !== c.env.OUTPOST_VERSION) built = { version: c.env.OUTPOST_VERSION, document: openApiDocument(ROUTES, c.env.OUTPOST_VERSION) };
  return c.json({ ...built.document, servers: [{ url: new URL(c.req.url).origin }] });
});
