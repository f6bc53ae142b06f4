import { Hono } from "hono";
import { AGENT_GEN_HEADER, AGENT_GRANT_HEADER, SOCKET_KIND_HEADER } from "../../durable-objects/environment.js";
import { bearerToken, verifyAgentToken } from "../auth.js";
import type { Env } from "../env.js";
import { HttpError } from "../problem.js";
import { environmentStub } from "../stub.js";

/**
 * The provider-agent's WebSocket. The token is verified here, before the Durable Object is
 * addressed; the upgrade itself is forwarded so that the object accepts it with the hibernation API.
 */
export const connect = new Hono<{ Bindings: Env }>().get("/:id/connect", async (c) => {
  const claims = await verifyAgentToken(c.env, bearerToken(c.req.raw));
  if (claims.sub !== c.req.param("id")) {
    throw new HttpError(403, "forbidden", "This agent token belongs to another environment.");
  }
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
    throw new HttpError(426, "upgrade_required", "This route is the agent's WebSocket; connect with a WebSocket client.", {}, { upgrade: "websocket" });
  }
  const headers = new Headers(c.req.raw.headers);
  headers.delete("authorization"); // the object needs the verified claims, not the secret
  headers.set(AGENT_GEN_HEADER, String(claims.gen));
  headers.set(AGENT_GRANT_HEADER, claims.spawn?.grant ?? ""); // always set: a client's own header never passes
  headers.set(SOCKET_KIND_HEADER, "agent");
  return environmentStub(c.env, claims.org, claims.sub).fetch(new Request(c.req.raw.url, { method: "GET", headers }));
});
