/**
 * The routes to fuzz, read from the running Worker's own OpenAPI document (GET /v1/openapi.json):
 * method, path parameters, query parameter names, whether a token is needed, which tokens, and the
 * property names of the JSON body (so generated bodies get past the first field and hit the
 * validation of the ones behind it).
 */
export interface ApiRoute {
  method: string;
  /** Hono-style pattern, e.g. /v1/environments/:idOrName/files. */
  path: string;
  params: string[];
  query: string[];
  bodyKeys: string[];
  /** "none" (public), "user", "agent" or "host": the token the route takes. */
  auth: "none" | "user" | "agent" | "host";
  websocket: boolean;
}

type Json = Record<string, unknown>;

export async function openapiRoutes(baseUrl: string): Promise<{ routes: ApiRoute[]; title: string }> {
  const res = await fetch(`${baseUrl}/v1/openapi.json`, { signal: AbortSignal.timeout(15_000) });
  if (!res.ok) throw new Error(`GET /v1/openapi.json: ${res.status}`);
  const doc = (await res.json()) as { info: { title: string; version: string }; paths: Record<string, Record<string, Json>>; components?: { schemas?: Record<string, Json> } };
  const schemas = doc.components?.schemas ?? {};
  const routes: ApiRoute[] = [];
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      if (!["get", "post", "put", "delete", "patch"].includes(method)) continue;
      const params = (op.parameters as Array<{ name: string; in: string }> | undefined) ?? [];
      const security = op.security as Array<Record<string, unknown>> | undefined;
      const schemes = new Set((security ?? [{ bearer: [] }]).flatMap((s) => Object.keys(s)));
      // A route that takes a user token or the environment's own agent token (x-outpost-agent) is called as a user.
      const auth = security && security.length === 0 ? "none" : schemes.has("apiToken") ? "user" : schemes.has("agentToken") ? "agent" : schemes.has("hostToken") ? "host" : "user";
      const body = (op.requestBody as { content?: Record<string, { schema?: Json }> } | undefined)?.content?.["application/json"]?.schema;
      routes.push({
        method: method.toUpperCase(),
        path: path.replace(/\{([^}]+)\}/g, ":$1"),
        params: params.filter((p) => p.in === "path").map((p) => p.name),
        query: params.filter((p) => p.in === "query").map((p) => p.name),
        bodyKeys: body ? [...propertyNames(body, schemas, new Set())] : [],
        auth,
        websocket: "x-outpost-websocket-frame" in op,
      });
    }
  }
  return { routes, title: `${doc.info.title} ${doc.info.version}` };
}

function propertyNames(schema: unknown, schemas: Record<string, Json>, seen: Set<unknown>, depth = 0): Set<string> {
  const out = new Set<string>();
  if (!schema || typeof schema !== "object" || seen.has(schema) || depth > 8) return out;
  seen.add(schema);
  const s = schema as Json;
  if (typeof s.$ref === "string") {
    const target = schemas[s.$ref.replace("#/components/schemas/", "")];
    return propertyNames(target, schemas, seen, depth + 1);
  }
  for (const k of Object.keys((s.properties as Json | undefined) ?? {})) out.add(k);
  for (const v of Object.values((s.properties as Json | undefined) ?? {})) for (const k of propertyNames(v, schemas, seen, depth + 1)) out.add(k);
  for (const key of ["items", "additionalProperties"]) for (const k of propertyNames(s[key], schemas, seen, depth + 1)) out.add(k);
  for (const key of ["anyOf", "oneOf", "allOf"]) for (const sub of (s[key] as unknown[] | undefined) ?? []) for (const k of propertyNames(sub, schemas, seen, depth + 1)) out.add(k);
  return out;
}
