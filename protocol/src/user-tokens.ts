/**
 * Issuing user/API tokens through the API (`POST /v1/tokens`): an admin mints a token for its own
 * org with a role no higher than its own and a lifetime within TOKEN_LIFETIME.api, for a person, a
 * CI job or a script that should have less than the admin has.
 */
import * as z from "zod";
import { lifetimeText, TOKEN_LIFETIME } from "./token-lifetimes.js";
import { Role, roleAtLeast } from "./tokens.js";

/** Who the token names (its `sub`): a person, a CI job, a script. */
export const TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9._:@+/-]{0,127}$/;
/** The shortest lifetime that may be asked for. */
export const MIN_TOKEN_TTL_SECONDS = 60;

/** Strict: the org is always the issuer's, so a body that names one (or anything else unknown) is a 400. */
export const UserTokenBody = z
  .object({
    role: Role,
    name: z.string().regex(TOKEN_NAME, "name must be 1 to 128 letters, digits or . _ : @ + / - (starting with a letter or digit)").optional(),
    ttlSeconds: z
      .number()
      .int()
      .min(MIN_TOKEN_TTL_SECONDS, `ttlSeconds must be at least ${MIN_TOKEN_TTL_SECONDS}`)
      .max(TOKEN_LIFETIME.api.maxSeconds, `ttlSeconds may be at most ${TOKEN_LIFETIME.api.maxSeconds} (${lifetimeText(TOKEN_LIFETIME.api.maxSeconds)})`)
      .optional()
      .describe(`seconds; default ${TOKEN_LIFETIME.api.defaultSeconds} (${lifetimeText(TOKEN_LIFETIME.api.defaultSeconds)})`),
  })
  .strict();
export type UserTokenInput = z.input<typeof UserTokenBody>;

export const UserTokenResponse = z.object({
  token: z.string(),
  org: z.string(),
  role: Role,
  /** The token's subject: `name`, or the issuer's subject and the role. */
  sub: z.string(),
  expiresAt: z.string().describe("ISO 8601"),
});
export type UserTokenResponse = z.infer<typeof UserTokenResponse>;

/** Whether a token of role `issuer` may issue one of role `role`: never a higher one. */
export const mayIssueRole = (issuer: Role, role: Role): boolean => roleAtLeast(issuer, role);
