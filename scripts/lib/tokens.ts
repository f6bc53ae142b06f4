/** Signs user/API tokens for local use with the development key, exactly as the Worker verifies them. */
import { SignJWT } from "jose";
import { AUDIENCE, lifetimeText, TOKEN_ISSUER, TOKEN_LIFETIME, type Role } from "@outpost/protocol";

export interface UserTokenOptions {
  secret: string;
  org: string;
  role: Role;
  subject?: string;
  /** Lifetime in seconds: 30 days by default, 90 at most (TOKEN_LIFETIME.api). */
  ttl?: number;
}

export async function signUserToken(o: UserTokenOptions): Promise<string> {
  const ttl = o.ttl ?? TOKEN_LIFETIME.api.defaultSeconds;
  if (!Number.isInteger(ttl) || ttl <= 0 || ttl > TOKEN_LIFETIME.api.maxSeconds) {
    throw new RangeError(`a user/API token's lifetime must be 1 to ${TOKEN_LIFETIME.api.maxSeconds} seconds (${lifetimeText(TOKEN_LIFETIME.api.maxSeconds)}), not ${ttl}`);
  }
  return new SignJWT({ org: o.org, role: o.role })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuer(TOKEN_ISSUER)
    .setAudience(AUDIENCE.api)
    .setSubject(o.subject ?? `local:${o.role}`)
    .setIssuedAt()
    .setExpirationTime(`${ttl}s`)
    .sign(new TextEncoder().encode(o.secret));
}
