import { Hono } from "hono";
import { SpawnBody, SpawnGrant, SpawnScopeBody } from "@outpost/protocol";
import { requireRole, type AuthVars } from "../auth.js";
import type { Env } from "../env.js";
import { closeChild, spawnChild, spawnScope, tree } from "../children.js";
import { unwrap } from "../outcome.js";
import { HttpError } from "../problem.js";
import { environmentStub, resolveEnvironmentId } from "../stub.js";
import { parseBody, readJson } from "../validate.js";
import { forwarder } from "./chaining.js";

type App = { Bindings: Env; Variables: AuthVars };

/** Hierarchical environments, under /v1/environments. */
export const children = new Hono<App>()
  .get("/:idOrName/spawn", requireRole("viewer"), async (c) => {
    const { org } = c.get("user");
    return c.json({ spawn: await spawnScope(c.env.DB, org, await resolveEnvironmentId(c.env, org, c.req.param("idOrName"))) });
  })
  /**
   * Grants (or withdraws, with null) the scope to spawn children. Every change is a new grant: the
   * agent token carrying the old one can no longer spawn, and the connected agent is sent a token
   * (same generation) that carries the new one; the answer carries it too.
   */
  .put("/:idOrName/spawn", requireRole("admin"), async (c) => {
    const { spawn } = parseBody(SpawnScopeBody, await readJson(c.req.raw));
    const { org } = c.get("user");
    const id = await resolveEnvironmentId(c.env, org, c.req.param("idOrName"));
    const { spawn: claim, agentToken, delivered } = unwrap(await environmentStub(c.env, org, id).changeSpawnScope(spawn));
    return c.json({ spawn: claim ? SpawnGrant.parse(claim) : null, agentToken, delivered }); // the limits, without the grant id
  })
  /** The environment and every environment below it. */
  .get("/:idOrName/children", requireRole("viewer"), async (c) => {
    const { org } = c.get("user");
    const root = await tree(c.env.DB, org, await resolveEnvironmentId(c.env, org, c.req.param("idOrName")));
    if (!root) throw new HttpError(404, "not_found", "No such environment.");
    return c.json({ tree: root });
  })
  /** Spawns a child: an operator, or the environment's own agent (outpost-agent spawn). */
  .post("/:idOrName/children", async (c) => {
    const from = await forwarder(c);
    const body = parseBody(SpawnBody, await readJson(c.req.raw));
    const child = await spawnChild(c.env, from.org, from.id, body, new URL(c.req.url).origin, from.agent ? { agent: from.agent } : { operator: true });
    return c.json(child, 201, { location: `/v1/environments/${child.environment.id}` });
  })
  /** Closes (archives) a child of this environment, and the children below it: its agent (current grant) or an admin. */
  .delete("/:idOrName/children/:child", async (c) => {
    const from = await forwarder(c);
    if (!from.agent && from.role !== "admin") throw new HttpError(403, "forbidden", `Closing a child needs the 'admin' role (or the environment's own agent with its spawn scope); the token has '${from.role}'.`);
    const childId = await resolveEnvironmentId(c.env, from.org, c.req.param("child"));
    return c.json({ environment: await closeChild(c.env, from.org, from.id, childId, from.agent ? { agent: from.agent } : { admin: true }) });
  });
