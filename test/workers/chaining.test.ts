/**
 * Execution chaining inside workerd: the Worker and every environment's object are real; each
 * environment's agent is a TestAgent speaking the wire protocol, so each hop can be watched.
 */
import { describe, expect, it } from "vitest";
import { environment, forward, openGateway } from "./chaining-helpers.js";
import { call, createEnvironment, eventsOf, eventually, expectProblem, ndjson, stateOf, type TestAgent, userToken } from "./helpers.js";

/** Reliable frames carry seqs from 1, as a real agent's do. */
const seqs = new Map<TestAgent, number>();
const nextSeq = (agent: TestAgent) => {
  const n = (seqs.get(agent) ?? 0) + 1;
  seqs.set(agent, n);
  return n;
};

/** The agent answers its next exec request by streaming `text` and exiting 0; returns the request. */
async function answerExec(agent: TestAgent, text: string): Promise<Record<string, unknown>> {
  const req = await agent.next("request");
  expect(req.op).toBe("exec");
  agent.send({ v: 1, kind: "chunk", seq: nextSeq(agent), re: req.id, n: 0, stream: "stdout", data: btoa(text) });
  agent.send({ v: 1, kind: "reply", seq: nextSeq(agent), re: req.id, ok: true, result: { exitCode: 0, signal: null, stdout: "", stderr: "", durationMs: 1 } });
  return req;
}

describe("gateways and routes through the API", () => {
  it("starts inactive, validates, and needs an operator to change", async () => {
    const token = await userToken({ org: "chain-api" });
    const { environment } = await createEnvironment(token, "g");
    expect(await (await call("GET", `/v1/environments/g/gateway`, { token })).json()).toEqual({ gateway: { accept: false, allowFrom: [], capabilities: [] }, routing: { rules: [], maxHops: 8, ackTimeoutMs: 10_000 } });
    await expectProblem(await call("PUT", `/v1/environments/g/gateway`, { token, json: { accept: "yes" } }), 400, "bad_request");
    await expectProblem(await call("PUT", `/v1/environments/g/routes`, { token, json: { rules: [{ match: "EXEC", to: "b" }] } }), 400, "bad_request");
    const viewer = await userToken({ org: "chain-api", role: "viewer" });
    await expectProblem(await call("PUT", `/v1/environments/g/gateway`, { token: viewer, json: { accept: true } }), 403, "forbidden");
    expect(await (await openGateway(token, "g", ["a"], ["gpu"])).json()).toEqual({ gateway: { accept: true, allowFrom: ["a"], capabilities: ["gpu"] } });
    const routes = await call("PUT", `/v1/environments/${environment.id}/routes`, { token, json: { rules: [{ match: "inference", to: { capability: "gpu" } }], maxHops: 3 } });
    expect(await routes.json()).toEqual({ routing: { rules: [{ match: "inference", to: { capability: "gpu" } }], maxHops: 3, ackTimeoutMs: 10_000 } });
    expect(await (await call("GET", `/v1/environments/g/routes`, { token })).json()).toMatchObject({ routing: { maxHops: 3 } });
    expect((await eventsOf(token, "g")).map((e) => e.type)).toEqual(expect.arrayContaining(["gateway.changed", "routing.changed"]));
  });
});

describe("forwarding between objects", () => {
  it("a chain a → b → c streams c's output back to a, with the route taken, and logs on both sides", async () => {
    const token = await userToken({ org: "chain-line" });
    const a = await environment(token, "a");
    const b = await environment(token, "b");
    const c = await environment(token, "c");
    await openGateway(token, "b");
    await openGateway(token, "c", ["b"]);
    const res = forward(token, "a", { exec: { command: ["echo", "hi"] }, route: ["b", "c"] });
    const req = await answerExec(c.agent, "from c\n");
    expect(req.params).toMatchObject({ command: ["echo", "hi"], stream: true });
    const got = await ndjson(await res);
    expect(got[0]).toMatchObject({ type: "started", forwardId: expect.any(String) });
    expect(got.slice(1)).toEqual([
      { type: "stdout", data: "from c\n" },
      { type: "exit", exitCode: 0, signal: null, durationMs: 1, route: ["a", "b", "c"] },
    ]);
    expect((await eventsOf(token, "a")).find((e) => e.type === "forward.sent")?.data).toMatchObject({ to: "b" });
    expect((await eventsOf(token, "b")).find((e) => e.type === "forward.received")?.data).toMatchObject({ from: "a", origin: "a", hops: 1 });
    expect((await eventsOf(token, "c")).find((e) => e.type === "forward.received")?.data).toMatchObject({ from: "b", origin: "a", hops: 2 });
    expect(b.agent.frames.filter((f) => f.kind === "request")).toEqual([]); // b only relayed
    void a;
  });

  it("refuses a gateway that is inactive or does not allow the sender (403), and a loop by the rules (409)", async () => {
    const token = await userToken({ org: "chain-refuse" });
    await environment(token, "a");
    await environment(token, "b");
    await environment(token, "c");
    const inactive = await expectProblem(await forward(token, "a", { exec: { command: ["true"] }, target: "b" }, false), 403, "forbidden");
    expect(inactive.detail).toMatch(/'b' does not accept forwarded work: its gateway is inactive/);
    await openGateway(token, "b", ["c"]);
    const notAllowed = await expectProblem(await forward(token, "a", { exec: { command: ["true"] }, target: "b" }, false), 403, "forbidden");
    expect(notAllowed.detail).toMatch(/from 'a'/);
    await openGateway(token, "a");
    await openGateway(token, "b");
    await openGateway(token, "c");
    await call("PUT", `/v1/environments/b/routes`, { token, json: { rules: [{ match: "exec", to: "c" }] } });
    await call("PUT", `/v1/environments/c/routes`, { token, json: { rules: [{ match: "exec", to: "a" }] } });
    const loop = await expectProblem(await forward(token, "a", { exec: { command: ["true"] }, target: "b" }, false), 409, "loop_detected");
    expect(loop.detail).toBe("Loop refused: a → b → c → a comes back to environment 'a'.");
    const missing = await expectProblem(await forward(token, "a", { exec: { command: ["true"] }, target: "nope" }, false), 404, "not_found");
    expect(missing.detail).toMatch(/No environment named 'nope'/);
  });

  it("routes by capability, fans out with per-target results, and takes the agent's own token", async () => {
    const token = await userToken({ org: "chain-fan" });
    const a = await environment(token, "a");
    const b = await environment(token, "b");
    const c = await environment(token, "c");
    await openGateway(token, "b");
    await openGateway(token, "c", ["*"], ["gpu"]);
    await call("PUT", `/v1/environments/a/routes`, { token, json: { rules: [{ match: "inference", to: { capability: "gpu" } }] } });
    // a's own agent forwards by its rules: a custom type goes to whoever has a gpu.
    const byCapability = call("POST", `/v1/environments/${a.id}/forward`, { token: a.agentToken, json: { type: "inference:generate", exec: { command: ["infer"] } } });
    await answerExec(c.agent, "tokens");
    expect(await (await byCapability).json()).toMatchObject({ ok: true, exitCode: 0, stdout: "tokens", route: ["a", "c"] });
    await expectProblem(await call("POST", `/v1/environments/${b.id}/forward`, { token: a.agentToken, json: { exec: { command: ["true"] } } }), 403, "forbidden");

    const fan = forward(token, "a", { exec: { command: ["hostname"] }, targets: ["b", "c", "a"] }, false);
    await Promise.all([answerExec(b.agent, "b\n"), answerExec(c.agent, "c\n")]);
    const body = (await (await fan).json()) as { results: Array<Record<string, unknown>> };
    const byTarget = Object.fromEntries(body.results.map((r) => [r.target, r]));
    expect(byTarget.b).toMatchObject({ ok: true, stdout: "b\n", route: ["a", "b"] });
    expect(byTarget.c).toMatchObject({ ok: true, stdout: "c\n", route: ["a", "c"] });
    expect(byTarget.a).toMatchObject({ ok: false, code: "loop_detected" });
  });

  it("cancel at the origin reaches the leaf's agent; a dead middle hop is named", async () => {
    const token = await userToken({ org: "chain-cancel" });
    await environment(token, "a");
    const b = await environment(token, "b");
    const c = await environment(token, "c");
    await openGateway(token, "b");
    await openGateway(token, "c");
    const res = await forward(token, "a", { exec: { command: ["sleep", "100"] }, route: ["b", "c"] });
    const reader = res.body!.getReader();
    const first = JSON.parse(new TextDecoder().decode((await reader.read()).value).split("\n")[0]!) as { forwardId: string };
    const req = await c.agent.next("request");
    const cancelled = await call("POST", `/v1/environments/a/forward/${first.forwardId}/cancel`, { token });
    expect(await cancelled.json()).toEqual({ cancelled: true, hops: 1 });
    const cancel = await c.agent.next("cancel");
    expect(cancel.re).toBe(req.id);
    c.agent.send({ v: 1, kind: "reply", seq: nextSeq(c.agent), re: req.id, ok: true, result: { exitCode: null, signal: "SIGTERM", stdout: "", stderr: "", durationMs: 5, cancelled: true } });
    let rest = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    expect(rest).toContain('"cancelled":true');
    await expectProblem(await call("POST", `/v1/environments/a/forward/${first.forwardId}/cancel`, { token }), 404, "not_found");

    b.agent.ws.close(1000, "gone");
    await eventually(async () => (await stateOf(token, "b")) === "disconnected");
    const dead = await expectProblem(await forward(token, "a", { exec: { command: ["true"] }, route: ["b", "c"] }, false), 409, "agent_not_connected");
    expect(dead.detail).toMatch(/^Hop 'b' cannot pass the request on: No agent is connected/);
  });
});
