-- The hierarchy of work, per org: objectives → threads → agent runs (0003) → snapshots.
-- Snapshots are commits in an environment's shadow repository; their bundles live in R2.
CREATE TABLE objectives (
  id TEXT PRIMARY KEY,            -- obj_ + 10 time-ordered + 10 random base32 characters
  org TEXT NOT NULL,
  title TEXT NOT NULL,
  description TEXT,
  created_at TEXT NOT NULL
);
CREATE INDEX objectives_org ON objectives (org, id);

CREATE TABLE threads (
  id TEXT PRIMARY KEY,            -- thr_…
  org TEXT NOT NULL,
  objective_id TEXT,
  parent_thread_id TEXT,          -- a thread branched from another (import with strategy branch)
  title TEXT,
  created_at TEXT NOT NULL
);
CREATE INDEX threads_org_objective ON threads (org, objective_id, id);

CREATE TABLE snapshots (
  id TEXT PRIMARY KEY,            -- snap_…
  org TEXT NOT NULL,
  environment_id TEXT NOT NULL,   -- where it was taken
  thread_id TEXT,
  run_id TEXT,
  objective_id TEXT,
  parent_id TEXT,                 -- the snapshot whose commit is this one's parent, when known
  commit_sha TEXT NOT NULL,
  tree_sha TEXT NOT NULL,
  files INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  message TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE INDEX snapshots_org_thread ON snapshots (org, thread_id, id);
CREATE INDEX snapshots_org_environment ON snapshots (org, environment_id, id);
CREATE INDEX snapshots_org_commit ON snapshots (org, commit_sha);

-- Each bundle or archive written to R2: full, or incremental against a base snapshot.
CREATE TABLE snapshot_exports (
  id TEXT PRIMARY KEY,            -- exp_…
  org TEXT NOT NULL,
  snapshot_id TEXT NOT NULL,
  format TEXT NOT NULL,           -- bundle | tar.gz
  base_snapshot_id TEXT,
  size INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  r2_key TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE INDEX snapshot_exports_snapshot ON snapshot_exports (org, snapshot_id, id);

-- Environments that hold a snapshot (taken there, or imported), with its commit there.
CREATE TABLE snapshot_locations (
  org TEXT NOT NULL,
  snapshot_id TEXT NOT NULL,
  environment_id TEXT NOT NULL,
  commit_sha TEXT NOT NULL,
  at TEXT NOT NULL,
  PRIMARY KEY (org, snapshot_id, environment_id)
);
