/**
 * Frames on the agent link (one WebSocket per environment, dialed out by the provider-agent).
 * Every frame is a JSON text message; the only exception is the heartbeat: the agent sends the bare
 * text `ping` and the edge's auto-response answers `pong` without waking the Durable Object.
 *
 * Reliability. Frames of the kinds in RELIABLE_KINDS carry `seq`, increasing per direction (it may
 * skip, never repeat). A receiver processes a frame only when its seq is above the highest seq it
 * has processed (`recv`), so a resent frame is dropped; it acknowledges cumulatively with `ack`
 * (piggybacked on any frame, or an `ack` frame). A sender keeps every unacknowledged reliable frame
 * in its outbox and, after a reconnect, resends them in order: `hello` carries the agent's recv and
 * `welcome` the edge's, and each side drops what the other already has. Frames without `seq` are
 * delivered at most once.
 *
 * Flow control. Byte streams (file transfers, streamed exec output) are chunk frames with their own
 * ordinal `n` per request. The receiving side grants `credit { re, n }`: the sender may send chunks
 * up to and including n. This bounds memory on both sides whatever the speed of the final reader.
 */
import * as z from "zod";
import { ErrorInfo } from "./errors.js";
import { OpName } from "./ops.js";
import { SnapshotTaken } from "./snapshots.js";

export * from "./ops.js";

export const HEARTBEAT_PING = "ping";
export const HEARTBEAT_PONG = "pong";
/** Largest frame either side accepts; bigger payloads travel as chunks. */
export const MAX_FRAME_BYTES = 1024 * 1024;
/** Raw bytes per chunk frame (base64 grows it by a third, still well under MAX_FRAME_BYTES). */
export const CHUNK_BYTES = 256 * 1024;
/** Chunks a sender may have in flight before it needs more credit (16 × 256 KiB = 4 MiB). */
export const INITIAL_CREDIT = 16;
/** Frame kinds that carry seq and are resent after a reconnect until acknowledged. */
export const RELIABLE_KINDS = ["request", "reply", "chunk", "cancel", "run.output", "run.exit"] as const;

const Id = z.string().min(1).max(128);
const Seq = z.number().int().positive();
const Ack = z.number().int().nonnegative();
const base = { v: z.literal(1), seq: Seq.optional(), ack: Ack.optional() };

export const AgentInfo = z.object({
  version: z.string().max(64),
  hostname: z.string().max(255),
  platform: z.string().max(64),
  arch: z.string().max(64),
  node: z.string().max(64),
  pid: z.number().int().nonnegative(),
});
export type AgentInfo = z.infer<typeof AgentInfo>;

/** A run the agent knows of, reported in hello so the edge can tell which runs survived. */
export const RunReport = z.object({
  runId: Id,
  state: z.enum(["running", "exited"]),
  pid: z.number().int().optional(),
});
export type RunReport = z.infer<typeof RunReport>;

/** agent → edge, first frame after the upgrade. `ack` is the highest edge seq the agent processed. */
export const Hello = z.object({
  ...base,
  kind: z.literal("hello"),
  protocol: z.string().max(16),
  agent: AgentInfo,
  capabilities: z.array(z.string().max(64)).max(64),
  workspace: z.string().max(4096).optional(),
  /** The provider's id for the resource the agent runs in (container id, worktree path, …). */
  resourceId: z.string().max(512).optional(),
  /** Every run this agent process has started that the edge may not have seen finish. */
  runs: z.array(RunReport).max(1000).optional(),
  /**
   * The seq of the first reliable frame the agent will send on this connection (resent or new).
   * From there its seqs are contiguous, so the edge can put frames that arrive out of order back
   * in order and tell a lost frame from a skip.
   */
  resume: Seq.optional(),
});

/** edge → agent, answers a compatible hello. `ack` is the highest agent seq the edge processed. */
export const Welcome = z.object({
  ...base,
  kind: z.literal("welcome"),
  protocol: z.string(),
  environmentId: z.string(),
  heartbeatMs: z.number().int().positive(),
});

/** edge → agent: do something; the agent answers with exactly one reply naming `id`. */
export const Request = z.object({
  ...base,
  kind: z.literal("request"),
  id: Id,
  op: OpName,
  params: z.unknown(),
  /** exec: a hard deadline; transfers: the longest a stream may stand still. */
  timeoutMs: z.number().int().positive(),
});

/** agent → edge: the answer to request `re`. */
export const Reply = z.discriminatedUnion("ok", [
  z.object({ ...base, kind: z.literal("reply"), re: Id, ok: z.literal(true), result: z.unknown() }),
  z.object({ ...base, kind: z.literal("reply"), re: Id, ok: z.literal(false), error: ErrorInfo }),
]);

/** edge → agent: stop working on request `re`; its reply says cancelled. */
export const Cancel = z.object({ ...base, kind: z.literal("cancel"), re: Id });

/** Either side: one piece of a byte stream that belongs to request `re`, in order of `n`. */
export const Chunk = z.object({
  ...base,
  kind: z.literal("chunk"),
  re: Id,
  n: z.number().int().nonnegative(),
  data: z.string().max(Math.ceil((CHUNK_BYTES * 4) / 3) + 4), // base64
  /** exec output: which stream the bytes came from. */
  stream: z.enum(["stdout", "stderr"]).optional(),
  last: z.boolean().optional(),
});
export type Chunk = z.infer<typeof Chunk>;

/** Either side, for the stream of request `re`: chunks up to and including `n` may be sent. */
export const Credit = z.object({ ...base, kind: z.literal("credit"), re: Id, n: z.number().int().nonnegative() });
export type Credit = z.infer<typeof Credit>;

/** Either side: a cumulative acknowledgement with nothing else to carry it. */
export const AckFrame = z.object({ ...base, kind: z.literal("ack"), ack: Ack });

/** agent → edge: output of a run, in order of `n` per run (base64 data). */
export const RunOutput = z.object({
  ...base,
  kind: z.literal("run.output"),
  runId: Id,
  n: z.number().int().nonnegative(),
  stream: z.enum(["stdout", "stderr"]),
  data: z.string().max(Math.ceil((CHUNK_BYTES * 4) / 3) + 4),
});
export type RunOutput = z.infer<typeof RunOutput>;

/** agent → edge: a run ended (exit code or signal); `error` when it could not be started or crashed. */
export const RunExit = z.object({
  ...base,
  kind: z.literal("run.exit"),
  runId: Id,
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  durationMs: z.number().nonnegative(),
  cancelled: z.boolean().optional(),
  error: z.string().max(4096).optional(),
  /** The snapshot the agent took of the workspace when the run ended. */
  snapshot: SnapshotTaken.optional(),
});
export type RunExit = z.infer<typeof RunExit>;

/** agent → edge, at a low rate: the environment's resource use. */
export const HealthFrame = z.object({
  ...base,
  kind: z.literal("health"),
  at: z.string(),
  cpu: z.object({ load1: z.number(), cores: z.number().int() }),
  memory: z.object({ totalBytes: z.number(), freeBytes: z.number(), agentRssBytes: z.number() }),
  disk: z.object({ totalBytes: z.number(), freeBytes: z.number() }),
  processes: z.number().int().nonnegative(),
});
export type HealthFrame = z.infer<typeof HealthFrame>;

/** Either side: a frame that could not be handled, naming the request when there is one. */
export const ErrorFrame = z.object({ ...base, kind: z.literal("error"), re: Id.optional(), error: ErrorInfo });

// Discriminated by kind: a frame is checked against its own schema only, not tried against each in turn.
export const AgentFrame = z.discriminatedUnion("kind", [Hello, Reply, Chunk, Credit, AckFrame, RunOutput, RunExit, HealthFrame, ErrorFrame]);
export const EdgeFrame = z.discriminatedUnion("kind", [Welcome, Request, Cancel, Chunk, Credit, AckFrame, ErrorFrame]);
export type AgentFrame = z.infer<typeof AgentFrame>;
export type EdgeFrame = z.infer<typeof EdgeFrame>;
export type Hello = z.infer<typeof Hello>;
export type Welcome = z.infer<typeof Welcome>;
export type Request = z.infer<typeof Request>;
export type Reply = z.infer<typeof Reply>;

export function isReliable(frame: { kind: string }): boolean {
  return (RELIABLE_KINDS as readonly string[]).includes(frame.kind);
}

export type ParseResult<T> = { ok: true; frame: T } | { ok: false; error: string };

function parseWith<T>(schema: z.ZodType<T>, text: string): ParseResult<T> {
  if (text.length > MAX_FRAME_BYTES) return { ok: false, error: `frame larger than ${MAX_FRAME_BYTES} bytes` };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, error: "frame is not valid JSON" };
  }
  const r = schema.safeParse(json);
  return r.success ? { ok: true, frame: r.data } : { ok: false, error: z.prettifyError(r.error) };
}

export const parseAgentFrame = (text: string) => parseWith(AgentFrame, text);
export const parseEdgeFrame = (text: string) => parseWith(EdgeFrame, text);
