/** Reconnect delays: exponential growth, capped, with full jitter so a fleet of agents spreads out. */
export interface BackoffOptions {
  baseMs?: number;
  maxMs?: number;
  /** A number in [0, 1); injectable for tests. */
  random?: () => number;
}

/** 100 ms doubling to 10 s: a fleet that lost its control plane is back within seconds of its return. */
export const BACKOFF_DEFAULTS = { baseMs: 100, maxMs: 10_000 } as const;

/** Delay before reconnect attempt number `attempt` (0 for the first retry): random() × min(max, base × 2^attempt). */
export function backoffDelay(attempt: number, options: BackoffOptions = {}): number {
  const baseMs = options.baseMs ?? BACKOFF_DEFAULTS.baseMs;
  const maxMs = options.maxMs ?? BACKOFF_DEFAULTS.maxMs;
  const random = options.random ?? Math.random;
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, Math.floor(attempt)));
  return random() * ceiling;
}
