/** Hierarchical environments (spawn scope, children, tree) for the OpenAPI document (see routes.ts). */
import * as z from "zod";
import { CreateEnvironmentResponse, Environment, EnvironmentTreeNode, SpawnBody, SpawnGrant, SpawnScopeBody, SpawnScopeResponse } from "@outpost/protocol";
import type { RouteSpec } from "./spec.js";

const E = "/v1/environments/{idOrName}";
const Scope = z.object({ spawn: SpawnGrant.nullable() });

export const CHILDREN_ROUTES: RouteSpec[] = [
  { id: "getSpawnScope", method: "get", path: `${E}/spawn`, tag: "hierarchy", summary: "The environment's spawn scope (null: it may not spawn children)", auth: "viewer", responses: { 200: Scope } },
  { id: "setSpawnScope", method: "put", path: `${E}/spawn`, tag: "hierarchy", summary: "Grant the scope to spawn children (maxChildren, maxDepth, providers, capabilities), or withdraw it with null; answers the agent token that carries it (sent to the connected agent: delivered)", auth: "admin", body: SpawnScopeBody, responses: { 200: SpawnScopeResponse }, errors: [409] },
  { id: "getChildren", method: "get", path: `${E}/children`, tag: "hierarchy", summary: "The environment and every environment below it, as a tree", auth: "viewer", responses: { 200: z.object({ tree: EnvironmentTreeNode }) } },
  {
    id: "spawnChild",
    method: "post",
    path: `${E}/children`,
    tag: "hierarchy",
    summary: "Spawn a child (an operator, or the environment's own agent token, which must carry the current spawn scope): 403 outside the scope, 409 at a limit",
    auth: "operator",
    agent: "the environment's own agent token carrying its current spawn grant (claim spawn)",
    body: SpawnBody,
    responses: { 201: CreateEnvironmentResponse },
    errors: [403, 409],
  },
  { id: "closeChild", method: "delete", path: `${E}/children/{child}`, tag: "hierarchy", summary: "Close (archive) a child and everything below it: an admin, or the environment's own agent token carrying the current spawn grant (403 otherwise)", auth: "admin", agent: "the environment's own agent token carrying its current spawn grant (claim spawn)", params: { child: "the child's id or name" }, responses: { 200: z.object({ environment: Environment }) } },
];
