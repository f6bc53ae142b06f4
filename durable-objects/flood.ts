/**
 * Request floods into one environment: a token bucket in the object's memory (no storage, nothing
 * per request but two numbers), refilled at `rate` per second up to `burst`. Over the limit, an RPC
 * is refused with rate_limited and the seconds until a token is back (the Worker sends Retry-After).
 * The bucket starts full on every wake; an evicted object forgets its debt, which is fine for a
 * guard against floods. Limits come from the vars OUTPOST_ENV_RATE and OUTPOST_ENV_BURST.
 */
import { fail } from "./outcome.js";

export const FLOOD_DEFAULTS = { rate: 100, burst: 500 };

export class TokenBucket {
  private tokens: number;
  private last: number | null = null;

  constructor(
    readonly rate: number,
    readonly burst: number,
  ) {
    this.tokens = burst;
  }

  /** Takes one token; 0 when granted, else the milliseconds until one is available. */
  take(now: number): number {
    if (this.last !== null) this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) / this.rate) * 1000);
  }
}

export function floodBucket(vars: { OUTPOST_ENV_RATE?: string; OUTPOST_ENV_BURST?: string }): TokenBucket {
  const num = (v: string | undefined, d: number) => (v !== undefined && Number(v) > 0 ? Number(v) : d);
  return new TokenBucket(num(vars.OUTPOST_ENV_RATE, FLOOD_DEFAULTS.rate), num(vars.OUTPOST_ENV_BURST, FLOOD_DEFAULTS.burst));
}

/** The refusal for a request over the limit, or null when it may go on. */
export function floodRefusal(bucket: TokenBucket, now: number): ReturnType<typeof fail> | null {
  const waitMs = bucket.take(now);
  if (waitMs === 0) return null;
  const retryAfterSeconds = Math.max(1, Math.ceil(waitMs / 1000));
  return fail("rate_limited", `Too many requests to this environment (more than ${bucket.rate}/s, bursts of ${bucket.burst}); retry after ${retryAfterSeconds} s.`, { retryAfterSeconds });
}
