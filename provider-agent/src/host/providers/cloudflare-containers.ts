/**
 * `cloudflare-containers`: a Cloudflare Containers instance per environment. An instance belongs to
 * a Durable Object and can only be started from inside one, so the host drives a small companion
 * Worker of the operator's own (provider-agent/providers/cloudflare-containers/companion/) over its
 * three-route contract, under `companionUrl` with `Authorization: Bearer <companionToken>`:
 *
 * - `PUT /containers/{name}` `{ env }` → `{ name, state: "running", started }`: starts the instance
 *   (unless it runs) with the agent's settings as environment variables
 * - `GET /containers/{name}` → `{ name, state: "running" | "stopped" }`, 404 when gone
 * - `DELETE /containers/{name}` → 204, 404 when gone
 *
 * The resource id is the container's name, `outpost-<environment id>` (a container name is 1 to 63
 * of [a-z0-9-]). The image runs `node /outpost/cli.js`, which reads OUTPOST_URL,
 * OUTPOST_AGENT_TOKEN, OUTPOST_WORKSPACE, OUTPOST_RESOURCE_ID and OUTPOST_STATE_FILE. The token
 * travels only in the PUT body: never in a URL or a log line, and the companion does not store it,
 * so recover sends it again. Tested against a local fake of the contract, never against Cloudflare.
 */
import { HostError, Provider, type Config, type EnvironmentContext, type Notes, type Recovered, type ResourceContext, type ResourceHealth, type Toolkit } from "../provider.js";
import { CONTAINER_NAME } from "../../../providers/cloudflare-containers/companion/src/contract.js";
import { CloudApi, rememberConfig, rememberedConfig, requiredString, serviceUrl } from "./cloud.js";

const SERVICE = "cloudflare-containers";

export function containerName(environmentId: string): string {
  return `outpost-${environmentId.replace(/_/g, "-")}`;
}

export class CloudflareContainersProvider extends Provider {
  override async create(env: EnvironmentContext): Promise<string> {
    const api = companion(env, env.config, [env.agentToken]);
    await rememberConfig(env.runtimeDir, env.config);
    const name = containerName(env.environmentId);
    try {
      await api.request("PUT", route(name), { json: { env: agentEnv(env, name) } });
    } catch (err) {
      // Undo: a half-started instance must not keep running (and billing).
      await api.request("DELETE", route(name), { allow: [404] }).catch(() => {});
      throw err;
    }
    env.log.info(`environment ${env.environmentId}: cloudflare container ${name} started`);
    return name;
  }

  override async recover(env: EnvironmentContext, resource: { resourceId: string; notes: Notes }): Promise<Recovered> {
    const api = companion(env, env.config, [env.agentToken]);
    await rememberConfig(env.runtimeDir, env.config);
    const name = resource.resourceId;
    const { status } = await api.request("GET", route(name), { allow: [404] });
    if (status === 404) return { resourceId: name, recovered: false };
    const { data } = await api.request("PUT", route(name), { json: { env: agentEnv(env, name) } });
    const started = (data as { started?: unknown } | null)?.started === true;
    env.log.info(`environment ${env.environmentId}: cloudflare container ${name}: ${started ? "started again" : "still running"}`);
    return { resourceId: name, recovered: true };
  }

  override async health(resource: ResourceContext): Promise<ResourceHealth> {
    const api = companion(resource, await rememberedConfig(resource.runtimeDir, SERVICE), []);
    const { status, data } = await api.request("GET", route(resource.resourceId), { allow: [404] });
    if (status === 404) return { state: "gone" };
    const state = (data as { state?: unknown } | null)?.state;
    return state === "running" ? { state: "running", detail: `cloudflare container ${resource.resourceId}` } : { state: "stopped", detail: `cloudflare container ${String(state)}` };
  }

  override async teardown(resource: ResourceContext): Promise<boolean> {
    const api = companion(resource, await rememberedConfig(resource.runtimeDir, SERVICE), []);
    const { status } = await api.request("DELETE", route(resource.resourceId), { allow: [404] });
    return status !== 404;
  }
}

function route(name: string): string {
  if (!CONTAINER_NAME.test(name)) throw new HostError("bad_request", `'${name}' is not a container name`);
  return `/containers/${name}`;
}

function companion(tools: Toolkit, config: Config, secrets: string[]): CloudApi {
  const token = requiredString(config, "companionToken");
  return new CloudApi({ service: SERVICE, baseUrl: serviceUrl(config, "companionUrl"), headers: { authorization: `Bearer ${token}` }, signal: tools.signal, secrets: [token, ...secrets] });
}

/** What the image's agent reads from its environment. */
function agentEnv(env: EnvironmentContext, name: string): Record<string, string> {
  return {
    OUTPOST_URL: env.url,
    OUTPOST_AGENT_TOKEN: env.agentToken,
    OUTPOST_WORKSPACE: String(env.config.workspace ?? "/workspace"),
    OUTPOST_STATE_FILE: String(env.config.stateFile ?? "/outpost-state/agent.json"),
    OUTPOST_RESOURCE_ID: name,
  };
}
