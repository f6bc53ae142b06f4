import * as z from "zod";

/** A structured error, the same shape on the wire and inside problem+json bodies. */
export const ErrorInfo = z.object({
  code: z.string().min(1),
  message: z.string(),
  details: z.record(z.string(), z.unknown()).optional(),
});
export type ErrorInfo = z.infer<typeof ErrorInfo>;

/**
 * Error codes shared by both sides. The HTTP status each maps to lives here too,
 * so that an error raised by the agent reaches the HTTP caller with the right status.
 */
export const ERROR_STATUS = {
  bad_request: 400,
  invalid_path: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  cancelled: 409,
  invalid_state: 409,
  agent_not_connected: 409,
  loop_detected: 409,
  hop_limit: 409,
  payload_too_large: 413,
  exec_failed: 422,
  /** A snapshot bundle whose size or sha256 is not what was recorded: corrupted or truncated. */
  integrity_failed: 422,
  is_directory: 422,
  rate_limited: 429,
  internal: 500,
  agent_error: 502,
  timeout: 504,
  /** The environment's disk is full (or a file size limit was reached). */
  no_space: 507,
} as const satisfies Record<string, number>;
export type ErrorCode = keyof typeof ERROR_STATUS;

export function statusForCode(code: string): number {
  return (ERROR_STATUS as Record<string, number>)[code] ?? 500;
}

/**
 * WebSocket close codes used on the agent link (4000-4999 is the application range).
 * Documented in README.md; an agent decides from the code whether to reconnect.
 */
export const CLOSE = {
  normal: 1000,
  goingAway: 1001,
  messageTooBig: 1009,
  protocolError: 4000,
  unauthorized: 4001,
  replaced: 4002,
  archived: 4003,
  versionMismatch: 4004,
  /** The environment is stopped: the agent should exit until it is started again. */
  stopped: 4005,
  /** The control plane asks the agent to reconnect (restart); not an error. */
  reconnect: 4006,
  /** No heartbeat within three intervals: the link is considered half-open. */
  heartbeatTimeout: 4007,
  /** A watcher fell a whole window of unacknowledged events behind (see watch.ts); it resumes from its cursor. */
  slowConsumer: 4008,
} as const;

/** Close codes after which reconnecting with the same token is pointless. */
export const FATAL_CLOSE_CODES: ReadonlySet<number> = new Set([CLOSE.unauthorized, CLOSE.replaced, CLOSE.archived, CLOSE.versionMismatch, CLOSE.stopped]);

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
