/** The org's index of environments in D1: listing, filtering and name uniqueness. */
import type { EnvironmentState, EnvironmentSummary } from "@outpost/protocol";
import { HttpError } from "./problem.js";

interface Row {
  id: string;
  name: string;
  provider: string;
  state: EnvironmentState;
  created_at: string;
  updated_at: string;
}

const toSummary = (r: Row): EnvironmentSummary => ({
  id: r.id,
  name: r.name,
  provider: r.provider,
  state: r.state,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

/** Where a new environment sits in the hierarchy (children.ts), written with its row in one INSERT. */
export interface Family {
  parentId: string | null;
  depth: number;
  keep: boolean;
  /** The spawn scope it is granted (JSON of a SpawnClaim), or null. */
  spawnJson: string | null;
}

const ROOT: Family = { parentId: null, depth: 0, keep: false, spawnJson: null };

export async function insertEnvironment(db: D1Database, org: string, e: EnvironmentSummary, family: Family = ROOT): Promise<void> {
  try {
    await db
      .prepare("INSERT INTO environments (id, org, name, provider, state, created_at, updated_at, parent_id, depth, keep, spawn) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
      .bind(e.id, org, e.name, e.provider, e.state, e.createdAt, e.updatedAt, family.parentId, family.depth, family.keep ? 1 : 0, family.spawnJson)
      .run();
  } catch (err) {
    if (String(err).includes("UNIQUE")) {
      throw new HttpError(409, "conflict", `An environment named '${e.name}' already exists in this org.`, { name: e.name });
    }
    throw err;
  }
}

export async function removeEnvironment(db: D1Database, org: string, id: string): Promise<void> {
  await db.prepare("DELETE FROM environments WHERE org = ? AND id = ?").bind(org, id).run();
}

export async function findIdByName(db: D1Database, org: string, name: string): Promise<string | null> {
  const row = await db
    .prepare("SELECT id FROM environments WHERE org = ? AND name = ? AND state <> 'archived'")
    .bind(org, name)
    .first<{ id: string }>();
  return row?.id ?? null;
}

export async function listEnvironments(
  db: D1Database,
  org: string,
  opts: { after?: string; limit: number; state?: string; provider?: string },
): Promise<{ environments: EnvironmentSummary[]; nextCursor: string | null }> {
  const where = ["org = ?"];
  const args: unknown[] = [org];
  if (opts.after) (where.push("id > ?"), args.push(opts.after));
  if (opts.state) (where.push("state = ?"), args.push(opts.state));
  else where.push("state <> 'archived'"); // archived ones are listed only when asked for
  if (opts.provider) (where.push("provider = ?"), args.push(opts.provider));
  const { results } = await db
    .prepare(`SELECT id, name, provider, state, created_at, updated_at FROM environments WHERE ${where.join(" AND ")} ORDER BY id LIMIT ?`)
    .bind(...args, opts.limit + 1)
    .all<Row>();
  const page = results.slice(0, opts.limit).map(toSummary);
  const nextCursor = results.length > opts.limit ? (page[page.length - 1]?.id ?? null) : null;
  return { environments: page, nextCursor };
}

/** Called by the environment's Durable Object whenever its state changes. */
export async function updateIndexedState(db: D1Database, org: string, id: string, state: EnvironmentState, updatedAt: string): Promise<void> {
  await db.prepare("UPDATE environments SET state = ?, updated_at = ? WHERE org = ? AND id = ?").bind(state, updatedAt, org, id).run();
}

export async function insertRun(db: D1Database, org: string, r: { id: string; environmentId: string; threadId: string | null; objectiveId: string | null; createdAt: string }): Promise<void> {
  await db
    .prepare("INSERT INTO runs (id, org, environment_id, state, thread_id, objective_id, created_at, updated_at) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?)")
    .bind(r.id, org, r.environmentId, r.threadId, r.objectiveId, r.createdAt, r.createdAt)
    .run();
}

export async function findRunEnvironment(db: D1Database, org: string, runId: string): Promise<string | null> {
  const row = await db.prepare("SELECT environment_id FROM runs WHERE org = ? AND id = ?").bind(org, runId).first<{ environment_id: string }>();
  return row?.environment_id ?? null;
}

/** Called by the environment's Durable Object whenever a run changes state. */
export async function updateRunIndex(db: D1Database, org: string, id: string, state: string, updatedAt: string): Promise<void> {
  await db.prepare("UPDATE runs SET state = ?, updated_at = ? WHERE org = ? AND id = ?").bind(state, updatedAt, org, id).run();
}
