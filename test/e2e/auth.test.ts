/**
 * Agent tokens end to end: a token serves exactly one environment, rotation revokes the old token
 * and cuts off the agent using it, and the agent tells apart "retry" from "refused" (exit code 3).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { AGENT_EXIT } from "../../scripts/lib/agent-process.js";
import { connectAgent } from "./environments.js";
import { exitWithin, expectProblem, startHarness, withClaims, type Harness } from "./helpers.js";

let h: Harness;
let a = { id: "", token: "" };
let b = { id: "", token: "" };

beforeAll(async () => {
  h = await startHarness();
  const ca = await h.admin.createEnvironment({ name: "env-a", provider: "local" });
  const cb = await h.admin.createEnvironment({ name: "env-b", provider: "local" });
  a = { id: ca.environment.id, token: ca.agentToken };
  b = { id: cb.environment.id, token: cb.agentToken };
});
afterAll(async () => {
  await h?.close();
});

/** The HTTP status and body with which the control plane answers a WebSocket upgrade. */
function upgrade(path: string, token: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${h.cp.url.replace(/^http/, "ws")}${path}`, { headers: { authorization: `Bearer ${token}` }, handshakeTimeout: 10_000 });
    ws.on("unexpected-response", (_req, res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => {
        resolve({ status: res.statusCode ?? 0, body });
        ws.terminate();
      });
    });
    ws.on("open", () => {
      ws.terminate();
      resolve({ status: 101, body: "" });
    });
    ws.on("error", (err) => reject(err));
  });
}

describe("an agent token belongs to one environment", () => {
  it("A's token on B's connect endpoint is refused by the Worker (403) before B's object is involved", async () => {
    const r = await upgrade(`/v1/environments/${b.id}/connect`, a.token);
    expect(r.status).toBe(403);
    expect(r.body).toContain("another environment");
  });

  it("an agent given A's token relabelled for B (same signature) is refused and exits 3 with a clear message", async () => {
    const { workspace } = await h.workspace();
    const agent = h.agent({ token: withClaims(a.token, (c) => ({ ...c, sub: b.id })), workspace });
    const exit = await exitWithin(agent);
    expect(exit.code, agent.output()).toBe(AGENT_EXIT.rejected);
    expect(agent.output()).toMatch(/refused the connection: HTTP 401/);
    expect((await h.admin.getEnvironment(b.id)).connected).toBe(false);
  });

  it("a user token is not an agent token (403), and an agent token is not a user token (403)", async () => {
    expect((await upgrade(`/v1/environments/${a.id}/connect`, h.admin.token)).status).toBe(403);
    const asUser = await fetch(`${h.cp.url}/v1/environments`, { headers: { authorization: `Bearer ${a.token}` } });
    await expectProblem(asUser, 403, "forbidden");
  });
});

describe("rotating an agent token", () => {
  it("A's agent (token given with --token) connects; B is unaffected", async () => {
    const { workspace } = await h.workspace();
    const { agent } = await connectAgent(h, a.id, a.token, workspace, { agent: { tokenVia: "flag" } });
    expect((await h.admin.getEnvironment(b.id)).state).toBe("created");
    expect((await h.admin.exec(a.id, { command: ["echo", "a"] })).stdout).toBe("a\n");

    // Only admins rotate.
    await expectProblem(await (await h.client("operator")).request("POST", `/v1/environments/${a.id}/agent-token`), 403, "forbidden");

    const rotated = await h.admin.rotateAgentToken("env-a");
    expect(rotated.generation).toBe(2);
    expect(rotated.agentToken).not.toBe(a.token);

    // The running agent is cut off and told why: it exits 3 rather than retrying forever.
    const exit = await exitWithin(agent);
    expect(exit.code, agent.output()).toBe(AGENT_EXIT.rejected);
    expect(agent.output()).toMatch(/4001|revoked/);
    const after = await h.admin.waitForEnvironment(a.id, (e) => e.state !== "running", { timeoutMs: 15_000 });
    expect(after).toMatchObject({ state: "disconnected", connected: false });

    // The old token no longer connects…
    const { workspace: w2 } = await h.workspace();
    const stale = h.agent({ token: a.token, workspace: w2 });
    expect((await exitWithin(stale)).code, stale.output()).toBe(AGENT_EXIT.rejected);
    expect(stale.output()).toMatch(/HTTP 401.*revoked/);

    // …the new one does, and A is running again.
    await connectAgent(h, a.id, rotated.agentToken, workspace);
    expect((await h.admin.exec(a.id, { command: ["echo", "again"] })).stdout).toBe("again\n");
  });
});
