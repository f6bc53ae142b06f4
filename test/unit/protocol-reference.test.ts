/**
 * docs/protocol.md is rendered from the zod schemas (npm run docs:protocol); this fails when a
 * schema changed and the committed reference was not regenerated, and checks that every frame kind
 * and operation the schemas know is in it.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { CLOSE, HostOps, Ops, slowConsumerReason, WATCH_WINDOW } from "@outpost/protocol";
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

  it("describes the event stream's acks and flow control: the window, the slow-consumer close with its cursor, the resume", () => {
    const stream = rendered.slice(rendered.indexOf("## Event stream"), rendered.indexOf("## Provider manifest"));
    for (const text of ["#### `event`", "#### `ack`", "| `window` |", `${WATCH_WINDOW.events} events`, "1 MiB", `${CLOSE.slowConsumer} (\`slowConsumer\`)`, slowConsumerReason(0).replace(/\d+$/, "N"), "`?after=N`"]) expect(stream).toContain(text);
  });
});
