/**
 * The Durable Object's own SQLite schema. Migrations are idempotent and run once per wake, but
 * only in an object that already holds an environment: a request for an unknown id must not
 * write storage (that would bill rows and leave an empty object behind).
 */
import type { Sql } from "./sql.js";

const MIGRATIONS: string[] = [
  `CREATE TABLE IF NOT EXISTS environment (
     id TEXT PRIMARY KEY,
     org TEXT NOT NULL,
     name TEXT NOT NULL,
     provider TEXT NOT NULL,
     config TEXT NOT NULL,
     metadata TEXT NOT NULL,
     lifecycle TEXT NOT NULL,
     state TEXT NOT NULL,
     agent_gen INTEGER NOT NULL,
     agent TEXT,
     resource_id TEXT,
     started_at TEXT,
     last_seen_at TEXT,
     restart_count INTEGER NOT NULL DEFAULT 0,
     restart_attempts INTEGER NOT NULL DEFAULT 0,
     error_count INTEGER NOT NULL DEFAULT 0,
     last_error TEXT,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL
   );
   CREATE TABLE IF NOT EXISTS events (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     at TEXT NOT NULL,
     type TEXT NOT NULL,
     data TEXT NOT NULL
   );
   CREATE TABLE IF NOT EXISTS schedule (
     key TEXT PRIMARY KEY,
     due INTEGER NOT NULL,
     event TEXT NOT NULL
   );
   CREATE TABLE IF NOT EXISTS metrics (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     data TEXT NOT NULL
   );`,
  // The reliable link (wire.ts): frames that must reach the agent even across eviction, the
  // highest agent seq processed, and the block of edge seqs reserved (seqs never repeat).
  `CREATE TABLE IF NOT EXISTS outbox (
     seq INTEGER PRIMARY KEY,
     key TEXT NOT NULL,
     frame TEXT NOT NULL
   );
   ALTER TABLE environment ADD COLUMN agent_recv INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE environment ADD COLUMN edge_seq_reserved INTEGER NOT NULL DEFAULT 0;
   CREATE TABLE IF NOT EXISTS runs (
     id TEXT PRIMARY KEY,
     state TEXT NOT NULL,
     command TEXT NOT NULL,
     thread_id TEXT,
     objective_id TEXT,
     pid INTEGER,
     exit_code INTEGER,
     signal TEXT,
     error TEXT,
     output_chunks INTEGER NOT NULL DEFAULT 0,
     created_at TEXT NOT NULL,
     started_at TEXT,
     ended_at TEXT
   );`,
  // Environments placed on a provider host: which host, where the agent dials, which config keys are secret.
  `ALTER TABLE environment ADD COLUMN host TEXT;
   ALTER TABLE environment ADD COLUMN control_url TEXT;
   ALTER TABLE environment ADD COLUMN secret_keys TEXT NOT NULL DEFAULT '[]';`,
  // Execution chaining: the gateway (does it take forwarded work, from whom) and the routing rules.
  `CREATE TABLE IF NOT EXISTS chaining (id INTEGER PRIMARY KEY CHECK (id = 1), gateway TEXT NOT NULL, routing TEXT NOT NULL);`,
  // The spawn scope held now, beside the org's index, so a connecting agent's token can be checked against it.
  `ALTER TABLE environment ADD COLUMN spawn TEXT;`,
];

export function hasSchema(sql: Sql): boolean {
  return sql`SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_outpost_schema'`.length > 0;
}

/** Brings the schema up to date; `create` is true only when a new environment is being created. */
export function migrate(storage: SqlStorage, sql: Sql, create: boolean): boolean {
  if (!hasSchema(sql)) {
    if (!create) return false;
    storage.exec("CREATE TABLE _outpost_schema (version INTEGER NOT NULL)");
    storage.exec("INSERT INTO _outpost_schema (version) VALUES (0)");
  }
  const [row] = sql<{ version: number }>`SELECT version FROM _outpost_schema`;
  for (let v = row?.version ?? 0; v < MIGRATIONS.length; v++) {
    storage.exec(MIGRATIONS[v]!);
    sql`UPDATE _outpost_schema SET version = ${v + 1}`;
  }
  return true;
}
