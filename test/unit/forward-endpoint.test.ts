import http from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, readFileSync, statSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { httpBase, startForwardEndpoint, type ForwardEndpoint } from "../../provider-agent/src/forward-endpoint.js";
import { silentLogger } from "../../provider-agent/src/log.js";

// The refusals below are answered by the endpoint itself; nothing reaches the control plane URL.
let ep: ForwardEndpoint;
const file = join(mkdtempSync(join(tmpdir(), "outpost-fwd-")), "agent.json.endpoint.json");
beforeAll(async () => {
  ep = await startForwardEndpoint({ controlUrl: "ws://127.0.0.1:9", environmentId: "env_x", token: "agent-token", log: silentLogger, endpointFile: file });
});
afterAll(async () => {
  await ep.close();
});

describe("the agent's forward endpoint", () => {
  it("listens on loopback and writes its address and secret to a 0600 file", () => {
    expect(ep.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual({ url: ep.url, secret: ep.secret });
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it("refuses requests without its secret (401) and bad bodies (400), names its routes (404)", async () => {
    const body = JSON.stringify({ exec: { command: ["true"] }, target: "b" });
    expect((await fetch(`${ep.url}/forward`, { method: "POST", body })).status).toBe(401);
    expect((await fetch(`${ep.url}/forward`, { method: "POST", body, headers: { authorization: `Bearer ${ep.secret}x` } })).status).toBe(401);
    const auth = { authorization: `Bearer ${ep.secret}` };
    const bad = await fetch(`${ep.url}/forward`, { method: "POST", body: JSON.stringify({ exec: { command: [] } }), headers: auth });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { detail: string }).detail).toMatch(/Invalid forward body/);
    expect((await fetch(`${ep.url}/forward`, { method: "POST", body: "{", headers: auth })).status).toBe(400);
    expect((await fetch(`${ep.url}/other`, { method: "POST", headers: auth })).status).toBe(404);
  });

  it("turns the agent's URL into the control plane's HTTP base", () => {
    expect(httpBase("wss://outpost.example.com/")).toBe("https://outpost.example.com");
    expect(httpBase("http://127.0.0.1:8787")).toBe("http://127.0.0.1:8787");
  });

  it("passes spawn and close on to the control plane with the agent token, the renewed one once set", async () => {
    // A recorder in the control plane's place: what the endpoint sends on is what this test checks.
    const seen: Array<{ method: string; url: string; auth: string; body: string }> = [];
    const plane = http.createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        seen.push({ method: req.method!, url: req.url!, auth: req.headers.authorization ?? "", body });
        res.writeHead(req.method === "POST" ? 201 : 200, { "content-type": "application/json" }).end(`{"ok":true}`);
      });
    });
    await new Promise<void>((r) => plane.listen(0, "127.0.0.1", r));
    const port = (plane.address() as AddressInfo).port;
    const local = await startForwardEndpoint({ controlUrl: `http://127.0.0.1:${port}`, environmentId: "env_p", token: "old-token", log: silentLogger });
    try {
      const auth = { authorization: `Bearer ${local.secret}` };
      expect((await fetch(`${local.url}/children`, { method: "POST", headers: auth, body: `{"name":"kid"}` })).status).toBe(201);
      local.setToken("renewed-token");
      expect((await fetch(`${local.url}/children/kid`, { method: "DELETE", headers: auth })).status).toBe(200);
      expect((await fetch(`${local.url}/children/kid`, { method: "DELETE" })).status).toBe(401);
      expect(seen).toEqual([
        { method: "POST", url: "/v1/environments/env_p/children", auth: "Bearer old-token", body: `{"name":"kid"}` },
        { method: "DELETE", url: "/v1/environments/env_p/children/kid", auth: "Bearer renewed-token", body: "" },
      ]);
    } finally {
      await local.close();
      plane.close();
    }
  });

  it("removes its file when closed", async () => {
    const other = await startForwardEndpoint({ controlUrl: "http://127.0.0.1:9", environmentId: "env_y", token: "t", log: silentLogger, endpointFile: `${file}.2` });
    expect(existsSync(`${file}.2`)).toBe(true);
    await other.close();
    expect(existsSync(`${file}.2`)).toBe(false);
  });
});
