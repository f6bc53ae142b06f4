/**
 * The bound on forwarded work (durable-objects/hop-watch.ts), inside workerd: a leaf whose agent
 * holds its socket open but never acknowledges the request, or acknowledges and then goes silent,
 * fails at the origin with an error naming that hop; output keeps a quiet leaf alive. Agents are
 * TestAgents speaking the wire protocol, so each can be made to stall exactly where wanted.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { EnvironmentObject } from "../../durable-objects/environment.js";
import { environment, forward } from "./chaining-helpers.js";
import { call, eventsOf, eventually, ndjson, userToken } from "./helpers.js";

/** Every environment here takes forwarded work from the whole org. */
const open = (token: string, name: string, heartbeatMs?: number) => environment(token, name, { gateway: true, heartbeatMs });

describe("the bound on a forwarded request", () => {
  it("a leaf whose agent never acknowledges the request fails at the origin, naming the leaf", async () => {
    const token = await userToken({ org: "bound-ack" });
    await open(token, "a");
    await open(token, "b");
    const c = await open(token, "c");
    await call("PUT", `/v1/environments/a/routes`, { token, json: { rules: [], ackTimeoutMs: 100 } });
    const res = forward(token, "a", { exec: { command: ["sleep", "100"] }, route: ["b", "c"] });
    const req = await c.agent.next("request");
    const got = await ndjson(await res);
    expect(got.at(-1)).toEqual({
      type: "error",
      code: "timeout",
      message: "Hop 'c' failed: its agent is connected but did not acknowledge the request within 100 ms",
      hop: "c",
      route: ["a", "b", "c"],
    });
    // The stalled agent is told to kill the command should it ever wake.
    expect((await c.agent.next("cancel")).re).toBe(req.id);
  });

  it("takes an ackTimeoutMs of 100 ms or more (a deadline shorter than that is refused)", async () => {
    const token = await userToken({ org: "bound-min" });
    await open(token, "a");
    expect((await call("PUT", `/v1/environments/a/routes`, { token, json: { rules: [], ackTimeoutMs: 99 } })).status).toBe(400);
    expect((await call("PUT", `/v1/environments/a/routes`, { token, json: { rules: [], ackTimeoutMs: 100 } })).status).toBe(200);
  });

  it("output keeps a leaf alive; silence after the acknowledgement fails it, naming the leaf", async () => {
    const token = await userToken({ org: "bound-stale" });
    await open(token, "a");
    const b = await open(token, "b", 200);
    await call("PUT", `/v1/environments/a/routes`, { token, json: { rules: [], ackTimeoutMs: 100 } });
    const res = forward(token, "a", { exec: { command: ["slow"] }, target: "b" });
    const req = await b.agent.next("request");
    b.agent.send({ v: 1, kind: "ack", ack: Number(req.seq) });
    const reading = res.then(ndjson);
    // Output every 50 ms for longer than the half-open limit (3 × 200 ms): still alive.
    for (let n = 0; n < 20; n++) {
      b.agent.send({ v: 1, kind: "chunk", seq: n + 1, re: req.id, n, stream: "stdout", data: btoa(`${n}\n`) });
      await new Promise((r) => setTimeout(r, 50));
    }
    const got = await reading;
    expect(got.filter((l) => l.type === "stdout").map((l) => l.data).join("")).toBe(Array.from({ length: 20 }, (_, n) => `${n}\n`).join(""));
    expect(got.at(-1)).toEqual({
      type: "error",
      code: "timeout",
      message: "Hop 'b' failed: its agent stopped responding: no heartbeat or output for 600 ms",
      hop: "b",
      route: ["a", "b"],
    });
  });
});

describe("an origin client that goes away", () => {
  it("cancels the forwarded work at every hop, down to the leaf's agent (ndjson)", async () => {
    const token = await userToken({ org: "bound-gone" });
    await open(token, "a");
    await open(token, "b");
    const c = await open(token, "c");
    const res = await forward(token, "a", { exec: { command: ["sleep", "100"] }, route: ["b", "c"] });
    const reader = res.body!.getReader();
    const { forwardId } = JSON.parse(new TextDecoder().decode((await reader.read()).value).split("\n")[0]!) as { forwardId: string };
    const req = await c.agent.next("request");
    await reader.cancel();
    // The runtime notices a gone client when it next writes to it: here, the leaf's output.
    for (let n = 0; n < 50 && !c.agent.frames.some((f) => f.kind === "cancel"); n++) {
      c.agent.send({ v: 1, kind: "chunk", seq: n + 1, re: req.id, n, stream: "stdout", data: btoa(`${n}\n`) });
      await new Promise((r) => setTimeout(r, 20));
    }
    expect((await c.agent.next("cancel")).re).toBe(req.id);
    await eventually(async () => (await eventsOf(token, "c")).some((e) => e.type === "forward.cancelled" && e.data.forwardId === forwardId));
  });
});

describe("a hop's reader that goes away", () => {
  it("cancelling the reader of the middle hop's stream stops the leaf's command", { timeout: 20_000 }, async () => {
    const token = await userToken({ org: "bound-mid" });
    const a = await open(token, "a");
    await open(token, "b");
    const c = await open(token, "c");
    const b = env.ENVIRONMENTS.get(env.ENVIRONMENTS.idFromName(`bound-mid/${(await (await call("GET", "/v1/environments/b", { token })).json() as { environment: { id: string } }).environment.id}`)) as unknown as DurableObjectStub<EnvironmentObject>;
    // What a's object sends b (a → b → c, run in c), read inside b's object: the consumer of b's stream.
    const req = runInDurableObject(b, async (obj: EnvironmentObject) => {
      const r = await obj.forwardHop({
        forwardId: crypto.randomUUID(),
        from: { id: a.id, name: "a" },
        trail: { origin: a.id, visited: [a.id], names: ["a"], hops: 0, maxHops: 8, ackTimeoutMs: 10_000 },
        type: "exec",
        action: null,
        work: { exec: { command: ["sleep", "100"] } },
        route: ["c"],
      });
      if (!r.ok) throw new Error(r.error.message);
      const req = await c.agent.next("request");
      await r.value.getReader().cancel();
      return req;
    });
    expect((await c.agent.next("cancel")).re).toBe((await req).id);
  });
});
