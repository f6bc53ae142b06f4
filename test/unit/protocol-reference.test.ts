/**
 * docs/protocol.md is rendered from the zod schemas (npm run docs:protocol); this fails when a
 * schema changed and the committed reference was not regenerated, and checks that every frame kind
 * and operation the schemas know is in it.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { HostOps, Ops } from "@outpost/protocol";
import { renderProtocolReference } from "../../scripts/lib/protocol-reference.js";
import { repoRoot } from "./host-helpers.js";

describe("docs/protocol.md", () => {
  const rendered = renderProtocolReference();

  it("is what the zod schemas render today (run npm run docs:protocol when this fails)", () => {
    expect(readFileSync(path.join(repoRoot, "docs/protocol.md"), "utf8")).toBe(rendered);
  });

  it("names every frame kind and every operation of both links", () => {
    const kinds = ["hello", "welcome", "request", "reply", "cancel", "chunk", "credit", "ack", "run.output", "run.exit", "health", "error", "host.hello", "host.welcome", "host.request", "host.reply", "host.status"];
    for (const kind of kinds) expect(rendered).toContain(`#### \`${kind}\``);
    for (const op of [...Object.keys(Ops), ...Object.keys(HostOps)]) expect(rendered).toContain(`#### \`${op}\``);
    expect(rendered).toContain("| `runs[].runId` |");
  });
});
