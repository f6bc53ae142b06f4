import { Hono } from "hono";
import { HostTokenBody } from "@outpost/protocol";
import { HOST_NAME_HEADER, HOST_PROVIDERS_HEADER } from "../../durable-objects/host-registry.js";
import { bearerToken, requireRole, signHostToken, verifyHostToken, type AuthVars } from "../auth.js";
import type { Env } from "../env.js";
import { HttpError } from "../problem.js";
import { parseBody, readJson } from "../validate.js";

export function registryStub(env: Env, org: string) {
  return env.HOSTS.get(env.HOSTS.idFromName(org));
}

/** The provider host's WebSocket: verified here, then handed to the org's registry to hibernate there. */
export const hostConnect = new Hono<{ Bindings: Env }>().get("/connect", async (c) => {
  const claims = await verifyHostToken(c.env, bearerToken(c.req.raw));
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
    throw new HttpError(426, "upgrade_required", "This route is the provider host's WebSocket; connect with `outpost-agent host`.", {}, { upgrade: "websocket" });
  }
  const headers = new Headers(c.req.raw.headers);
  headers.delete("authorization");
  headers.set(HOST_NAME_HEADER, claims.sub);
  if (claims.providers) headers.set(HOST_PROVIDERS_HEADER, JSON.stringify(claims.providers));
  else headers.delete(HOST_PROVIDERS_HEADER);
  return registryStub(c.env, claims.org).fetch(new Request(c.req.raw.url, { method: "GET", headers }));
});

export const hosts = new Hono<{ Bindings: Env; Variables: AuthVars }>()
  .get("/", requireRole("viewer"), async (c) => c.json({ hosts: await registryStub(c.env, c.get("user").org).listHosts() }))
  .post("/tokens", requireRole("admin"), async (c) => {
    const body = parseBody(HostTokenBody, await readJson(c.req.raw));
    const token = await signHostToken(c.env, { sub: body.name, org: c.get("user").org, providers: body.providers }, body.ttlSeconds);
    return c.json({ token, name: body.name }, 201);
  });
