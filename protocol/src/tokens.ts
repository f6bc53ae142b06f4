/** Claims carried by Outpost's JWTs. Signing and verification live with jose on each side. */
import * as z from "zod";
import { SpawnClaim } from "./spawn.js";

export const TOKEN_ISSUER = "outpost";
export const AUDIENCE = {
  /** People, CI and SDKs calling the HTTP API. */
  api: "outpost:api",
  /** A provider-agent serving exactly one environment. */
  agent: "outpost:agent",
  /** A provider host (`outpost-agent host`) that creates environments for one org. */
  host: "outpost:host",
} as const;

export const Role = z.enum(["admin", "operator", "viewer"]);
export type Role = z.infer<typeof Role>;
const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };
/** Whether `role` has at least the rights of `min` (admin, then operator, then viewer). */
export const roleAtLeast = (role: Role, min: Role): boolean => RANK[role] >= RANK[min];

const OrgName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/);

export const UserClaims = z.object({
  sub: z.string().min(1).max(256),
  org: OrgName,
  role: Role,
});
export type UserClaims = z.infer<typeof UserClaims>;

/** `sub` is the environment id; `gen` must equal the environment's current agent-token generation. */
export const AgentClaims = z.object({
  sub: z.string().regex(/^env_[a-z0-9]{20}$/),
  org: OrgName,
  gen: z.number().int().positive(),
  /** Present when the environment was granted the scope to spawn children (see spawn.ts). */
  spawn: SpawnClaim.optional(),
});
export type AgentClaims = z.infer<typeof AgentClaims>;

export const ENVIRONMENT_ID = /^env_[a-z0-9]{20}$/;

/** `sub` is the host's name in its org; `providers`, when present, limits what it may offer. */
export const HostClaims = z.object({
  sub: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/),
  org: OrgName,
  providers: z.array(z.string()).max(64).optional(),
});
export type HostClaims = z.infer<typeof HostClaims>;
