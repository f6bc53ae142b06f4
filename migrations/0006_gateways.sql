-- Execution chaining: environments whose gateway accepts forwarded work, with the capabilities they
-- offer (the gateway's own and their agent's), so a capability target resolves at request time.
CREATE TABLE gateways (
  org TEXT NOT NULL,
  environment_id TEXT NOT NULL,
  accept INTEGER NOT NULL,
  capabilities TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (org, environment_id)
);
