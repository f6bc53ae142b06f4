/** What the hierarchy tests in workerd share: granting the spawn scope and spawning children. */
import { expect } from "vitest";
import { call } from "./helpers.js";

export type Created = { environment: { id: string; name: string; state: string }; agentToken: string };

/** POST …/children as `token` (an operator's, or the parent's agent token). */
export const spawnChild = (token: string, parent: string, body: unknown) => call("POST", `/v1/environments/${parent}/children`, { token, json: body });

/** PUT …/spawn (admin): grants the scope, or withdraws it with `null`; expects 200. */
export async function grantSpawn(token: string, env: string, scope: unknown): Promise<{ spawn: unknown; agentToken: string; delivered: boolean }> {
  const res = await call("PUT", `/v1/environments/${env}/spawn`, { token, json: { spawn: scope } });
  expect(res.status).toBe(200);
  return (await res.json()) as { spawn: unknown; agentToken: string; delivered: boolean };
}
