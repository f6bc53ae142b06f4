/** HTTP API bodies. The Worker validates with these; clients and tests type against them. */
import * as z from "zod";
import { ExecParams, ExecResult } from "./wire.js";

export const ENVIRONMENT_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
export const PROVIDER_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

export const EnvironmentState = z.enum([
  "created",
  "starting",
  "running",
  "stopping",
  "stopped",
  "error",
  "restarting",
  "disconnected",
  "unconnectable",
  "not_available",
  "archived",
]);
export type EnvironmentState = z.infer<typeof EnvironmentState>;

const ms = (min: number, max: number) => z.number().int().min(min).max(max);

/** The default link-check interval of an idle environment; the agent's health reports follow it. */
export const DEFAULT_IDLE_CHECK_MS = 300_000;

/** Per-environment timing and restart policy; every field has a default. */
export const LifecycleSettings = z.object({
  /** How often the agent pings; three missed intervals mean the link is half-open. */
  heartbeatMs: ms(10, 300_000).default(10_000),
  /** How long a disconnected environment waits for its agent before it is unconnectable. */
  graceMs: ms(10, 86_400_000).default(120_000),
  /** How long start and restart wait for an agent to connect. */
  startTimeoutMs: ms(10, 86_400_000).default(120_000),
  /** How long stop waits for the agent to tear down before recording stopped anyway. */
  stopTimeoutMs: ms(10, 3_600_000).default(15_000),
  /** How often a running, idle environment's link is checked (the only alarm while idle). */
  idleCheckMs: ms(10, 86_400_000).default(DEFAULT_IDLE_CHECK_MS),
  restart: z
    .object({
      policy: z.enum(["never", "on-failure"]).default("on-failure"),
      maxRestarts: z.number().int().min(0).max(1000).default(5),
      backoffMs: ms(1, 3_600_000).default(1_000),
      maxBackoffMs: ms(1, 86_400_000).default(60_000),
    })
    .prefault({}),
});
export type LifecycleSettings = z.infer<typeof LifecycleSettings>;

export const Metadata = z.record(z.string().max(128), z.string().max(1024)).refine((m) => Object.keys(m).length <= 64, "at most 64 metadata keys");

const Capability = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/);

/** The spawn scope (spawn.ts): how many children, how deep below this environment, which providers and capabilities. */
export const SpawnGrant = z.object({
  maxChildren: z.number().int().min(1).max(1000).default(4),
  /** 1: children only; 2: children may be granted the scope to spawn their own; … */
  maxDepth: z.number().int().min(1).max(16).default(1),
  /** Providers a child may use; absent: any. */
  providers: z.array(z.string().regex(PROVIDER_NAME)).max(32).optional(),
  /** Capabilities a child may require; absent: any. */
  capabilities: z.array(Capability).max(32).optional(),
});
export type SpawnGrant = z.infer<typeof SpawnGrant>;

export const CreateEnvironmentBody = z.object({
  name: z
    .string()
    .regex(ENVIRONMENT_NAME, "name must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"),
  /** The provider; may be left out when `requires` says what is needed and a host chooses. */
  provider: z.string().regex(PROVIDER_NAME, "provider must be lowercase letters, digits or '-'").optional(),
  config: z.record(z.string(), z.unknown()).optional(),
  metadata: Metadata.optional(),
  /** Omitted fields take their defaults. */
  lifecycle: LifecycleSettings.optional(),
  /** Place the environment on a connected provider host that has these capabilities (409 if none). */
  requires: z.object({ capabilities: z.array(z.string().max(64)).max(32) }).optional(),
  /** Pin the environment to this provider host (409 if it cannot serve it). */
  host: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/).optional(),
  /** Grant the scope to spawn children from the start (as PUT …/spawn would); the agent token carries it. */
  spawn: SpawnGrant.optional(),
}).refine((b) => b.provider !== undefined || b.requires !== undefined || b.host !== undefined, {
  message: "name a provider, or give requires.capabilities or a host to place the environment by",
  path: ["provider"],
});
export type CreateEnvironmentBody = z.infer<typeof CreateEnvironmentBody>;
/** What a client sends: fields with defaults may be left out. */
export type CreateEnvironmentInput = z.input<typeof CreateEnvironmentBody>;

export const Environment = z.object({
  id: z.string(),
  org: z.string(),
  name: z.string(),
  provider: z.string(),
  config: z.record(z.string(), z.unknown()),
  state: EnvironmentState,
  createdAt: z.string(),
  updatedAt: z.string(),
  startedAt: z.string().nullable(),
  lastSeenAt: z.string().nullable(),
  lastHealthCheckAt: z.string().nullable(),
  restartCount: z.number().int(),
  errorCount: z.number().int(),
  lastError: z.string().nullable(),
  metadata: z.record(z.string(), z.string()),
  resourceId: z.string().nullable(),
  /** The provider host that created the environment; null when its agent is started by hand. */
  host: z.string().nullable(),
  /** GET /v1/environments/{env}: the environment that spawned it (null: none); see spawn.ts. */
  parent: z.object({ id: z.string(), name: z.string() }).nullable().optional(),
  lifecycle: LifecycleSettings,
  connected: z.boolean(),
  /** The agent's latest resource report (see the `health` frame); null until one arrives. */
  health: z
    .object({
      at: z.string(),
      cpu: z.object({ load1: z.number(), cores: z.number() }),
      memory: z.object({ totalBytes: z.number(), freeBytes: z.number(), agentRssBytes: z.number() }),
      disk: z.object({ totalBytes: z.number(), freeBytes: z.number() }),
      processes: z.number(),
    })
    .nullable(),
  agent: z
    .object({
      version: z.string(),
      hostname: z.string(),
      platform: z.string(),
      capabilities: z.array(z.string()),
      connectedAt: z.string(),
    })
    .nullable(),
});
export type Environment = z.infer<typeof Environment>;

export const CreateEnvironmentResponse = z.object({ environment: Environment, agentToken: z.string() });
/** A row of the org's index (D1): enough to list and filter; the Durable Object has the rest. */
export const EnvironmentSummary = Environment.pick({ id: true, name: true, provider: true, state: true, createdAt: true, updatedAt: true });
export type EnvironmentSummary = z.infer<typeof EnvironmentSummary>;
export const ListEnvironmentsResponse = z.object({ environments: z.array(EnvironmentSummary), nextCursor: z.string().nullable() });

export const ExecBody = ExecParams;
export type ExecBody = ExecParams;
export const ExecResponse = ExecResult;

export const EnvironmentEvent = z.object({
  seq: z.number().int().positive(),
  at: z.string(),
  type: z.string(),
  data: z.record(z.string(), z.unknown()),
});
export type EnvironmentEvent = z.infer<typeof EnvironmentEvent>;
export const EventsPage = z.object({ events: z.array(EnvironmentEvent), next: z.number().int().nonnegative() });

/** What an environment's Durable Object has cost, counted by the object itself. */
export const EnvironmentMetrics = z.object({
  since: z.string(),
  wakeups: z.number().int(),
  entries: z.record(z.string(), z.number().int()),
  alarms: z.number().int(),
  rowsWritten: z.number().int(),
  lastHealthCheckAt: z.string().nullable(),
});
export type EnvironmentMetrics = z.infer<typeof EnvironmentMetrics>;

/**
 * POST /exec with `Accept: application/x-ndjson`: one JSON object per line, in this order:
 * `started` (with the execId to cancel it), then stdout/stderr pieces as they come (UTF-8 text),
 * then exactly one `exit` or `error`.
 */
/** The `exit` line of an exec stream; a forward stream's `exit` line extends it (chaining.ts). */
export const ExecExitLine = z.object({
  type: z.literal("exit"),
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable().optional(),
  durationMs: z.number(),
  timedOut: z.boolean().optional(),
  cancelled: z.boolean().optional(),
});
export const ExecStreamLine = z.discriminatedUnion("type", [
  z.object({ type: z.literal("started"), execId: z.string() }),
  z.object({ type: z.literal("stdout"), data: z.string() }),
  z.object({ type: z.literal("stderr"), data: z.string() }),
  ExecExitLine,
  z.object({ type: z.literal("error"), code: z.string(), message: z.string() }),
]);
export type ExecStreamLine = z.infer<typeof ExecStreamLine>;

export const RunState = z.enum(["queued", "running", "succeeded", "failed", "cancelled", "lost"]);
export type RunState = z.infer<typeof RunState>;
export const FINAL_RUN_STATES: ReadonlySet<RunState> = new Set(["succeeded", "failed", "cancelled", "lost"]);

const RefId = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, "ids are 1-128 letters, digits, '_', '.', ':' or '-'");

export const CreateRunBody = z.object({
  agent: z.object({
    command: z.array(z.string().max(65536)).min(1).max(4096),
    env: z.record(z.string(), z.string()).optional(),
  }),
  message: z.string().max(1024 * 1024).optional(),
  threadId: RefId.optional(),
  objectiveId: RefId.optional(),
});
export type CreateRunBody = z.infer<typeof CreateRunBody>;

export const Run = z.object({
  id: z.string(),
  environmentId: z.string(),
  state: RunState,
  command: z.array(z.string()),
  threadId: z.string().nullable(),
  objectiveId: z.string().nullable(),
  pid: z.number().int().nullable(),
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  error: z.string().nullable(),
  outputChunks: z.number().int(),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  endedAt: z.string().nullable(),
});
export type Run = z.infer<typeof Run>;

export const Health = z.object({ ok: z.literal(true), version: z.string() });

/** RFC 9457 problem details, the body of every error response. */
export const Problem = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  code: z.string(),
  instance: z.string().optional(),
  errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
});
export type Problem = z.infer<typeof Problem>;
