import { Hono } from "hono";
import { EventsQuery, EventStreamQuery } from "@outpost/protocol";
import { SOCKET_KIND_HEADER } from "../../durable-objects/environment.js";
import { requireRole, type AuthVars } from "../auth.js";
import type { Env } from "../env.js";
import { unwrap } from "../outcome.js";
import { HttpError } from "../problem.js";
import { environmentStub, resolveEnvironmentId } from "../stub.js";
import { parseBody } from "../validate.js";

export const events = new Hono<{ Bindings: Env; Variables: AuthVars }>()
  .get("/:idOrName/events", requireRole("viewer"), async (c) => {
    const q = parseBody(EventsQuery, c.req.query(), "query");
    const { org } = c.get("user");
    const id = await resolveEnvironmentId(c.env, org, c.req.param("idOrName"));
    return c.json(unwrap(await environmentStub(c.env, org, id).listEvents(q.after, q.limit)));
  })
  /** A hibernating WebSocket: every retained event after `after`, then live events, one JSON frame each. */
  .get("/:idOrName/events/stream", requireRole("viewer", { allowQuery: true }), async (c) => {
    const q = parseBody(EventStreamQuery, c.req.query(), "query");
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      throw new HttpError(426, "upgrade_required", "This route is a WebSocket; connect with a WebSocket client.", {}, { upgrade: "websocket" });
    }
    const { org } = c.get("user");
    const id = await resolveEnvironmentId(c.env, org, c.req.param("idOrName"));
    const headers = new Headers(c.req.raw.headers);
    headers.delete("authorization");
    headers.set(SOCKET_KIND_HEADER, "watch");
    const url = new URL(c.req.url);
    url.search = `?after=${q.after}${q.tail === undefined ? "" : `&tail=${q.tail}`}${q.window === undefined ? "" : `&window=${q.window}`}`; // the token stays out of the object
    return environmentStub(c.env, org, id).fetch(new Request(url, { method: "GET", headers }));
  });
