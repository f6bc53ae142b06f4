/**
 * Token verification with jose. Runs in the Worker before any Durable Object is addressed;
 * the environment's Durable Object re-checks only what it alone knows (the agent-token generation).
 */
import { errors, jwtVerify, SignJWT, type JWTPayload } from "jose";
import type { MiddlewareHandler } from "hono";
import { AgentClaims, AUDIENCE, HostClaims, lifetimeText, Role, roleAtLeast, TOKEN_CLOCK_TOLERANCE_SECONDS, TOKEN_ISSUER, TOKEN_LIFETIME, UserClaims, type SpawnClaim } from "@outpost/protocol";
import type { Env } from "./env.js";
import { HttpError } from "./problem.js";

const ALG = "HS256";
/**
 * The HMAC key, imported once per secret and isolate: handed raw bytes, jose imports a CryptoKey
 * on every sign and verify, which was the largest single cost of an authenticated request.
 */
const keys = new Map<string, Promise<CryptoKey>>();

function signingKey(env: Env): Promise<CryptoKey> {
  const secret = env.OUTPOST_JWT_SECRET;
  if (!secret || secret.length < 32) {
    return Promise.reject(new HttpError(500, "misconfigured", "OUTPOST_JWT_SECRET is missing or shorter than 32 characters."));
  }
  let key = keys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
    keys.set(secret, key);
    key.catch(() => keys.delete(secret));
  }
  return key;
}

export function bearerToken(req: Request): string {
  const header = req.headers.get("authorization");
  if (!header) throw new HttpError(401, "unauthorized", "Missing Authorization header; send 'Authorization: Bearer <token>'.", {}, { "www-authenticate": "Bearer" });
  const m = /^Bearer ([A-Za-z0-9._~+/=-]+)$/.exec(header.trim());
  if (!m?.[1]) throw new HttpError(401, "unauthorized", "Malformed Authorization header; expected 'Bearer <token>'.", {}, { "www-authenticate": "Bearer" });
  return m[1];
}

const INVALID = { "www-authenticate": 'Bearer error="invalid_token"' };

async function verify(env: Env, token: string, audience: string, lifetime?: TokenLifetime): Promise<JWTPayload> {
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, await signingKey(env), { issuer: TOKEN_ISSUER, audience, algorithms: [ALG] }));
  } catch (e) {
    if (e instanceof errors.JWTExpired) throw new HttpError(401, "unauthorized", "The token has expired; get a new one.", {}, INVALID);
    if (e instanceof errors.JWTClaimValidationFailed && e.claim === "aud") {
      throw new HttpError(403, "forbidden", `This route takes ${article(kindOf(audience))}; the token presented is of another kind.`);
    }
    if (e instanceof errors.JWTClaimValidationFailed) throw new HttpError(401, "unauthorized", `The token was refused: ${e.message}.`, {}, INVALID);
    if (e instanceof HttpError) throw e;
    throw new HttpError(401, "unauthorized", "The token is malformed or its signature is invalid.", {}, INVALID);
  }
  if (lifetime) checkLifetime(payload, audience, lifetime);
  return payload;
}

type TokenLifetime = { maxSeconds: number };

const kindOf = (audience: string) => (audience === AUDIENCE.agent ? "agent token" : audience === AUDIENCE.host ? "provider host token" : "user or API token");
const article = (kind: string) => `${/^[aeiou]/.test(kind) ? "an" : "a"} ${kind}`;

/**
 * Checked after the audience (so a token of another kind is still a 403): `exp` and `iat` must be
 * there, and a token that would live longer than its kind may (counted from when it was issued, or
 * from now if that is earlier) is refused.
 */
function checkLifetime(payload: JWTPayload, audience: string, lifetime: TokenLifetime): void {
  for (const claim of ["exp", "iat"] as const) {
    if (typeof payload[claim] !== "number") {
      throw new HttpError(401, "unauthorized", `The token has no '${claim}' claim; ${kindOf(audience)}s must say when they were issued and when they expire. Get a new one.`, {}, INVALID);
    }
  }
  const now = Math.floor(Date.now() / 1000);
  const from = Math.min(payload.iat!, now);
  const seconds = payload.exp! - from;
  if (seconds > lifetime.maxSeconds + TOKEN_CLOCK_TOLERANCE_SECONDS) {
    throw new HttpError(401, "unauthorized", `The token lives ${lifetimeText(seconds)}, longer than ${kindOf(audience)}s may (${lifetimeText(lifetime.maxSeconds)}); get a new one.`, {}, INVALID);
  }
}

export async function verifyUserToken(env: Env, token: string): Promise<UserClaims> {
  const r = UserClaims.safeParse(await verify(env, token, AUDIENCE.api, TOKEN_LIFETIME.api));
  if (!r.success) throw new HttpError(401, "unauthorized", "The token lacks valid org, role or subject claims.");
  return r.data;
}

export async function verifyAgentToken(env: Env, token: string): Promise<AgentClaims> {
  const r = AgentClaims.safeParse(await verify(env, token, AUDIENCE.agent));
  if (!r.success) throw new HttpError(401, "unauthorized", "The agent token lacks valid environment, org or generation claims.");
  return r.data;
}

export async function verifyHostToken(env: Env, token: string): Promise<HostClaims> {
  const r = HostClaims.safeParse(await verify(env, token, AUDIENCE.host, TOKEN_LIFETIME.host));
  if (!r.success) throw new HttpError(401, "unauthorized", "The host token lacks valid host name or org claims.");
  return r.data;
}

/** Host tokens last a year by default (five at most); a host is retired by not renewing its token. */
export async function signHostToken(env: Env, claims: HostClaims, ttlSeconds: number = TOKEN_LIFETIME.host.defaultSeconds): Promise<string> {
  if (ttlSeconds > TOKEN_LIFETIME.host.maxSeconds) throw new HttpError(400, "bad_request", `A host token may live at most ${lifetimeText(TOKEN_LIFETIME.host.maxSeconds)}.`);
  return new SignJWT({ org: claims.org, ...(claims.providers ? { providers: claims.providers } : {}) })
    .setProtectedHeader({ alg: ALG, typ: "JWT" })
    .setIssuer(TOKEN_ISSUER)
    .setAudience(AUDIENCE.host)
    .setSubject(claims.sub)
    .setIssuedAt()
    .setExpirationTime(`${ttlSeconds}s`)
    .sign(await signingKey(env));
}

/**
 * User/API tokens issued through the API (POST /v1/tokens, see user-tokens.ts), expiring `ttlSeconds`
 * from now; `issuedBy` records who minted it (the Worker reads only org, role and sub).
 */
export async function signUserToken(env: Env, claims: UserClaims & { issuedBy: string }, ttlSeconds: number): Promise<{ token: string; expiresAt: Date }> {
  const iat = Math.floor(Date.now() / 1000);
  const exp = iat + ttlSeconds;
  const token = await new SignJWT({ org: claims.org, role: claims.role, issuedBy: claims.issuedBy })
    .setProtectedHeader({ alg: ALG, typ: "JWT" })
    .setIssuer(TOKEN_ISSUER)
    .setAudience(AUDIENCE.api)
    .setSubject(claims.sub)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .sign(await signingKey(env));
  return { token, expiresAt: new Date(exp * 1000) };
}

/**
 * The one way an environment's agent token is made. Agent tokens do not expire: they are revoked
 * by bumping the environment's generation. A token of an environment granted the spawn scope
 * carries it (claim `spawn`, see protocol/src/spawn.ts); `null` leaves the claim out.
 */
export async function agentTokenFor(env: Env, environment: { id: string; org: string }, gen: number, spawn: SpawnClaim | null): Promise<string> {
  return new SignJWT({ org: environment.org, gen, ...(spawn ? { spawn } : {}) })
    .setProtectedHeader({ alg: ALG, typ: "JWT" })
    .setIssuer(TOKEN_ISSUER)
    .setAudience(AUDIENCE.agent)
    .setSubject(environment.id)
    .setIssuedAt()
    .sign(await signingKey(env));
}

export type AuthVars = { user: UserClaims };

/**
 * Requires a user/API token whose role is at least `min`. Browsers cannot set headers on a
 * WebSocket, so routes that upgrade may also take the token as `?access_token=` (allowQuery).
 */
export function requireRole(min: Role, opts: { allowQuery?: boolean } = {}): MiddlewareHandler<{ Bindings: Env; Variables: AuthVars }> {
  return async (c, next) => {
    const fromQuery = opts.allowQuery && !c.req.header("authorization") ? c.req.query("access_token") : undefined;
    const user = await verifyUserToken(c.env, fromQuery ?? bearerToken(c.req.raw));
    if (!roleAtLeast(user.role, min)) {
      throw new HttpError(403, "forbidden", `This action needs the '${min}' role; the token has '${user.role}'.`);
    }
    c.set("user", user);
    await next();
  };
}
