/**
 * POST /v1/tokens: an admin issues a user/API token for its own org, of its role or a narrower one,
 * expiring within TOKEN_LIFETIME.api. Only the token is read (requireRole, before this runs); no
 * Durable Object or D1 is touched, and nothing is stored: a token is retired by letting it expire.
 */
import { Hono } from "hono";
import { SignJWT } from "jose";
import { AUDIENCE, mayIssueRole, TOKEN_ISSUER, TOKEN_LIFETIME, UserTokenBody, type UserTokenResponse } from "@outpost/protocol";
import { requireRole, SIGNING_ALG, signingKey, type AuthVars } from "./auth.js";
import type { Env } from "./env.js";
import { HttpError } from "./problem.js";
import { parseBody, readJson } from "./validate.js";

export const userTokens = new Hono<{ Bindings: Env; Variables: AuthVars }>().post("/", requireRole("admin"), async (c) => {
  const body = parseBody(UserTokenBody, await readJson(c.req.raw));
  const issuer = c.get("user");
  if (!mayIssueRole(issuer.role, body.role)) {
    throw new HttpError(403, "forbidden", `A token may be given at most the role of the token that issues it: this one has '${issuer.role}', not '${body.role}'.`);
  }
  const sub = body.name ?? `${issuer.sub}/${body.role}`.slice(0, 256);
  const iat = Math.floor(Date.now() / 1000);
  const exp = iat + (body.ttlSeconds ?? TOKEN_LIFETIME.api.defaultSeconds);
  // `issuedBy` records who minted it; the Worker reads only org, role and sub.
  const token = await new SignJWT({ org: issuer.org, role: body.role, issuedBy: issuer.sub })
    .setProtectedHeader({ alg: SIGNING_ALG, typ: "JWT" })
    .setIssuer(TOKEN_ISSUER)
    .setAudience(AUDIENCE.api)
    .setSubject(sub)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .sign(signingKey(c.env));
  const answer: UserTokenResponse = { token, org: issuer.org, role: body.role, sub, expiresAt: new Date(exp * 1000).toISOString() };
  return c.json(answer, 201);
});
