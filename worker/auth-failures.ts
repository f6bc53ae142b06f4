/**
 * Repeated authentication failures are answered with 429 and Retry-After. Counting uses Cloudflare's
 * rate limiting binding (`[[ratelimits]]` AUTH_FAILURES in wrangler.toml: a limit per period, kept
 * at the edge, no storage), keyed by the client's IP and by the token's subject when it has one, and
 * only failures are counted: a request that authenticates costs nothing here.
 */
import { decodeJwt } from "jose";
import type { MiddlewareHandler } from "hono";
import type { Env } from "./env.js";
import { problemResponse } from "./problem.js";

export const limitAuthFailures: MiddlewareHandler<{ Bindings: Env }> = async (c, next) => {
  await next();
  const limiter = c.env.AUTH_FAILURES;
  if (!limiter || (c.res.status !== 401 && c.res.status !== 403)) return;
  const keys = [`ip:${c.req.header("cf-connecting-ip") ?? "unknown"}`];
  const subject = unverifiedSubject(c.req.header("authorization") ?? c.req.query("access_token"));
  if (subject) keys.push(`sub:${subject}`);
  const outcomes = await Promise.all(keys.map((key) => limiter.limit({ key })));
  if (outcomes.every((o) => o.success)) return;
  const retryAfter = Math.max(1, Number(c.env.OUTPOST_AUTH_FAILURE_PERIOD ?? 60) || 60);
  c.res = problemResponse(
    429,
    "rate_limited",
    `Too many failed authentications from this client or for this token subject; retry after ${retryAfter} s.`,
    { retryAfterSeconds: retryAfter },
    { "retry-after": String(retryAfter) },
    new URL(c.req.url).pathname,
  );
};

/** The `sub` of a bearer token, read without verifying it (only to count failures by subject). */
function unverifiedSubject(credential: string | undefined): string | null {
  if (!credential) return null;
  try {
    const sub = decodeJwt(credential.replace(/^Bearer\s+/i, "")).sub;
    return typeof sub === "string" && sub.length <= 256 ? sub : null;
  } catch {
    return null;
  }
}
