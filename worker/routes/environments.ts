import { Hono } from "hono";
import { CreateEnvironmentBody, ListEnvironmentsQuery } from "@outpost/protocol";
import { agentTokenFor, requireRole, type AuthVars } from "../auth.js";
import { createEnvironment } from "../create-environment.js";
import type { Env } from "../env.js";
import { listEnvironments } from "../environment-index.js";
import { cascade, parentOf } from "../children.js";
import { currentSpawnClaim } from "../spawn-scope.js";
import { unwrap } from "../outcome.js";
import { HttpError } from "../problem.js";
import { environmentStub, resolveEnvironmentId } from "../stub.js";
import { parseBody, readJson } from "../validate.js";

type App = { Bindings: Env; Variables: AuthVars };

export const environments = new Hono<App>()
  .post("/", requireRole("operator"), async (c) => {
    const body = parseBody(CreateEnvironmentBody, await readJson(c.req.raw));
    // Granting the spawn scope takes an admin, at creation as with PUT …/spawn.
    if (body.spawn && c.get("user").role !== "admin") throw new HttpError(403, "forbidden", "Granting the spawn scope (spawn) needs the 'admin' role; the token has 'operator'.");
    const { environment, agentToken } = await createEnvironment(c.env, c.get("user").org, body, new URL(c.req.url).origin);
    return c.json({ environment, agentToken }, 201, { location: `/v1/environments/${environment.id}` });
  })
  .get("/", requireRole("viewer"), async (c) => {
    const q = parseBody(ListEnvironmentsQuery, c.req.query(), "query");
    return c.json(await listEnvironments(c.env.DB, c.get("user").org, { after: q.cursor, limit: q.limit, state: q.state, provider: q.provider }));
  })
  .get("/:idOrName", requireRole("viewer"), async (c) => {
    const stub = await target(c);
    const environment = unwrap(await stub.describe());
    return c.json({ environment: { ...environment, parent: await parentOf(c.env.DB, environment.org, environment.id) } });
  })
  .post("/:idOrName/start", requireRole("operator"), async (c) => c.json({ environment: unwrap(await (await target(c)).start()) }))
  .post("/:idOrName/stop", requireRole("operator"), async (c) => {
    const environment = unwrap(await (await target(c)).stop());
    await cascade(c.env, environment.org, environment.id, "stop");
    return c.json({ environment });
  })
  .post("/:idOrName/restart", requireRole("operator"), async (c) => c.json({ environment: unwrap(await (await target(c)).restart()) }))
  .delete("/:idOrName", requireRole("admin"), async (c) => {
    const environment = unwrap(await (await target(c)).archive());
    await cascade(c.env, environment.org, environment.id, "archive");
    return c.json({ environment });
  })
  .get("/:idOrName/metrics", requireRole("viewer"), async (c) => c.json(unwrap(await (await target(c)).getMetrics())))
  .post("/:idOrName/agent-token", requireRole("admin"), async (c) => {
    const { org } = c.get("user");
    const id = await resolveEnvironmentId(c.env, org, c.req.param("idOrName"));
    const { gen } = unwrap(await environmentStub(c.env, org, id).rotateAgentToken());
    const spawn = await currentSpawnClaim(c.env.DB, org, id); // the new token keeps the spawn scope
    return c.json({ agentToken: await agentTokenFor(c.env, { id, org }, gen, spawn), generation: gen }, 201);
  });

/** The Durable Object of `{idOrName}` in the caller's org. */
async function target(c: { env: Env; get(k: "user"): AuthVars["user"]; req: { param(k: "idOrName"): string } }) {
  const { org } = c.get("user");
  return environmentStub(c.env, org, await resolveEnvironmentId(c.env, org, c.req.param("idOrName")));
}
