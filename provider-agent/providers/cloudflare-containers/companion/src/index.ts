/**
 * The Cloudflare Containers companion: a small Worker of the operator's own, in front of a
 * Container-backed Durable Object, that lets an Outpost provider host create, inspect and destroy
 * one container instance per environment. A container instance belongs to a Durable Object and is
 * started from inside it (`ctx.container.start()`); Cloudflare's REST API manages container
 * applications, not instances, so the host cannot do this on its own.
 *
 * The contract (all bodies JSON; `Authorization: Bearer <OUTPOST_COMPANION_TOKEN>` on every call):
 *   PUT    /containers/{name}  { env: { NAME: value } } → 200 { name, state: "running", started }
 *          starts the instance with those environment variables unless it already runs (idempotent)
 *   GET    /containers/{name}  → 200 { name, state: "running" | "stopped" }; 404 when never created or destroyed
 *   DELETE /containers/{name}  → 204; 404 when there was nothing
 *   errors → { error } with 400 (bad name or body), 401 (token), 404, 405, 500
 * `name` is 1 to 63 of [a-z0-9-]. The environment variables (the agent's token among them) are
 * handed to the instance and never stored or logged here: after a stop, the host's recover sends
 * them again.
 */
import { DurableObject } from "cloudflare:workers";
import { CONTAINER_NAME, CONTAINER_NAME_RULE, containerEnv } from "./contract.js";

export interface Env {
  CONTAINERS: DurableObjectNamespace<OutpostContainer>;
  /** A secret: `wrangler secret put OUTPOST_COMPANION_TOKEN`. The host's config `companionToken`. */
  OUTPOST_COMPANION_TOKEN: string;
}


export type ContainerState = "running" | "stopped";

/** One per environment (named by the container's name); the container binding is configured in wrangler.toml. */
export class OutpostContainer extends DurableObject<Env> {
  /** Starts the instance unless it runs; remembers that it is wanted (not how it was started). */
  async ensure(name: string, env: Record<string, string>): Promise<{ started: boolean }> {
    const container = this.#container();
    await this.ctx.storage.put("wanted", { name, since: Date.now() });
    if (container.running) return { started: false };
    container.start({ env, enableInternet: true });
    // Keeps the object in memory while the instance runs, and notes an exit for status.
    this.ctx.waitUntil(container.monitor().catch(() => {}));
    return { started: true };
  }

  async status(): Promise<ContainerState | null> {
    if (!(await this.ctx.storage.get("wanted"))) return null;
    return this.#container().running ? "running" : "stopped";
  }

  async destroy(): Promise<boolean> {
    const wanted = await this.ctx.storage.get("wanted");
    const container = this.#container();
    if (container.running) await container.destroy("destroyed by the Outpost provider host");
    await this.ctx.storage.deleteAll();
    return wanted !== undefined;
  }

  #container(): Container {
    const container = this.ctx.container;
    if (!container) throw new Error("this Durable Object has no container binding (see wrangler.toml [[containers]])");
    return container;
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    if (!env.OUTPOST_COMPANION_TOKEN || !(await authorized(request, env.OUTPOST_COMPANION_TOKEN))) return problem(401, "missing or wrong bearer token");
    const match = /^\/containers\/([^/]+)$/.exec(new URL(request.url).pathname);
    if (!match) return problem(404, "no such route (PUT, GET or DELETE /containers/{name})");
    const name = decodeURIComponent(match[1] ?? "");
    if (!CONTAINER_NAME.test(name)) return problem(400, CONTAINER_NAME_RULE);
    const instance = env.CONTAINERS.get(env.CONTAINERS.idFromName(name));
    try {
      if (request.method === "PUT") {
        // Bytes, not characters: the limit is in bytes (contract.ts).
        const vars = containerEnv(new Uint8Array(await request.arrayBuffer()));
        if (typeof vars === "string") return problem(400, vars);
        const { started } = await instance.ensure(name, vars);
        return Response.json({ name, state: "running", started });
      }
      if (request.method === "GET") {
        const state = await instance.status();
        return state === null ? problem(404, `no container ${name}`) : Response.json({ name, state });
      }
      if (request.method === "DELETE") {
        return (await instance.destroy()) ? new Response(null, { status: 204 }) : problem(404, `no container ${name}`);
      }
      return problem(405, "use PUT, GET or DELETE");
    } catch (err) {
      // The message may come from the runtime; never from the request's env values.
      return problem(500, err instanceof Error ? err.message : "the container could not be managed");
    }
  },
} satisfies ExportedHandler<Env>;

/** Compares the bearer token in constant time (over SHA-256 digests, so lengths leak nothing). */
async function authorized(request: Request, expected: string): Promise<boolean> {
  const header = request.headers.get("authorization") ?? "";
  const given = header.startsWith("Bearer ") ? header.slice(7) : "";
  const digest = async (s: string) => new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s)));
  const [a, b] = await Promise.all([digest(given), digest(expected)]);
  let diff = given.length === 0 ? 1 : 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

function problem(status: number, error: string): Response {
  return Response.json({ error }, { status });
}
