/**
 * The environment's agent token as its object issues it: the current generation, and the spawn
 * scope the org's index says the environment holds (claim `spawn`). A changed scope is a new token
 * of the same generation, sent to the connected agent (`token.renew`) so it spawns with it at once.
 */
import type { SpawnClaim } from "@outpost/protocol";
import { agentTokenFor } from "../worker/auth.js";
import type { Env } from "../worker/env.js";
import { currentSpawnClaim } from "../worker/spawn-scope.js";
import type { EventLog } from "./events.js";
import { fail, ok, type Outcome } from "./outcome.js";
import type { Row } from "./record.js";

/** How long the agent has to take a renewed token before the answer says it was not delivered. */
const RENEW_TIMEOUT_MS = 10_000;

/** The token the environment's agent should hold now (for a provider host to pass on). */
export async function currentAgentToken(env: Env, row: Row): Promise<string> {
  const spawn = await currentSpawnClaim(env.DB, row.org, row.id);
  return agentTokenFor(env, row, row.agent_gen, spawn);
}

/** Whether an agent token of generation `gen` is still this environment's (not rotated or revoked). */
export function agentTokenCurrent(row: Row, gen: number): Outcome<void> {
  if (row.state === "archived") return fail("unauthorized", `Environment '${row.name}' is archived; its agent token is revoked.`);
  if (gen !== row.agent_gen) return fail("unauthorized", "This agent token has been revoked (rotated); use the current one.");
  return ok(undefined);
}

/** Signs the token carrying `spawn` and hands it to the connected agent; `delivered` says whether it took it. */
export async function renewAgentToken(
  env: Env,
  row: Row,
  spawn: SpawnClaim | null,
  ask: (op: "token.renew", params: { token: string }, timeoutMs: number) => Promise<Outcome<unknown>>,
  events: EventLog,
): Promise<Outcome<{ agentToken: string; delivered: boolean }>> {
  const agentToken = await agentTokenFor(env, row, row.agent_gen, spawn);
  const sent = await ask("token.renew", { token: agentToken }, RENEW_TIMEOUT_MS);
  events.append("agent.token_renewed", { gen: row.agent_gen, spawn: spawn !== null, delivered: sent.ok, ...(sent.ok ? {} : { reason: sent.error.message }) });
  return ok({ agentToken, delivered: sent.ok });
}
