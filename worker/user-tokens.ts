/**
 * POST /v1/tokens: an admin issues a user/API token for its own org, of its role or a narrower one,
 * expiring within TOKEN_LIFETIME.api. Only the token is read (requireRole, before this runs); no
 * Durable Object or D1 is touched, and nothing is stored: a token is retired by letting it expire.
 */
import { Hono } from "hono";
import { mayIssueRole, TOKEN_LIFETIME, UserTokenBody, type UserTokenResponse } from "@outpost/protocol";
import { requireRole, signUserToken, type AuthVars } from "./auth.js";
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
  const { token, expiresAt } = await signUserToken(c.env, { org: issuer.org, role: body.role, sub, issuedBy: issuer.sub }, body.ttlSeconds ?? TOKEN_LIFETIME.api.defaultSeconds);
  const answer: UserTokenResponse = { token, org: issuer.org, role: body.role, sub, expiresAt: expiresAt.toISOString() };
  return c.json(answer, 201);
});
