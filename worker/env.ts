import type { EnvironmentObject } from "../durable-objects/environment.js";
import type { HostRegistry } from "../durable-objects/host-registry.js";

/** Bindings declared in wrangler.toml (and secrets from .dev.vars / `wrangler secret put`). */
export interface Env {
  ENVIRONMENTS: DurableObjectNamespace<EnvironmentObject>;
  /** One HostRegistry per org: its connected provider hosts. */
  HOSTS: DurableObjectNamespace<HostRegistry>;
  DB: D1Database;
  BUNDLES: R2Bucket;
  OUTPOST_VERSION: string;
  /** HS256 signing key for user and agent tokens, at least 32 bytes. */
  OUTPOST_JWT_SECRET: string;
  /** Counts failed authentications per client IP and token subject (`[[ratelimits]]`); absent: no limit. */
  AUTH_FAILURES?: RateLimit;
  /** The period of AUTH_FAILURES in seconds (its Retry-After). */
  OUTPOST_AUTH_FAILURE_PERIOD?: string;
  /** Requests per second into one environment, and the burst allowed above it (durable-objects/flood.ts). */
  OUTPOST_ENV_RATE?: string;
  OUTPOST_ENV_BURST?: string;
  /** How long a forward stream may be quiet before a blank keepalive line goes out (ms; default 15000). */
  OUTPOST_FORWARD_KEEPALIVE_MS?: string;
}
