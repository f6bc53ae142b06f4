import { Hono } from "hono";
import { CreateEnvironmentBody, LifecycleSettings, ListEnvironmentsQuery, mergeConfig } from "@outpost/protocol";
import { requireRole, signAgentToken, type AuthVars } from "../auth.js";
import type { Env } from "../env.js";
import { insertEnvironment, listEnvironments, removeEnvironment } from "../environment-index.js";
import { newEnvironmentId } from "../ids.js";
import { unwrap } from "../outcome.js";
import { HttpError } from "../problem.js";
import { remoteSecretKeys } from "../remote.js";
import { registryStub } from "./hosts.js";
import { installedConfig } from "./providers.js";
import { environmentStub, resolveEnvironmentId } from "../stub.js";
import { parseBody, readJson } from "../validate.js";

type App = { Bindings: Env; Variables: AuthVars };

export const environments = new Hono<App>()
  .post("/", requireRole("operator"), async (c) => {
    const body = parseBody(CreateEnvironmentBody, await readJson(c.req.raw));
    const { org } = c.get("user");
    const placed = await placement(c.env, org, body);
    const provider = placed?.provider.id ?? body.provider!;
    let config = body.config ?? {};
    if (placed) {
      const merged = mergeConfig(placed.provider.config, [
        { name: "installed", values: await installedConfig(c.env.DB, org, provider) },
        { name: "config", values: body.config },
      ]);
      if (!merged.ok) throw new HttpError(400, "bad_request", `Invalid config for provider '${provider}': ${merged.errors.join("; ")}`, { errors: merged.errors.map((m) => ({ path: m.split(":")[0]!, message: m })) });
      config = merged.config;
    }
    const secretKeys = placed ? Object.entries(placed.provider.config).filter(([, f]) => f.secret).map(([k]) => k) : remoteSecretKeys(provider, config);
    const id = newEnvironmentId();
    const at = new Date().toISOString();
    await insertEnvironment(c.env.DB, org, { id, name: body.name, provider, state: "created", createdAt: at, updatedAt: at });
    const stub = environmentStub(c.env, org, id);
    const created = await stub
      .create({
        id,
        org,
        name: body.name,
        provider,
        configJson: JSON.stringify(config),
        metadataJson: JSON.stringify(body.metadata ?? {}),
        lifecycleJson: JSON.stringify(body.lifecycle ?? LifecycleSettings.parse({})),
        createdAt: at,
        host: placed?.host,
        controlUrl: new URL(c.req.url).origin,
        secretKeys,
      })
      .catch(async (e: unknown) => {
        await removeEnvironment(c.env.DB, org, id); // keep the index free of records no object holds
        throw e;
      });
    let environment = unwrap(created);
    if (placed) environment = unwrap(await stub.provision());
    const agentToken = await signAgentToken(c.env, { sub: id, org, gen: 1 });
    return c.json({ environment, agentToken }, 201, { location: `/v1/environments/${id}` });
  })
  .get("/", requireRole("viewer"), async (c) => {
    const q = parseBody(ListEnvironmentsQuery, c.req.query(), "query");
    return c.json(await listEnvironments(c.env.DB, c.get("user").org, { after: q.cursor, limit: q.limit, state: q.state, provider: q.provider }));
  })
  .get("/:idOrName", requireRole("viewer"), async (c) => {
    const stub = await target(c);
    return c.json({ environment: unwrap(await stub.describe()) });
  })
  .post("/:idOrName/start", requireRole("operator"), async (c) => c.json({ environment: unwrap(await (await target(c)).start()) }))
  .post("/:idOrName/stop", requireRole("operator"), async (c) => c.json({ environment: unwrap(await (await target(c)).stop()) }))
  .post("/:idOrName/restart", requireRole("operator"), async (c) => c.json({ environment: unwrap(await (await target(c)).restart()) }))
  .delete("/:idOrName", requireRole("admin"), async (c) => c.json({ environment: unwrap(await (await target(c)).archive()) }))
  .get("/:idOrName/metrics", requireRole("viewer"), async (c) => c.json(unwrap(await (await target(c)).getMetrics())))
  .post("/:idOrName/agent-token", requireRole("admin"), async (c) => {
    const { org } = c.get("user");
    const id = await resolveEnvironmentId(c.env, org, c.req.param("idOrName"));
    const { gen } = unwrap(await environmentStub(c.env, org, id).rotateAgentToken());
    return c.json({ agentToken: await signAgentToken(c.env, { sub: id, org, gen }), generation: gen }, 201);
  });

/** The Durable Object of `{idOrName}` in the caller's org. */
async function target(c: { env: Env; get(k: "user"): AuthVars["user"]; req: { param(k: "idOrName"): string } }) {
  const { org } = c.get("user");
  return environmentStub(c.env, org, await resolveEnvironmentId(c.env, org, c.req.param("idOrName")));
}

/**
 * A provider host for the environment, when one should create it: always when the body states
 * requirements or pins a host (409 when none can), and when a connected host offers the named
 * provider. Otherwise the environment waits for an agent that someone starts by hand.
 */
async function placement(env: Env, org: string, body: CreateEnvironmentBody) {
  const strict = body.requires !== undefined || body.host !== undefined;
  const placed = await registryStub(env, org).place({ provider: body.provider, capabilities: body.requires?.capabilities, host: body.host });
  if (placed.ok) return placed;
  if (strict) throw new HttpError(409, "conflict", `Cannot place environment '${body.name}': ${placed.reason}.`);
  return null;
}
