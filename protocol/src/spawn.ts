/**
 * Hierarchical environments: an environment granted the spawn scope creates children (from inside
 * it, through its agent), within limits; children are linked to their parent and follow it when
 * it is stopped or archived, unless they were spawned with `keep`.
 */
import { z } from "zod";
import { CreateEnvironmentBody, PROVIDER_NAME } from "./api.js";

const Capability = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/);

/** The spawn scope: how many children, how deep below this environment, which providers and capabilities. */
export const SpawnGrant = z.object({
  maxChildren: z.number().int().min(1).max(1000).default(4),
  /** 1: children only; 2: children may be granted the scope to spawn their own; … */
  maxDepth: z.number().int().min(1).max(16).default(1),
  /** Providers a child may use; absent: any. */
  providers: z.array(z.string().regex(PROVIDER_NAME)).max(32).optional(),
  /** Capabilities a child may require; absent: any. */
  capabilities: z.array(Capability).max(32).optional(),
});
export type SpawnGrant = z.infer<typeof SpawnGrant>;

/** PUT /v1/environments/{env}/spawn: grant (or with `null`, withdraw) the scope. */
export const SpawnScopeBody = z.object({ spawn: SpawnGrant.nullable() });

/** POST /v1/environments/{env}/children: the child, like a create body, plus the hierarchy's own fields. */
export const SpawnBody = CreateEnvironmentBody.and(
  z.object({
    /** Keep this child when the parent is stopped or archived. */
    keep: z.boolean().optional(),
    /** Let the child spawn its own children, within what is left of the parent's scope. */
    spawn: SpawnGrant.optional(),
  }),
);
export type SpawnBody = z.infer<typeof SpawnBody>;

export interface EnvironmentTreeNode {
  id: string;
  name: string;
  state: string;
  provider: string;
  keep: boolean;
  children: EnvironmentTreeNode[];
}
export const EnvironmentTreeNode: z.ZodType<EnvironmentTreeNode> = z.lazy(() =>
  z.object({ id: z.string(), name: z.string(), state: z.string(), provider: z.string(), keep: z.boolean(), children: z.array(EnvironmentTreeNode) }),
);
