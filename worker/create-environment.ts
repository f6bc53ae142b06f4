/** Creating an environment: placement on a provider host, config, the index row, the object, the agent token. */
import { LifecycleSettings, mergeConfig, type CreateEnvironmentBody, type Environment, type SpawnClaim } from "@outpost/protocol";
import { agentTokenFor } from "./auth.js";
import type { Env } from "./env.js";
import { insertEnvironment, removeEnvironment } from "./environment-index.js";
import { newEnvironmentId } from "./ids.js";
import { unwrap } from "./outcome.js";
import { HttpError } from "./problem.js";
import { remoteSecretKeys } from "./remote.js";
import { newSpawnClaim } from "./spawn-scope.js";
import { registryStub } from "./routes/hosts.js";
import { installedConfig } from "./routes/providers.js";
import { environmentStub } from "./stub.js";

/** A spawned child's place in the hierarchy, recorded before its host is asked to make it. */
export interface ChildLink {
  parentId: string;
  depth: number;
  keep: boolean;
  /** The spawn scope the child itself is granted (its agent token carries it). */
  spawn: SpawnClaim | null;
}

/** `origin` is the control plane's URL as the caller reached it (a placed environment's agent dials it). */
export async function createEnvironment(env: Env, org: string, body: CreateEnvironmentBody, origin: string, child?: ChildLink): Promise<{ environment: Environment; agentToken: string }> {
  const placed = await placement(env, org, body);
  const provider = placed?.provider.id ?? body.provider!;
  let config = body.config ?? {};
  if (placed) {
    const merged = mergeConfig(placed.provider.config, [
      { name: "installed", values: await installedConfig(env.DB, org, provider) },
      { name: "config", values: body.config },
    ]);
    if (!merged.ok) throw new HttpError(400, "bad_request", `Invalid config for provider '${provider}': ${merged.errors.join("; ")}`, { errors: merged.errors.map((m) => ({ path: m.split(":")[0]!, message: m })) });
    config = merged.config;
  }
  const secretKeys = placed ? Object.entries(placed.provider.config).filter(([, f]) => f.secret).map(([k]) => k) : remoteSecretKeys(provider, config);
  const id = newEnvironmentId();
  const at = new Date().toISOString();
  // A child's scope is its parent's to give (children.ts); any other environment's comes from its body.
  const spawn = child ? child.spawn : body.spawn ? newSpawnClaim(body.spawn) : null;
  const family = { parentId: child?.parentId ?? null, depth: child?.depth ?? 0, keep: child?.keep ?? false, spawnJson: spawn ? JSON.stringify(spawn) : null };
  await insertEnvironment(env.DB, org, { id, name: body.name, provider, state: "created", createdAt: at, updatedAt: at }, family);
  const stub = environmentStub(env, org, id);
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
      controlUrl: origin,
      secretKeys,
      spawn,
    })
    .catch(async (e: unknown) => {
      await removeEnvironment(env.DB, org, id); // keep the index free of records no object holds
      throw e;
    });
  let environment = unwrap(created);
  if (placed) environment = unwrap(await stub.provision());
  const agentToken = await agentTokenFor(env, { id, org }, 1, spawn);
  return { environment, agentToken };
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
