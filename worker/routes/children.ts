import { Hono } from "hono";
import { SpawnBody, SpawnScopeBody } from "@outpost/protocol";
import { requireRole, type AuthVars } from "../auth.js";
import type { Env } from "../env.js";
import { cascade, isChildOf, setSpawnScope, spawnChild, spawnScope, tree } from "../children.js";
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
  /** Grants (or withdraws, with null) the scope to spawn children. */
  .put("/:idOrName/spawn", requireRole("admin"), async (c) => {
    const { spawn } = parseBody(SpawnScopeBody, await readJson(c.req.raw));
    const { org } = c.get("user");
    const id = await resolveEnvironmentId(c.env, org, c.req.param("idOrName"));
    const environment = unwrap(await environmentStub(c.env, org, id).describe());
    if (environment.state === "archived") throw new HttpError(409, "invalid_state", `Environment '${environment.name}' is archived.`);
    await setSpawnScope(c.env.DB, org, id, spawn);
    await environmentStub(c.env, org, id).noteProviderEvent(spawn ? "spawn.granted" : "spawn.withdrawn", spawn ? { maxChildren: spawn.maxChildren, maxDepth: spawn.maxDepth } : {});
    return c.json({ spawn });
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
    const child = await spawnChild(c.env, from.org, from.id, body, new URL(c.req.url).origin);
    return c.json(child, 201, { location: `/v1/environments/${child.environment.id}` });
  })
  /** Closes (archives) a child of this environment, and the children below it. */
  .delete("/:idOrName/children/:child", async (c) => {
    const from = await forwarder(c);
    const childId = await resolveEnvironmentId(c.env, from.org, c.req.param("child"));
    if (!(await isChildOf(c.env.DB, from.org, childId, from.id))) throw new HttpError(404, "not_found", `'${c.req.param("child")}' is not a child of this environment.`);
    await cascade(c.env, from.org, childId, "archive");
    const environment = unwrap(await environmentStub(c.env, from.org, childId).archive());
    await environmentStub(c.env, from.org, from.id).noteProviderEvent("child.closed", { child: childId, name: environment.name });
    return c.json({ environment });
  });
