/**
 * The environment's agent token as its object issues it: the current generation, and the spawn
 * scope the environment holds (claim `spawn`). The object keeps the current scope beside the org's
 * index (D1 `environments.spawn`), so it knows, when an agent connects, whether that agent's token
 * carries it. A changed scope is a new token of the same generation, sent to the connected agent
 * (`token.renew`) so it spawns with it at once, or to the agent when it next connects.
 */
import type { SpawnClaim, SpawnGrant } from "@outpost/protocol";
import { agentTokenFor } from "../worker/auth.js";
import type { Env } from "../worker/env.js";
import { currentSpawnClaim, newSpawnClaim, recordSpawnScope, storedClaim } from "../worker/spawn-scope.js";
import type { EventLog } from "./events.js";
import { fail, ok, type Outcome } from "./outcome.js";
import type { Row } from "./record.js";
import type { Sql } from "./sql.js";

/** How long the agent has to take a renewed token before the answer says it was not delivered. */
const RENEW_TIMEOUT_MS = 10_000;

type Ask = (op: "token.renew", params: { token: string }, timeoutMs: number) => Promise<Outcome<unknown>>;

/**
 * The spawn scope the environment holds now. `row.spawn` is the claim's JSON ("null": none); an
 * environment from before the object kept it (NULL) reads the index once and keeps the answer.
 */
async function currentScope(env: Env, sql: Sql, row: Row): Promise<SpawnClaim | null> {
  if (row.spawn !== null) return storedClaim(row.spawn);
  const claim = await currentSpawnClaim(env.DB, row.org, row.id);
  sql`UPDATE environment SET spawn = ${JSON.stringify(claim)}`;
  return claim;
}

/** The token the environment's agent should hold now (for a provider host to pass on). */
export async function currentAgentToken(env: Env, sql: Sql, row: Row): Promise<string> {
  return agentTokenFor(env, row, row.agent_gen, await currentScope(env, sql, row));
}

/** Whether an agent token of generation `gen` is still this environment's (not rotated or revoked). */
export function agentTokenCurrent(row: Row, gen: number): Outcome<void> {
  if (row.state === "archived") return fail("unauthorized", `Environment '${row.name}' is archived; its agent token is revoked.`);
  if (gen !== row.agent_gen) return fail("unauthorized", "This agent token has been revoked (rotated); use the current one.");
  return ok(undefined);
}

/**
 * PUT …/spawn in one call to the object: a new grant (with a new id) or its withdrawal, written to
 * the index and kept here, logged, and the token that carries it handed to the connected agent.
 */
export async function changeSpawnScope(env: Env, sql: Sql, row: Row, grant: SpawnGrant | null, ask: Ask, events: EventLog): Promise<Outcome<{ spawn: SpawnClaim | null; agentToken: string; delivered: boolean }>> {
  if (row.state === "archived") return fail("invalid_state", `Environment '${row.name}' is archived.`);
  const claim = grant ? newSpawnClaim(grant) : null;
  await recordSpawnScope(env.DB, row.org, row.id, claim);
  sql`UPDATE environment SET spawn = ${JSON.stringify(claim)}`;
  events.append(claim ? "spawn.granted" : "spawn.withdrawn", claim ? { maxChildren: claim.maxChildren, maxDepth: claim.maxDepth } : {});
  return ok({ spawn: claim, ...(await renewAgentToken(env, row, claim, ask, events)) });
}

/**
 * An agent connected with a token whose spawn grant (`held`, null: none) is not the current one
 * (the scope changed while it was away): it is handed the current token now.
 */
export async function renewOnConnect(env: Env, sql: Sql, row: Row, held: string | null, ask: Ask, events: EventLog): Promise<void> {
  const scope = await currentScope(env, sql, row);
  if ((scope?.grant ?? null) === held) return;
  await renewAgentToken(env, row, scope, ask, events, "connect");
}

/** Signs the token carrying `spawn` and hands it to the connected agent; `delivered` says whether it took it. */
async function renewAgentToken(env: Env, row: Row, spawn: SpawnClaim | null, ask: Ask, events: EventLog, on?: "connect"): Promise<{ agentToken: string; delivered: boolean }> {
  const agentToken = await agentTokenFor(env, row, row.agent_gen, spawn);
  const sent = await ask("token.renew", { token: agentToken }, RENEW_TIMEOUT_MS);
  events.append("agent.token_renewed", { gen: row.agent_gen, spawn: spawn !== null, delivered: sent.ok, ...(on ? { on } : {}), ...(sent.ok ? {} : { reason: sent.error.message }) });
  return { agentToken, delivered: sent.ok };
}
