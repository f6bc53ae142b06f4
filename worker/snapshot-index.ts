/** The org's hierarchy in D1: objectives, threads, snapshots, their exports to R2 and where each is held. */
import type { Objective, Snapshot, SnapshotExport, SnapshotTaken, Thread } from "@outpost/protocol";

interface SnapshotRow {
  id: string;
  environment_id: string;
  thread_id: string | null;
  run_id: string | null;
  objective_id: string | null;
  parent_id: string | null;
  commit_sha: string;
  tree_sha: string;
  files: number;
  bytes: number;
  message: string;
  created_at: string;
}
interface ExportRow {
  id: string;
  format: "bundle" | "tar.gz";
  base_snapshot_id: string | null;
  size: number;
  sha256: string;
  r2_key: string;
  created_at: string;
}

export async function insertObjective(db: D1Database, org: string, o: Objective): Promise<void> {
  await db.prepare("INSERT INTO objectives (id, org, title, description, created_at) VALUES (?, ?, ?, ?, ?)").bind(o.id, org, o.title, o.description, o.createdAt).run();
}

export async function getObjective(db: D1Database, org: string, id: string): Promise<Objective | null> {
  const r = await db.prepare("SELECT * FROM objectives WHERE org = ? AND id = ?").bind(org, id).first<{ id: string; title: string; description: string | null; created_at: string }>();
  return r ? { id: r.id, title: r.title, description: r.description, createdAt: r.created_at } : null;
}

export async function listObjectives(db: D1Database, org: string, limit: number): Promise<Objective[]> {
  const { results } = await db.prepare("SELECT * FROM objectives WHERE org = ? ORDER BY id DESC LIMIT ?").bind(org, limit).all<{ id: string; title: string; description: string | null; created_at: string }>();
  return results.map((r) => ({ id: r.id, title: r.title, description: r.description, createdAt: r.created_at }));
}

type ThreadRow = { id: string; objective_id: string | null; parent_thread_id: string | null; title: string | null; created_at: string };
const toThread = (r: ThreadRow): Thread => ({ id: r.id, objectiveId: r.objective_id, parentThreadId: r.parent_thread_id, title: r.title, createdAt: r.created_at });

export async function insertThread(db: D1Database, org: string, t: Thread): Promise<void> {
  await db
    .prepare("INSERT INTO threads (id, org, objective_id, parent_thread_id, title, created_at) VALUES (?, ?, ?, ?, ?, ?)")
    .bind(t.id, org, t.objectiveId, t.parentThreadId, t.title, t.createdAt)
    .run();
}

export async function getThread(db: D1Database, org: string, id: string): Promise<Thread | null> {
  const r = await db.prepare("SELECT * FROM threads WHERE org = ? AND id = ?").bind(org, id).first<ThreadRow>();
  return r ? toThread(r) : null;
}

export async function listThreads(db: D1Database, org: string, o: { objectiveId?: string; limit: number }): Promise<Thread[]> {
  const q = o.objectiveId
    ? db.prepare("SELECT * FROM threads WHERE org = ? AND objective_id = ? ORDER BY id DESC LIMIT ?").bind(org, o.objectiveId, o.limit)
    : db.prepare("SELECT * FROM threads WHERE org = ? ORDER BY id DESC LIMIT ?").bind(org, o.limit);
  return (await q.all<ThreadRow>()).results.map(toThread);
}

/** Records a snapshot an agent took (idempotent), with its parent found by commit, and where it is held. */
export async function recordSnapshot(db: D1Database, org: string, environmentId: string, s: SnapshotTaken, at: string): Promise<void> {
  await db.batch([
    db
      .prepare(
        `INSERT OR IGNORE INTO snapshots (id, org, environment_id, thread_id, run_id, objective_id, parent_id, commit_sha, tree_sha, files, bytes, message, created_at)
         VALUES (?, ?, ?, ?, ?, COALESCE(?, (SELECT objective_id FROM threads WHERE org = ? AND id = ?)), (SELECT id FROM snapshots WHERE org = ? AND commit_sha = ? ORDER BY id LIMIT 1), ?, ?, ?, ?, ?, ?)`,
      )
      // A snapshot that continues a thread (the workspace's current one, named by the agent) is part of that thread's objective.
      .bind(s.snapshotId, org, environmentId, s.threadId, s.runId, s.objectiveId, org, s.threadId, org, s.parent, s.commit, s.tree, s.files, s.bytes, s.message, at),
    db.prepare("INSERT OR IGNORE INTO snapshot_locations (org, snapshot_id, environment_id, commit_sha, at) VALUES (?, ?, ?, ?, ?)").bind(org, s.snapshotId, environmentId, s.commit, at),
  ]);
}

export async function addLocation(db: D1Database, org: string, snapshotId: string, environmentId: string, commit: string, at: string): Promise<void> {
  await db
    .prepare("INSERT INTO snapshot_locations (org, snapshot_id, environment_id, commit_sha, at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (org, snapshot_id, environment_id) DO UPDATE SET commit_sha = excluded.commit_sha, at = excluded.at")
    .bind(org, snapshotId, environmentId, commit, at)
    .run();
}

/** The snapshot's commit in that environment, when the environment holds it. */
export async function locate(db: D1Database, org: string, snapshotId: string, environmentId: string): Promise<string | null> {
  const r = await db.prepare("SELECT commit_sha FROM snapshot_locations WHERE org = ? AND snapshot_id = ? AND environment_id = ?").bind(org, snapshotId, environmentId).first<{ commit_sha: string }>();
  return r?.commit_sha ?? null;
}

export async function insertExport(db: D1Database, org: string, snapshotId: string, e: SnapshotExport): Promise<void> {
  await db
    .prepare("INSERT INTO snapshot_exports (id, org, snapshot_id, format, base_snapshot_id, size, sha256, r2_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
    .bind(e.id, org, snapshotId, e.format, e.baseSnapshotId, e.size, e.sha256, e.key, e.createdAt)
    .run();
}

const toExport = (r: ExportRow): SnapshotExport => ({ id: r.id, format: r.format, baseSnapshotId: r.base_snapshot_id, size: r.size, sha256: r.sha256, key: r.r2_key, createdAt: r.created_at });

export async function getSnapshot(db: D1Database, org: string, id: string): Promise<Snapshot | null> {
  const [row, exports, places] = await db.batch([
    db.prepare("SELECT * FROM snapshots WHERE org = ? AND id = ?").bind(org, id),
    db.prepare("SELECT * FROM snapshot_exports WHERE org = ? AND snapshot_id = ? ORDER BY id").bind(org, id),
    db.prepare("SELECT environment_id FROM snapshot_locations WHERE org = ? AND snapshot_id = ? ORDER BY at").bind(org, id),
  ]);
  const r = (row?.results[0] as SnapshotRow | undefined) ?? null;
  if (!r) return null;
  return {
    ...toSnapshot(r),
    exports: ((exports?.results ?? []) as ExportRow[]).map(toExport),
    environments: ((places?.results ?? []) as Array<{ environment_id: string }>).map((p) => p.environment_id),
  };
}

const toSnapshot = (r: SnapshotRow): Omit<Snapshot, "exports" | "environments"> => ({
  id: r.id,
  environmentId: r.environment_id,
  threadId: r.thread_id,
  runId: r.run_id,
  objectiveId: r.objective_id,
  parentId: r.parent_id,
  commit: r.commit_sha,
  tree: r.tree_sha,
  files: r.files,
  bytes: r.bytes,
  message: r.message,
  createdAt: r.created_at,
});

export async function listSnapshots(db: D1Database, org: string, o: { threadId?: string; environmentId?: string; limit: number }): Promise<Array<Omit<Snapshot, "exports" | "environments">>> {
  const where = ["org = ?"];
  const args: unknown[] = [org];
  if (o.threadId) (where.push("thread_id = ?"), args.push(o.threadId));
  if (o.environmentId) (where.push("environment_id = ?"), args.push(o.environmentId));
  const { results } = await db.prepare(`SELECT * FROM snapshots WHERE ${where.join(" AND ")} ORDER BY id DESC LIMIT ?`).bind(...args, o.limit).all<SnapshotRow>();
  return results.map(toSnapshot);
}

/** The run a snapshot ended, as the runs index has it. */
export async function runSummary(db: D1Database, org: string, runId: string): Promise<Record<string, unknown> | null> {
  return db.prepare("SELECT id, environment_id, state, thread_id, objective_id, created_at, updated_at FROM runs WHERE org = ? AND id = ?").bind(org, runId).first<Record<string, unknown>>();
}
