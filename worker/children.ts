/**
 * Hierarchical environments in the org's index (D1): the spawn scope, the parent link, the tree,
 * the limits a spawn is held to, and the cascade when a parent is stopped or archived.
 */
import type { AgentClaims, Environment, EnvironmentState, EnvironmentTreeNode, SpawnBody, SpawnClaim, SpawnGrant } from "@outpost/protocol";
import { createEnvironment } from "./create-environment.js";
import type { Env } from "./env.js";
import { unwrap } from "./outcome.js";
import { HttpError } from "./problem.js";
import { newSpawnClaim, storedClaim, storedGrant } from "./spawn-scope.js";
import { environmentStub } from "./stub.js";

interface Node {
  id: string;
  name: string;
  state: EnvironmentState;
  provider: string;
  parent_id: string | null;
  depth: number;
  spawn: string | null;
  keep: number;
}

async function node(db: D1Database, org: string, id: string): Promise<Node | null> {
  return db.prepare("SELECT id, name, state, provider, parent_id, depth, spawn, keep FROM environments WHERE org = ? AND id = ?").bind(org, id).first<Node>();
}

export async function spawnScope(db: D1Database, org: string, id: string): Promise<SpawnGrant | null> {
  return storedGrant((await node(db, org, id))?.spawn ?? null);
}

/**
 * Who spawns: an operator of the org (held to the scope recorded in D1), or the environment's own
 * agent, whose token must carry the spawn scope (claim `spawn`) naming the current grant.
 */
export type Spawner = { agent: AgentClaims } | { operator: true };

/** Refuses an agent token without the spawn scope: checked before D1 or any object is touched. */
function requireSpawnClaim(by: Spawner): void {
  if ("agent" in by && !by.agent.spawn) {
    throw new HttpError(403, "forbidden", "This agent token carries no spawn scope: the environment may not spawn children (an admin grants it with PUT /v1/environments/{env}/spawn, which gives the agent a token that carries it).");
  }
}

/**
 * The parent's current grant, when `by` may act on its children: an agent token must carry the
 * spawn claim naming that grant and be of the current generation (403/401 otherwise).
 */
async function currentGrant(env: Env, org: string, parentId: string, by: Spawner): Promise<{ parent: Node; grant: SpawnClaim }> {
  requireSpawnClaim(by);
  const parent = await node(env.DB, org, parentId);
  if (!parent || parent.state === "archived") throw new HttpError(404, "not_found", "No such environment.");
  const current = storedClaim(parent.spawn);
  if (!current) throw new HttpError(403, "forbidden", `Environment '${parent.name}' may not spawn children: it has no spawn scope (PUT /v1/environments/${parent.name}/spawn).`);
  if ("agent" in by) {
    if (by.agent.spawn!.grant !== current.grant) {
      throw new HttpError(403, "forbidden", `The spawn scope this agent token carries was withdrawn or replaced; the agent needs the token PUT /v1/environments/${parent.name}/spawn issued.`);
    }
    unwrap(await environmentStub(env, org, parentId).checkAgentToken(by.agent.gen));
  }
  return { parent, grant: current };
}

/** Creates a child of `parentId` within the parent's scope: 403 outside it, 409 at a limit. */
export async function spawnChild(env: Env, org: string, parentId: string, body: SpawnBody, origin: string, by: Spawner): Promise<{ environment: Environment; agentToken: string }> {
  const { parent, grant } = await currentGrant(env, org, parentId, by);
  if (grant.providers && body.provider && !grant.providers.includes(body.provider)) {
    throw new HttpError(403, "forbidden", `Environment '${parent.name}' may spawn children with providers ${grant.providers.join(", ")} only, not '${body.provider}'.`);
  }
  if (grant.providers && !body.provider) throw new HttpError(403, "forbidden", `Environment '${parent.name}' must name one of its allowed providers (${grant.providers.join(", ")}).`);
  const wanted = body.requires?.capabilities ?? [];
  const refused = grant.capabilities ? wanted.filter((c) => !grant.capabilities!.includes(c)) : [];
  if (refused.length) throw new HttpError(403, "forbidden", `Environment '${parent.name}' may not spawn children requiring ${refused.join(", ")}.`);
  if (body.spawn) {
    if (grant.maxDepth <= 1) throw new HttpError(409, "depth_limit", `Depth limit: children of '${parent.name}' may not spawn their own (maxDepth ${grant.maxDepth}).`, { maxDepth: grant.maxDepth });
    if (body.spawn.maxDepth > grant.maxDepth - 1 || body.spawn.maxChildren > grant.maxChildren) {
      throw new HttpError(403, "forbidden", `A child's spawn scope must stay within its parent's: maxDepth ≤ ${grant.maxDepth - 1}, maxChildren ≤ ${grant.maxChildren}.`);
    }
  }
  const count = await env.DB.prepare("SELECT COUNT(*) AS n FROM environments WHERE org = ? AND parent_id = ? AND state <> 'archived'").bind(org, parentId).first<{ n: number }>();
  if ((count?.n ?? 0) >= grant.maxChildren) {
    throw new HttpError(409, "children_limit", `Environment '${parent.name}' already has ${count?.n} children (maxChildren ${grant.maxChildren}); close one first.`, { maxChildren: grant.maxChildren });
  }
  const { keep, spawn, ...create } = body;
  const childSpawn = spawn ? newSpawnClaim({ ...spawn, providers: spawn.providers ?? grant.providers, capabilities: spawn.capabilities ?? grant.capabilities }) : null;
  const child = await createEnvironment(env, org, create, origin, { parentId, depth: parent.depth + 1, keep: !!keep, spawn: childSpawn });
  await environmentStub(env, org, parentId).noteProviderEvent("child.spawned", { child: child.environment.id, name: child.environment.name, provider: child.environment.provider, keep: !!keep, by: "agent" in by ? "agent" : "operator" });
  await environmentStub(env, org, child.environment.id).noteProviderEvent("environment.spawned_by", { parent: parentId, name: parent.name, depth: parent.depth + 1 });
  return child;
}

/**
 * Closes (archives) a child of `parentId` and everything below it. An agent closes only its own
 * environment's children, with a token carrying the current grant (like a spawn); an admin may
 * always (the Worker checks the role).
 */
export async function closeChild(env: Env, org: string, parentId: string, childId: string, by: { agent: AgentClaims } | { admin: true }): Promise<Environment> {
  if ("agent" in by) await currentGrant(env, org, parentId, by);
  const child = await node(env.DB, org, childId);
  if (child?.parent_id !== parentId) throw new HttpError(404, "not_found", `'${child?.name ?? childId}' is not a child of this environment.`);
  await cascade(env, org, childId, "archive");
  const stub = environmentStub(env, org, childId);
  const environment = unwrap(await stub.archive());
  await stub.noteProviderEvent("parent.closed", { parent: parentId, by: "agent" in by ? "agent" : "admin" });
  await environmentStub(env, org, parentId).noteProviderEvent("child.closed", { child: childId, name: environment.name });
  return environment;
}

/** The environment that spawned `id` (null: none). */
export async function parentOf(db: D1Database, org: string, id: string): Promise<{ id: string; name: string } | null> {
  return db
    .prepare("SELECT p.id AS id, p.name AS name FROM environments c JOIN environments p ON p.org = c.org AND p.id = c.parent_id WHERE c.org = ? AND c.id = ?")
    .bind(org, id)
    .first<{ id: string; name: string }>();
}

/** The environment and everything below it. */
export async function tree(db: D1Database, org: string, rootId: string): Promise<EnvironmentTreeNode | null> {
  const { results } = await db
    .prepare(
      `WITH RECURSIVE t(id) AS (SELECT ? UNION ALL SELECT e.id FROM environments e JOIN t ON e.parent_id = t.id WHERE e.org = ?)
       SELECT e.id, e.name, e.state, e.provider, e.parent_id, e.depth, e.spawn, e.keep FROM environments e JOIN t ON e.id = t.id WHERE e.org = ? LIMIT 10000`,
    )
    .bind(rootId, org, org)
    .all<Node>();
  const byId = new Map(results.map((r) => [r.id, { id: r.id, name: r.name, state: r.state, provider: r.provider, keep: r.keep === 1, children: [] as EnvironmentTreeNode[] }]));
  for (const r of results) if (r.id !== rootId && r.parent_id) byId.get(r.parent_id)?.children.push(byId.get(r.id)!);
  return byId.get(rootId) ?? null;
}

/**
 * A parent was stopped or archived: its children follow (depth first, so grandchildren go first),
 * except those spawned with `keep`. Each child's and the parent's event logs record it.
 */
export async function cascade(env: Env, org: string, parentId: string, action: "stop" | "archive"): Promise<void> {
  const { results } = await env.DB.prepare("SELECT id, name, state, keep FROM environments WHERE org = ? AND parent_id = ? AND state <> 'archived'").bind(org, parentId).all<Node>();
  for (const child of results) {
    if (child.keep) continue;
    if (action === "stop" && (child.state === "stopped" || child.state === "created")) continue;
    await cascade(env, org, child.id, action);
    const stub = environmentStub(env, org, child.id);
    const done = action === "archive" ? await stub.archive() : await stub.stop();
    unwrap(done);
    await stub.noteProviderEvent(`parent.${action === "archive" ? "archived" : "stopped"}`, { parent: parentId, cascaded: true });
    await environmentStub(env, org, parentId).noteProviderEvent(`child.${action === "archive" ? "archived" : "stopped"}`, { child: child.id, name: child.name });
  }
}
