/**
 * Hierarchical environments: an environment granted the spawn scope creates children (from inside
 * it, through its agent), within limits; children are linked to their parent and follow it when
 * it is stopped or archived, unless they were spawned with `keep`.
 */
import * as z from "zod";
import { CreateEnvironmentBody, Environment, SpawnGrant } from "./api.js";

/**
 * The spawn scope as the agent token carries it (claim `spawn`): the grant's limits and its id.
 * The Worker lets an agent token spawn only when it carries this claim and `grant` is the
 * environment's current grant, so withdrawing or changing the grant stops the old token at once.
 */
export const SpawnClaim = SpawnGrant.extend({ grant: z.string().regex(/^sg_[A-Za-z0-9_-]{8,64}$/) });
export type SpawnClaim = z.infer<typeof SpawnClaim>;

/** PUT /v1/environments/{env}/spawn: grant (or with `null`, withdraw) the scope. */
export const SpawnScopeBody = z.object({ spawn: SpawnGrant.nullable() });

/**
 * POST /v1/environments/{env}/children: the child, like a create body, plus `keep`. Its `spawn` lets
 * the child spawn its own children, within what is left of the parent's scope.
 */
export const SpawnBody = CreateEnvironmentBody.and(
  z.object({
    /** Keep this child when the parent is stopped or archived. */
    keep: z.boolean().optional(),
  }),
);
export type SpawnBody = z.infer<typeof SpawnBody>;

/**
 * PUT /v1/environments/{env}/spawn's answer: the scope, and the agent token that carries it (same
 * generation, so the old token still connects but can no longer spawn). `delivered`: the connected
 * agent received the token over its link and uses it from now on; otherwise give it to the agent.
 */
export const SpawnScopeResponse = z.object({ spawn: SpawnGrant.nullable(), agentToken: z.string(), delivered: z.boolean() });

/** GET /v1/environments/{env}/children: an environment (these fields of Environment), and the tree below it. */
const TreeEnvironment = Environment.pick({ id: true, name: true, state: true, provider: true });
export interface EnvironmentTreeNode extends z.infer<typeof TreeEnvironment> {
  keep: boolean;
  children: EnvironmentTreeNode[];
}
export const EnvironmentTreeNode: z.ZodType<EnvironmentTreeNode> = z.lazy(() => TreeEnvironment.extend({ keep: z.boolean(), children: z.array(EnvironmentTreeNode) }));
