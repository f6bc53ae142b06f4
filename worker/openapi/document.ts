/**
 * Builds the OpenAPI 3.1 document from the route list with zod 4's own JSON Schema generator:
 * responses become named components (shared schemas such as Environment by their names), request
 * bodies and query strings are described as clients send them (zod's input side: defaults optional).
 */
import * as z from "zod";
import { Environment, EnvironmentEvent, EnvironmentSummary, ExecStreamLine, Host, Problem, Run } from "@outpost/protocol";
import type { Content, RawContent, RouteSpec } from "./spec.js";

type Json = Record<string, unknown>;

/** Schemas referenced by name wherever they appear. */
const NAMED: Record<string, z.ZodType> = { Environment, EnvironmentSummary, EnvironmentEvent, Run, Host, ExecStreamLine };
const PROBLEM = Problem.loose(); // RFC 9457 allows extension members

const PARAMS: Record<string, string> = { idOrName: "an environment's id (env_…) or its name" };
const TITLES: Record<number, string> = {
  400: "Invalid request: `errors` names each offending field",
  401: "Missing, malformed, badly signed or expired token",
  403: "The token's role or kind does not allow this",
  404: "No such environment, run or route in this org",
  409: "Not allowed in the current state (or no agent connected, or a conflict)",
  411: "Content-Length is required",
  413: "Too large",
  415: "The body must be JSON (Content-Type: application/json)",
  422: "The agent could not do it (e.g. a directory where a file was expected, a command that cannot start)",
  426: "Connect with a WebSocket",
  429: "Too many requests",
  502: "The agent failed",
  504: "Timed out",
};

const isZod = (v: unknown): v is z.ZodType => v instanceof z.ZodType;
const capital = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** Components, each named once: the first name given to a schema object wins. */
class Components {
  private readonly names = new Map<z.ZodType, string>();
  private readonly registry = z.registry<{ id: string }>();

  constructor(named: Record<string, z.ZodType>) {
    for (const [name, schema] of Object.entries(named)) this.name(schema, name);
  }

  name(schema: z.ZodType, fallback: string): Json {
    let id = this.names.get(schema);
    if (!id) {
      id = fallback;
      this.names.set(schema, id);
      this.registry.add(schema, { id });
    }
    return { $ref: `#/components/schemas/${id}` };
  }

  schemas(): Record<string, Json> {
    const { schemas } = z.toJSONSchema(this.registry, { uri: (id) => `#/components/schemas/${id}`, io: "output", unrepresentable: "any" });
    // zod puts a schema that several registered ones use, but which has no id of its own, under
    // `__shared` as `$defs` and points at it as `…/__shared#/$defs/NAME`, a ref OpenAPI cannot
    // resolve: each such schema becomes a component of its own, `Shared_NAME`, and the refs follow.
    const { __shared: shared, ...named } = schemas as Record<string, Json>;
    const all: Record<string, Json> = { ...named };
    for (const [name, def] of Object.entries((shared?.$defs ?? {}) as Record<string, Json>)) all[`Shared_${name}`] = def;
    const text = JSON.stringify(all).replaceAll("#/components/schemas/__shared#/$defs/", "#/components/schemas/Shared_");
    return Object.fromEntries(Object.entries(JSON.parse(text) as Record<string, Json>).map(([id, s]) => [id, strip(s)]));
  }
}

function strip(s: Json): Json {
  const { $schema: _s, $id: _i, ...rest } = s;
  return rest;
}

/** A request-side schema, inline (what a client may send: fields with defaults are optional). */
function input(schema: z.ZodType): Json {
  return strip(z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as Json);
}

function problem(description: string): Json {
  return { description, content: { "application/problem+json": { schema: { $ref: "#/components/schemas/Problem" } } } };
}

/** Every error a route of this kind can answer, beside its own. */
function errorStatuses(r: RouteSpec): number[] {
  const s = new Set<number>(r.errors ?? []);
  if (r.auth !== "none") [401, 403].forEach((x) => s.add(x));
  if (r.query || r.body) s.add(400);
  if (r.body && isZod(r.body)) s.add(415);
  if (r.path.includes("{idOrName}") || r.path.includes("{runId}") || r.path.includes("{id}")) s.add(404);
  return [...s].sort((a, b) => a - b);
}

function parameters(r: RouteSpec): Json[] {
  const out: Json[] = [];
  for (const [, name] of r.path.matchAll(/\{([^}]+)\}/g)) {
    out.push({ name, in: "path", required: true, description: r.params?.[name!] ?? PARAMS[name!] ?? name, schema: { type: "string" } });
  }
  if (r.query) {
    const q = input(r.query) as { properties?: Record<string, Json>; required?: string[] };
    for (const [name, schema] of Object.entries(q.properties ?? {})) {
      const { description, ...rest } = schema;
      out.push({ name, in: "query", required: q.required?.includes(name) ?? false, ...(description ? { description } : {}), schema: rest });
    }
  }
  for (const h of r.headers ?? []) out.push({ name: h.name, in: "header", required: h.required, description: h.description, schema: h.schema ?? { type: "string" } });
  return out;
}

function content(c: Content | z.ZodType, components: Components, fallback: string): Json {
  const spec: Content = isZod(c) ? { json: c } : c;
  const media: Json = {};
  if (spec.json) media["application/json"] = { schema: components.name(spec.json, fallback) };
  for (const a of spec.also ?? []) media[a.contentType] = { schema: components.name(a.schema, `${fallback}Line`) };
  if (spec.raw) media[spec.raw.contentType] = { schema: spec.raw.schema };
  const notes = (spec.also ?? []).map((a) => `${a.contentType}: ${a.description}`);
  return { description: [spec.description ?? spec.raw?.description ?? "OK", ...notes].join("; "), content: media };
}

function security(r: RouteSpec): Json {
  switch (r.auth) {
    case "none":
      return { security: [] };
    case "agent":
      return { security: [{ agentToken: [] }] };
    case "host":
      return { security: [{ hostToken: [] }] };
    default: {
      const alternatives: Json[] = [{ apiToken: [] }];
      if (r.query?.shape && "access_token" in r.query.shape) alternatives.push({ accessToken: [] });
      if (r.agent) alternatives.push({ agentToken: [] });
      return { security: alternatives, "x-outpost-role": r.auth, ...(r.agent ? { "x-outpost-agent": r.agent } : {}) };
    }
  }
}

function operation(r: RouteSpec, components: Components): Json {
  const responses: Json = {};
  for (const [status, c] of Object.entries(r.responses)) responses[status] = content(c, components, `${capital(r.id)}Response`);
  if (r.websocket) {
    responses["101"] = {
      description: `Switching Protocols. ${r.websocket.description}`,
      "x-outpost-websocket-frame": { schema: components.name(r.websocket.frames, `${capital(r.id)}Frame`) },
    };
  }
  for (const status of errorStatuses(r)) responses[String(status)] = problem(TITLES[status] ?? "Error");
  responses.default = problem("Any other error, as problem+json");
  const body = r.body;
  const requestBody =
    body === undefined
      ? {}
      : {
          requestBody: {
            required: true,
            content: isZod(body) ? { "application/json": { schema: input(body) } } : { [(body as RawContent).contentType]: { schema: (body as RawContent).schema } },
          },
        };
  return {
    operationId: r.id,
    tags: [r.tag],
    summary: r.summary,
    ...(r.description ? { description: r.description } : {}),
    ...security(r),
    parameters: parameters(r),
    ...requestBody,
    responses,
  };
}

export function openApiDocument(routes: RouteSpec[], version: string): Json {
  const components = new Components({ ...NAMED, Problem: PROBLEM });
  const paths: Record<string, Json> = {};
  for (const r of routes) (paths[r.path] ??= {})[r.method] = operation(r, components);
  return {
    openapi: "3.1.0",
    info: {
      title: "Outpost",
      version,
      description: "The control plane for remote agent environments. Every error is application/problem+json (RFC 9457).",
    },
    tags: [...new Set(routes.map((r) => r.tag))].map((name) => ({ name })),
    paths,
    components: {
      schemas: components.schemas(),
      securitySchemes: {
        apiToken: { type: "http", scheme: "bearer", bearerFormat: "JWT", description: "A user or API token (audience outpost:api) with org and role (viewer ⊂ operator ⊂ admin); `npm run -s token` signs one locally." },
        accessToken: { type: "apiKey", in: "query", name: "access_token", description: "The same API token as a query parameter, for browser WebSockets only." },
        agentToken: { type: "http", scheme: "bearer", bearerFormat: "JWT", description: "An environment's agent token (audience outpost:agent), for its own environment only (its id in the path). Spawning and closing children takes one whose `spawn` claim carries the environment's current spawn grant (x-outpost-agent says what each route needs)." },
        hostToken: { type: "http", scheme: "bearer", bearerFormat: "JWT", description: "A provider host token (audience outpost:host)." },
      },
    },
  };
}
