/**
 * How long the tokens that expire may live. User/API and host tokens must carry `exp` (and `iat`):
 * the Worker refuses one without them, or whose lifetime is longer than its kind's maximum. Agent
 * tokens are the exception: they carry no `exp` and are revoked by the environment's generation.
 */
const DAY = 24 * 3600;

export const TOKEN_LIFETIME = {
  /** People, CI and SDKs (`npm run token`, scripts/lib/tokens.ts). */
  api: { defaultSeconds: 30 * DAY, maxSeconds: 90 * DAY },
  /** `outpost-agent host` (POST /v1/hosts/tokens); a host is retired by not renewing its token. */
  host: { defaultSeconds: 365 * DAY, maxSeconds: 5 * 365 * DAY },
} as const;

/** Clock difference between the signer and the Worker that is tolerated in these checks. */
export const TOKEN_CLOCK_TOLERANCE_SECONDS = 60;

/** A lifetime in words for error messages: "90 days", "2 hours". */
export function lifetimeText(seconds: number): string {
  if (seconds >= DAY) return `${Math.round((seconds / DAY) * 10) / 10} days`;
  if (seconds >= 3600) return `${Math.round((seconds / 3600) * 10) / 10} hours`;
  return `${seconds} seconds`;
}
