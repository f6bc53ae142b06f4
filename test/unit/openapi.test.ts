/**
 * The OpenAPI document, built in Node from the same route list and zod schemas the Worker serves:
 * valid against the OpenAPI 3.1 schema, and internally consistent (every path parameter declared,
 * every $ref resolvable, every security scheme defined, one operationId per operation).
 * test/workers/openapi.test.ts checks the other half: that it lists exactly the Worker's routes.
 */
import { Validator } from "@seriousme/openapi-schema-validator";
import { describe, expect, it } from "vitest";
import { EnvironmentState } from "@outpost/protocol";
import { openApiDocument } from "../../worker/openapi/document.js";
import { ROUTES } from "../../worker/openapi/routes.js";

type Json = Record<string, any>;
const doc = openApiDocument(ROUTES, "9.9.9") as Json;
const operations = Object.entries(doc.paths as Json).flatMap(([path, item]) => Object.entries(item as Json).map(([method, op]) => ({ path, method, op: op as Json })));

function refs(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) value.forEach((v) => refs(v, out));
  else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      if (k === "$ref" && typeof v === "string") out.push(v);
      else refs(v, out);
    }
  }
  return out;
}

describe("the OpenAPI document", () => {
  it("is a valid OpenAPI 3.1 document", async () => {
    const result = await new Validator().validate(structuredClone(doc));
    expect(result.errors ?? [], JSON.stringify(result.errors, null, 1)).toEqual([]);
    expect(result.valid).toBe(true);
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.info.version).toBe("9.9.9");
  });

  it("declares each path parameter exactly once, and no parameter absent from its path", () => {
    for (const { path, method, op } of operations) {
      const inPath = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).sort();
      const declared = (op.parameters as Json[]).filter((p) => p.in === "path").map((p) => p.name).sort();
      expect(declared, `${method} ${path}`).toEqual(inPath);
      for (const p of op.parameters as Json[]) if (p.in === "path") expect(p.required).toBe(true);
    }
  });

  it("gives every operation a unique operationId", () => {
    const ids = operations.map((o) => o.op.operationId as string);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^[a-z][A-Za-z]+$/);
  });

  it("resolves every $ref to a component schema", () => {
    const refList = refs(doc);
    expect(refList.length).toBeGreaterThan(20);
    for (const ref of refList) {
      expect(ref).toMatch(/^#\/components\/schemas\//);
      expect(doc.components.schemas[ref.slice("#/components/schemas/".length)], ref).toBeDefined();
    }
  });

  it("describes every error as problem+json, and names the auth each route takes", () => {
    const schemes = Object.keys(doc.components.securitySchemes);
    expect(doc.components.securitySchemes.apiToken).toMatchObject({ type: "http", scheme: "bearer", bearerFormat: "JWT" });
    for (const { path, method, op } of operations) {
      const where = `${method} ${path}`;
      expect(op.responses.default.content["application/problem+json"].schema, where).toEqual({ $ref: "#/components/schemas/Problem" });
      for (const [status, r] of Object.entries(op.responses as Json)) {
        if (/^[45]/.test(status)) expect(Object.keys(r.content), `${where} ${status}`).toEqual(["application/problem+json"]);
      }
      for (const alt of op.security as Json[]) for (const name of Object.keys(alt)) expect(schemes, where).toContain(name);
      if ((op.security as Json[]).length > 0) {
        expect(op.responses["401"], where).toBeDefined();
        expect(op.responses["403"], where).toBeDefined();
      }
    }
    expect(doc.paths["/v1/health"].get.security).toEqual([]);
    expect(doc.paths["/v1/environments/{idOrName}"].delete["x-outpost-role"]).toBe("admin");
    expect(doc.paths["/v1/environments/{idOrName}/events/stream"].get.security).toEqual([{ apiToken: [] }, { accessToken: [] }]);
    expect(doc.paths["/v1/environments/{id}/connect"].get.security).toEqual([{ agentToken: [] }]);
    // Spawning and closing children (and forwarding) take the environment's own agent token as well as a user token.
    for (const op of [doc.paths["/v1/environments/{idOrName}/children"].post, doc.paths["/v1/environments/{idOrName}/children/{child}"].delete, doc.paths["/v1/environments/{idOrName}/forward"].post]) {
      expect(op.security).toEqual([{ apiToken: [] }, { agentToken: [] }]);
      expect(op["x-outpost-agent"]).toMatch(/agent token/);
    }
    expect(doc.paths["/v1/environments/{idOrName}/children"].post["x-outpost-agent"]).toMatch(/spawn grant/);
    expect(doc.components.schemas.Problem.required).toEqual(expect.arrayContaining(["type", "title", "status", "detail", "code"]));
  });

  it("comes from the protocol's zod schemas: bodies as sent, responses as answered", () => {
    const create = doc.paths["/v1/environments"].post;
    const body = create.requestBody.content["application/json"].schema;
    expect(body.required).toEqual(["name"]);
    expect(body.properties.lifecycle.properties.heartbeatMs).toMatchObject({ type: "integer", default: 10_000 });
    expect(create.responses["201"].content["application/json"].schema).toEqual({ $ref: "#/components/schemas/CreateEnvironmentResponse" });
    expect(doc.components.schemas.CreateEnvironmentResponse.properties.environment).toEqual({ $ref: "#/components/schemas/Environment" });
    expect(doc.components.schemas.Environment.properties.state.enum).toEqual(EnvironmentState.options);
    const exec = doc.paths["/v1/environments/{idOrName}/exec"].post;
    expect(Object.keys(exec.responses["200"].content)).toEqual(["application/json", "application/x-ndjson"]);
    const list = doc.paths["/v1/environments"].get.parameters as Json[];
    expect(list.find((p) => p.name === "limit")).toMatchObject({ in: "query", required: false, schema: { type: "integer", minimum: 1, maximum: 500, default: 100 } });
    const put = doc.paths["/v1/environments/{idOrName}/files"].put;
    expect(put.requestBody.content["application/octet-stream"]).toBeDefined();
    expect((put.parameters as Json[]).find((p) => p.name === "Content-Length")).toMatchObject({ in: "header", required: true });
  });
});
