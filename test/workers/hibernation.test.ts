import { expect, it } from "vitest";
import { call, eventually, TestAgent, userToken } from "./helpers.js";

/**
 * Real hibernation: workerd evicts an object ten seconds after its last event while its accepted
 * sockets stay open. This is the one test that has to wait that long; everything else uses clocks.
 */
it("after the object hibernates with its agent socket open, the next message wakes it with state intact", { timeout: 40_000 }, async () => {
  const org = "org-hibernate";
  const token = await userToken({ org });
  const res = await call("POST", "/v1/environments", { token, json: { name: "hib", provider: "local" } });
  const { environment, agentToken } = (await res.json()) as { environment: { id: string }; agentToken: string };
  const agent = await TestAgent.ready(environment.id, agentToken);
  type M = { wakeups: number; rowsWritten: number; entries: Record<string, number> };
  const metrics = async () => (await (await call("GET", `/v1/environments/${environment.id}/metrics`, { token })).json()) as M;
  const before = (await metrics()).wakeups;
  // A message that writes nothing: its counts are carried by the socket's attachment, not written.
  const m0 = await metrics();
  agent.send({ v: 1, kind: "error", error: { code: "noise", message: "x" } });
  const seen = await eventually(async () => {
    const m = await metrics();
    return (m.entries.webSocketMessage ?? 0) > (m0.entries.webSocketMessage ?? 0) && m;
  });
  expect(seen.rowsWritten).toBe(m0.rowsWritten);

  await new Promise((r) => setTimeout(r, 12_000)); // no events at all: the object is evicted
  agent.ws.send("ping"); // answered by the runtime while hibernated
  await eventually(async () => agent.texts.includes("pong"));

  // The carried counts survived hibernation: the woken object adopted them, and counted its wake.
  const woke = await metrics();
  expect(woke.wakeups).toBe(seen.wakeups + 1);
  expect(woke.entries.webSocketMessage).toBe(seen.entries.webSocketMessage);
  expect(woke.entries.rpc).toBe(seen.entries.rpc! + 1);
  expect(woke.rowsWritten).toBe(seen.rowsWritten);

  // A real request: the Worker wakes the object, which finds its agent socket and attachment again.
  const exec = call("POST", `/v1/environments/${environment.id}/exec`, { token, json: { command: ["true"] } });
  const req = await agent.next("request");
  agent.send({ v: 1, kind: "reply", re: req.id, ok: true, result: { exitCode: 0, signal: null, stdout: "", stderr: "", durationMs: 1 } });
  expect((await exec).status).toBe(200);
  const env = (await (await call("GET", `/v1/environments/${environment.id}`, { token })).json()) as { environment: { state: string; connected: boolean } };
  expect(env.environment).toMatchObject({ state: "running", connected: true });
  expect((await metrics()).wakeups).toBeGreaterThan(before);
  agent.ws.close(1000);
});
