-- Hierarchical environments: a child's parent, its depth below the root, the spawn scope granted to
-- an environment (JSON, NULL: it may not spawn), and whether a child stays when its parent goes.
ALTER TABLE environments ADD COLUMN parent_id TEXT;
ALTER TABLE environments ADD COLUMN depth INTEGER NOT NULL DEFAULT 0;
ALTER TABLE environments ADD COLUMN spawn TEXT;
ALTER TABLE environments ADD COLUMN keep INTEGER NOT NULL DEFAULT 0;
CREATE INDEX environments_parent ON environments (org, parent_id);
