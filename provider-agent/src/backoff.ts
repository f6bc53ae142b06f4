/**
 * Reconnect delays: exponential growth, capped, with full jitter so a fleet of agents spreads out.
 * The cap depends on how long the outage has lasted: for its first minute a retry waits at most a
 * couple of seconds, so agents are back promptly when a briefly restarted control plane returns;
 * an outage that goes on grows to the long cap, so a fleet does not keep hammering an edge that is away.
 * The dialer asks for the prompt cap only while a retry costs the control plane nothing (its link was
 * just cut, or nobody listens); one that was reached and still failed may be overloaded, and gets the
 * long cap at once (dialer.ts).
 */
export interface BackoffOptions {
  baseMs?: number;
  /** The long cap, once the outage has lasted `promptMs`. */
  maxMs?: number;
  /** How long an outage counts as brief: its retries are capped at `promptMaxMs`. */
  promptMs?: number;
  /** The cap during a brief outage (never above `maxMs`). */
  promptMaxMs?: number;
  /** A number in [0, 1); injectable for tests. */
  random?: () => number;
}

/**
 * 100 ms doubling, at most 2 s apart for the first minute of an outage and at most 10 s after it:
 * a fleet that lost its control plane for a moment is back within about 2 s of its return.
 */
export const BACKOFF_DEFAULTS = { baseMs: 100, maxMs: 10_000, promptMs: 60_000, promptMaxMs: 2_000 } as const;

/**
 * Delay before reconnect attempt number `attempt` (0 for the first retry), `downMs` into the
 * outage: random() × min(cap, base × 2^attempt), the cap being `promptMaxMs` while `downMs` is
 * under `promptMs` and `maxMs` after.
 */
export function backoffDelay(attempt: number, downMs: number, options: BackoffOptions = {}): number {
  const baseMs = options.baseMs ?? BACKOFF_DEFAULTS.baseMs;
  const maxMs = options.maxMs ?? BACKOFF_DEFAULTS.maxMs;
  const brief = downMs < (options.promptMs ?? BACKOFF_DEFAULTS.promptMs);
  const cap = brief ? Math.min(maxMs, options.promptMaxMs ?? BACKOFF_DEFAULTS.promptMaxMs) : maxMs;
  const random = options.random ?? Math.random;
  const ceiling = Math.min(cap, baseMs * 2 ** Math.max(0, Math.floor(attempt)));
  return random() * ceiling;
}
