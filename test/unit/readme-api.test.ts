/**
 * README's API table names every operation of the OpenAPI document (the route list the Worker
 * serves): `METHOD /path` in a row's first cell, or `METHOD …/tail` after the environment's path
 * in a row that starts with it (`GET /v1/environments/{env}/gateway` · `PUT …/gateway`), or the
 * files row's `/move` · `/copy`. A route added without a README row fails here.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../../scripts/lib/dev-vars.js";
import { openApiDocument } from "../../worker/openapi/document.js";
import { ROUTES } from "../../worker/openapi/routes.js";

type Json = Record<string, any>;
const cells = readFileSync(join(ROOT, "README.md"), "utf8")
  .split("\n")
  .filter((l) => l.startsWith("| `"))
  .map((l) => l.split("|")[1]!);
const doc = openApiDocument(ROUTES, "0.0.0") as Json;

function documented(method: string, path: string): boolean {
  const p = path.replace("{idOrName}", "{env}");
  const tail = p.replace(/^\/v1\/environments\/\{env\}/, "");
  return cells.some(
    (c) =>
      [`\`${method} ${p}\``, `\`${method} ${p}?`, `\`${method} ${p}[`].some((s) => c.includes(s)) ||
      (tail !== p && c.includes(`\`${method} …${tail}\``)) ||
      (c.includes(`\`${method} /v1/environments/{env}/files/`) && tail.startsWith("/files/") && c.includes(`\`${tail.slice("/files".length)}\``)),
  );
}

describe("README's API table", () => {
  it("has a row for every operation of the OpenAPI document", () => {
    const missing: string[] = [];
    for (const [path, item] of Object.entries(doc.paths as Json)) for (const method of Object.keys(item as Json)) if (!documented(method.toUpperCase(), path)) missing.push(`${method.toUpperCase()} ${path}`);
    expect(missing, "add a row to README.md's API table").toEqual([]);
    expect(cells.length).toBeGreaterThan(40);
  });
});
