/**
 * What the OpenAPI document knows about one route: declared beside the others in routes.ts, with
 * the same zod schemas the handler validates with. document.ts turns the list into OpenAPI 3.1.
 */
import type { z } from "zod";
import type { Role } from "@outpost/protocol";

export type Method = "get" | "post" | "put" | "delete" | "patch";

/** Who may call: a user role (bearer API token), the environment's agent token, a host token, or anyone. */
export type Auth = Role | "agent" | "host" | "none";

/** A body of another media type than JSON; `schema` is JSON Schema (bytes: `{ type: "string", contentMediaType }`). */
export interface RawContent {
  contentType: string;
  schema: Record<string, unknown>;
  description?: string;
}

export interface Content {
  /** The JSON body (application/json). */
  json?: z.ZodType;
  /** Other media types offered for the same status, e.g. application/x-ndjson lines. */
  also?: Array<{ contentType: string; schema: z.ZodType; description: string }>;
  raw?: RawContent;
  description?: string;
}

export interface RouteSpec {
  /** operationId: camelCase, unique; the typed client and the CLI use the same words. */
  id: string;
  method: Method;
  /** OpenAPI template with the Hono route's parameter names: /v1/environments/{idOrName}/exec */
  path: string;
  tag: string;
  summary: string;
  description?: string;
  auth: Auth;
  /**
   * A user route the environment's own agent may call too, with its agent token (forwarder() in
   * worker/routes/chaining.ts): what that token must be or carry. The document offers both schemes.
   */
  agent?: string;
  /** Descriptions of path parameters whose name alone is ambiguous (the defaults are in document.ts). */
  params?: Record<string, string>;
  query?: z.ZodObject;
  headers?: Array<{ name: string; required: boolean; description: string; schema?: Record<string, unknown> }>;
  body?: z.ZodType | RawContent;
  /** Successful responses by status. A WebSocket route answers 101 and lists its frames in `websocket`. */
  responses: Record<number, z.ZodType | Content>;
  /** Error statuses beyond those every route of its kind can answer (see document.ts). */
  errors?: number[];
  websocket?: { frames: z.ZodType; description: string };
}
