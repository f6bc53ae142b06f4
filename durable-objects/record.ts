/** The environment's row in its own SQLite, and how it reads through the API. */
import { LifecycleSettings, type Environment, type EnvironmentState, type SpawnClaim } from "@outpost/protocol";

export interface Row {
  id: string;
  org: string;
  name: string;
  provider: string;
  config: string;
  metadata: string;
  lifecycle: string;
  state: EnvironmentState;
  agent_gen: number;
  agent: string | null;
  resource_id: string | null;
  started_at: string | null;
  last_seen_at: string | null;
  restart_count: number;
  restart_attempts: number;
  agent_recv: number;
  edge_seq_reserved: number;
  host: string | null;
  control_url: string | null;
  secret_keys: string;
  /** The spawn scope held now (agent-token.ts): a SpawnClaim's JSON, "null" for none, NULL when not yet known here. */
  spawn: string | null;
  error_count: number;
  last_error: string | null;
  created_at: string;
  updated_at: string;
}

export interface CreateInit {
  id: string;
  org: string;
  name: string;
  provider: string;
  /** JSON text of the config object (plain text keeps the RPC signature shallow). */
  configJson: string;
  /** JSON text of the metadata map. */
  metadataJson: string;
  /** JSON text of the lifecycle settings, defaults applied. */
  lifecycleJson: string;
  /** ISO time of creation, the same as in the org's index. */
  createdAt: string;
  /** The provider host chosen for it, if any, and the URL its agent must dial. */
  host?: string;
  controlUrl?: string;
  /** Config keys whose values are secret: passed to the provider, shown redacted. */
  secretKeys?: string[];
  /** The spawn scope it is granted from the start (a create body's or its parent's), if any. */
  spawn?: SpawnClaim | null;
}

export function settingsOf(row: Row): LifecycleSettings {
  return LifecycleSettings.parse(JSON.parse(row.lifecycle));
}

export interface Live {
  connected: boolean;
  health: Environment["health"];
  /** When the agent was last heard from (heartbeat auto-response or connect), if connected. */
  lastSeenMs: number | null;
  lastHealthCheckAt: string | null;
}

export function describe(row: Row, live: Live): Environment {
  return {
    id: row.id,
    org: row.org,
    name: row.name,
    provider: row.provider,
    config: redacted(row),
    state: row.state,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    startedAt: row.started_at,
    lastSeenAt: live.lastSeenMs !== null ? new Date(live.lastSeenMs).toISOString() : row.last_seen_at,
    lastHealthCheckAt: live.lastHealthCheckAt,
    restartCount: row.restart_count,
    errorCount: row.error_count,
    lastError: row.last_error,
    metadata: JSON.parse(row.metadata) as Record<string, string>,
    resourceId: row.resource_id,
    host: row.host,
    lifecycle: settingsOf(row),
    connected: live.connected,
    health: live.health,
    agent: row.agent ? (JSON.parse(row.agent) as Environment["agent"]) : null,
  };
}

function redacted(row: Row): Record<string, unknown> {
  const config = JSON.parse(row.config) as Record<string, unknown>;
  for (const key of JSON.parse(row.secret_keys) as string[]) if (config[key] !== undefined) config[key] = "[redacted]";
  return config;
}

/** Restart backoff: doubles per consecutive attempt, capped. */
export function restartDelay(s: LifecycleSettings, attempts: number): number {
  return Math.min(s.restart.maxBackoffMs, s.restart.backoffMs * 2 ** Math.min(attempts, 30));
}
