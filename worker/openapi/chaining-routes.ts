/** Execution chaining routes for the OpenAPI document (see routes.ts). */
import * as z from "zod";
import { ForwardBody, ForwardLine, Gateway, Routing } from "@outpost/protocol";
import type { RouteSpec } from "./spec.js";

const E = "/v1/environments/{idOrName}";
const ForwardResult = z.object({ forwardId: z.string() }).loose();

export const CHAINING_ROUTES: RouteSpec[] = [
  { id: "getGateway", method: "get", path: `${E}/gateway`, tag: "chaining", summary: "The environment's gateway (does it take forwarded work, from whom) and routing rules", auth: "viewer", responses: { 200: z.object({ gateway: Gateway, routing: Routing }) } },
  { id: "setGateway", method: "put", path: `${E}/gateway`, tag: "chaining", summary: "Open or close the gateway: accept, allowFrom (ids, names or *), capabilities offered to routing", auth: "operator", body: Gateway, responses: { 200: z.object({ gateway: Gateway }) }, errors: [409] },
  { id: "getRoutes", method: "get", path: `${E}/routes`, tag: "chaining", summary: "The environment's routing rules", auth: "viewer", responses: { 200: z.object({ routing: Routing }) } },
  { id: "setRoutes", method: "put", path: `${E}/routes`, tag: "chaining", summary: "Routing rules: per request type (exec, files, runs, custom type or type:action) local or a target (environment or { capability })", auth: "operator", body: Routing, responses: { 200: z.object({ routing: Routing }) }, errors: [409] },
  {
    id: "forward",
    method: "post",
    path: `${E}/forward`,
    tag: "chaining",
    summary: "Forward work from this environment: by its rules, to a target, along a route, or to several targets",
    description: "An operator may call it, or the environment's own agent with its agent token. With `Accept: application/x-ndjson` one ForwardLine per line: started (the forwardId), output, then per target exactly one exit, result or error (hop names the hop that failed), and done after a fan-out.",
    auth: "operator",
    agent: "the environment's own agent token",
    headers: [{ name: "Accept", required: false, description: "application/x-ndjson to stream" }],
    body: ForwardBody,
    responses: { 200: { json: ForwardResult, also: [{ contentType: "application/x-ndjson", schema: ForwardLine, description: "one JSON object per line" }] } },
    errors: [403, 409, 502, 504],
  },
  {
    id: "cancelForward",
    method: "post",
    path: `${E}/forward/{forwardId}/cancel`,
    tag: "chaining",
    summary: "Cancel a forwarded request at every hop (the leaf's process group gets SIGTERM)",
    auth: "operator",
    agent: "the environment's own agent token",
    params: { forwardId: "the forwardId of the stream's `started` line" },
    responses: { 200: z.object({ cancelled: z.literal(true), hops: z.number().int() }) },
  },
];
