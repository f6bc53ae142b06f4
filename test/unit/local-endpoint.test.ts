import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { findLocalEndpoint, refusalDetail } from "../../provider-agent/src/local-endpoint.js";

describe("the local endpoint, as exec and spawn find it", () => {
  it("comes from the agent's variables, or from the endpoint file when one is given", () => {
    const env = { OUTPOST_FORWARD_URL: "http://127.0.0.1:1", OUTPOST_FORWARD_SECRET: "s1" };
    expect(findLocalEndpoint(env, undefined)).toEqual({ url: "http://127.0.0.1:1", secret: "s1" });
    const file = join(mkdtempSync(join(tmpdir(), "outpost-endpoint-")), "agent.json.endpoint.json");
    writeFileSync(file, JSON.stringify({ url: "http://127.0.0.1:2", secret: "s2" }));
    expect(findLocalEndpoint(env, file)).toEqual({ url: "http://127.0.0.1:2", secret: "s2" });
  });

  it("is a usage error when missing, half given or unreadable", () => {
    expect(findLocalEndpoint({}, undefined)).toEqual({ error: expect.stringContaining("--endpoint-file") });
    expect(findLocalEndpoint({ OUTPOST_FORWARD_URL: "http://127.0.0.1:1" }, undefined)).toHaveProperty("error");
    expect(findLocalEndpoint({}, "/nonexistent/endpoint.json")).toEqual({ error: expect.stringContaining("cannot read /nonexistent/endpoint.json") });
  });

  it("names a refusal by its problem detail, else its text, else its status", () => {
    expect(refusalDetail(403, JSON.stringify({ title: "Forbidden", detail: "no spawn scope" }))).toBe("no spawn scope");
    expect(refusalDetail(502, "bad gateway\n")).toBe("bad gateway");
    expect(refusalDetail(500, "")).toBe("the endpoint answered 500");
  });
});
