import { Hono, type Context } from "hono";
import { decodeJwt } from "jose";
import { AUDIENCE, ForwardBody, Gateway, Routing, type AgentClaims, type Role } from "@outpost/protocol";
import { bearerToken, requireRole, verifyAgentToken, verifyUserToken, type AuthVars } from "../auth.js";
import type { Env } from "../env.js";
import { collectForward } from "../forward-result.js";
import { keepaliveMs, streamToClient } from "../forward-stream.js";
import { unwrap } from "../outcome.js";
import { HttpError } from "../problem.js";
import { environmentStub, resolveEnvironmentId } from "../stub.js";
import { parseBody, readJson } from "../validate.js";

type App = { Bindings: Env; Variables: AuthVars };

/** Gateways, routing rules and forwarded work (execution chaining), under /v1/environments. */
export const chaining = new Hono<App>()
  .get("/:idOrName/gateway", requireRole("viewer"), async (c) => c.json(unwrap(await (await target(c)).getChaining())))
  .put("/:idOrName/gateway", requireRole("operator"), async (c) => {
    const gateway = parseBody(Gateway, await readJson(c.req.raw));
    return c.json({ gateway: unwrap(await (await target(c)).setGateway(gateway)) });
  })
  .get("/:idOrName/routes", requireRole("viewer"), async (c) => c.json({ routing: unwrap(await (await target(c)).getChaining()).routing }))
  .put("/:idOrName/routes", requireRole("operator"), async (c) => {
    const routing = parseBody(Routing, await readJson(c.req.raw));
    return c.json({ routing: unwrap(await (await target(c)).setRouting(routing)) });
  })
  /**
   * Forwards work from this environment: by its rules, or to `target`, along `route`, or to every
   * one of `targets`. An operator may call it, and so may the environment's own agent with its
   * agent token (that is how programs inside the environment reach it, through outpost-agent).
   */
  .post("/:idOrName/forward", async (c) => {
    const from = await forwarder(c);
    const body = parseBody(ForwardBody, await readJson(c.req.raw));
    const stub = environmentStub(c.env, from.org, from.id);
    const forwardId = crypto.randomUUID();
    const stream = unwrap(await stub.forward(body, forwardId, from.agentGen));
    if ((c.req.header("accept") ?? "").includes("application/x-ndjson")) {
      // A client that goes away mid-stream cancels the work at every hop, down to the leaf's process.
      const out = streamToClient(stream, { keepaliveMs: keepaliveMs(c.env.OUTPOST_FORWARD_KEEPALIVE_MS), waitUntil: (p) => c.executionCtx.waitUntil(p), onClientGone: () => stub.cancelForward(forwardId) });
      return new Response(out, { headers: { "content-type": "application/x-ndjson", "cache-control": "no-store" } });
    }
    return c.json(await collectForward(stream));
  })
  .post("/:idOrName/forward/:forwardId/cancel", async (c) => {
    const from = await forwarder(c);
    const forwardId = c.req.param("forwardId");
    if (!/^[0-9a-f-]{36}$/.test(forwardId)) throw new HttpError(404, "not_found", `No forwarded request ${forwardId}.`);
    const { cancelled } = unwrap(await environmentStub(c.env, from.org, from.id).cancelForward(forwardId));
    if (cancelled === 0) throw new HttpError(404, "not_found", `No forwarded request ${forwardId} is in flight from this environment.`);
    return c.json({ cancelled: true, hops: cancelled });
  });

async function target(c: Context<App>) {
  const { org } = c.get("user");
  return environmentStub(c.env, org, await resolveEnvironmentId(c.env, org, c.req.param("idOrName")!));
}

/** Who forwards: an operator of the org, or the environment's own agent (its token names it). */
export async function forwarder(c: Context<App>): Promise<{ org: string; id: string; agentGen?: number; agent?: AgentClaims; role?: Role }> {
  const token = bearerToken(c.req.raw);
  let audience: unknown;
  try {
    audience = decodeJwt(token).aud;
  } catch {
    throw new HttpError(401, "unauthorized", "The token is malformed or its signature is invalid.");
  }
  const param = c.req.param("idOrName")!;
  if (audience === AUDIENCE.agent) {
    const claims = await verifyAgentToken(c.env, token);
    if (claims.sub !== param) throw new HttpError(403, "forbidden", "An agent token may forward only from its own environment (use its id in the path).");
    return { org: claims.org, id: claims.sub, agentGen: claims.gen, agent: claims };
  }
  const user = await verifyUserToken(c.env, token);
  if (user.role === "viewer") throw new HttpError(403, "forbidden", "This action needs the 'operator' role; the token has 'viewer'.");
  return { org: user.org, id: await resolveEnvironmentId(c.env, user.org, param), role: user.role };
}
