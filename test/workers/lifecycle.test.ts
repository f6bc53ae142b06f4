import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { CLOSE } from "@outpost/protocol";
import type { EnvironmentObject } from "../../durable-objects/environment.js";
import { call, eventsOf, eventually, expectProblem, TestAgent, userToken } from "./helpers.js";

type Env0 = { id: string; name: string; state: string; restartCount: number; lastSeenAt: string | null; startedAt: string | null };

async function create(token: string, name: string, lifecycle: Record<string, unknown> = {}) {
  const res = await call("POST", "/v1/environments", { token, json: { name, provider: "local", lifecycle } });
  expect(res.status).toBe(201);
  return (await res.json()) as { environment: Env0; agentToken: string };
}

function stubOf(org: string, id: string) {
  return env.ENVIRONMENTS.get(env.ENVIRONMENTS.idFromName(`${org}/${id}`));
}

/**
 * A clock the test moves by hand, installed in the environment's object. It starts an hour ahead,
 * so the alarms it schedules lie far in the real future and only the test's runDurableObjectAlarm
 * fires them (a real alarm firing meanwhile would race the test's steps).
 */
async function fakeClock(org: string, id: string, start = Date.now() + 3_600_000) {
  let t = start;
  await runInDurableObject(stubOf(org, id), (obj: EnvironmentObject) => void (obj.now = () => t));
  return {
    get now() {
      return t;
    },
    set: (ms: number) => void (t = ms),
  };
}

async function alarmAt(org: string, id: string): Promise<number | null> {
  return runInDurableObject(stubOf(org, id), (_o: EnvironmentObject, ctx) => ctx.storage.getAlarm());
}

async function get(token: string, id: string): Promise<Env0> {
  return ((await (await call("GET", `/v1/environments/${id}`, { token })).json()) as { environment: Env0 }).environment;
}

describe("grace period and restart policy, driven by the one alarm", () => {
  it("disconnected → unconnectable after grace → restarting after backoff → running when the agent returns", async () => {
    const org = "org-grace";
    const token = await userToken({ org });
    const lifecycle = { graceMs: 1000, startTimeoutMs: 2000, restart: { policy: "on-failure", maxRestarts: 1, backoffMs: 500 } };
    const { environment, agentToken } = await create(token, "grace", lifecycle);
    const clock = await fakeClock(org, environment.id);
    const t0 = clock.now;
    const agent = await TestAgent.ready(environment.id, agentToken);
    expect((await get(token, environment.id)).state).toBe("running");

    agent.ws.close(1000, "crash");
    await eventually(async () => (await get(token, environment.id)).state === "disconnected");
    expect(await alarmAt(org, environment.id)).toBe(t0 + 1000);

    clock.set(t0 + 999);
    await runDurableObjectAlarm(stubOf(org, environment.id)); // early: nothing is due yet
    expect((await get(token, environment.id)).state).toBe("disconnected");

    clock.set(t0 + 1000);
    await runDurableObjectAlarm(stubOf(org, environment.id));
    expect((await get(token, environment.id)).state).toBe("unconnectable");
    expect(await alarmAt(org, environment.id)).toBe(t0 + 1500);

    clock.set(t0 + 1500);
    await runDurableObjectAlarm(stubOf(org, environment.id));
    const restarting = await get(token, environment.id);
    expect(restarting.state).toBe("restarting");
    expect(restarting.restartCount).toBe(1);
    expect(await alarmAt(org, environment.id)).toBe(t0 + 3500);

    const back = await TestAgent.ready(environment.id, agentToken);
    expect((await get(token, environment.id)).state).toBe("running");
    back.ws.close(1000);
  });

  it("gives up after maxRestarts: stays unconnectable with no alarm left", async () => {
    const org = "org-giveup";
    const token = await userToken({ org });
    const { environment, agentToken } = await create(token, "giveup", { graceMs: 100, startTimeoutMs: 100, restart: { maxRestarts: 1, backoffMs: 10 } });
    const clock = await fakeClock(org, environment.id);
    const agent = await TestAgent.ready(environment.id, agentToken);
    agent.ws.close(1000);
    await eventually(async () => (await get(token, environment.id)).state === "disconnected");
    const steps: string[] = [];
    for (let i = 0; i < 4; i++) {
      const due = await alarmAt(org, environment.id);
      if (due === null) break;
      clock.set(due);
      await runDurableObjectAlarm(stubOf(org, environment.id));
      steps.push((await get(token, environment.id)).state);
    }
    expect(steps).toEqual(["unconnectable", "restarting", "unconnectable"]);
    expect(await alarmAt(org, environment.id)).toBeNull();
  });

  it("policy never: unconnectable stays put", async () => {
    const org = "org-never";
    const token = await userToken({ org });
    const { environment, agentToken } = await create(token, "never", { graceMs: 100, restart: { policy: "never" } });
    const clock = await fakeClock(org, environment.id);
    (await TestAgent.ready(environment.id, agentToken)).ws.close(1000);
    await eventually(async () => (await get(token, environment.id)).state === "disconnected");
    clock.set(clock.now + 100);
    await runDurableObjectAlarm(stubOf(org, environment.id));
    expect((await get(token, environment.id)).state).toBe("unconnectable");
    expect(await alarmAt(org, environment.id)).toBeNull();
  });
});

describe("heartbeats", () => {
  it("a half-open link (no ping for three intervals) is disconnected at the next alarm; a live one is not", async () => {
    const org = "org-halfopen";
    const token = await userToken({ org });
    const { environment, agentToken } = await create(token, "halfopen", { heartbeatMs: 100, idleCheckMs: 1000 });
    const clock = await fakeClock(org, environment.id, Date.now()); // compared with real pong times
    const agent = await TestAgent.ready(environment.id, agentToken);
    const welcome = agent.texts.map((t) => (t.startsWith("{") ? JSON.parse(t) : null)).find((f) => f?.kind === "welcome");
    expect(welcome?.heartbeatMs).toBe(100);
    // Sparse while idle: the only alarm is the link check, idleCheckMs away.
    expect(await alarmAt(org, environment.id)).toBe(clock.now + 1000);

    agent.ws.send("ping");
    await eventually(async () => agent.texts.includes("pong"));
    const pingedAt = Date.now();
    clock.set(pingedAt + 250); // within three intervals of the last pong
    await runDurableObjectAlarm(stubOf(org, environment.id));
    expect((await get(token, environment.id)).state).toBe("running");
    expect(await alarmAt(org, environment.id)).toBe(pingedAt + 250 + 1000);

    clock.set(pingedAt + 1250); // silent for far longer than three intervals
    await runDurableObjectAlarm(stubOf(org, environment.id));
    expect((await agent.waitClosed()).code).toBe(CLOSE.heartbeatTimeout);
    const after = await get(token, environment.id);
    expect(after.state).toBe("disconnected");
    expect(Date.parse(after.lastSeenAt!)).toBeGreaterThanOrEqual(pingedAt - 1000);
  });

  it("an idle link check counts its setAlarm as the one row it writes, and writes no metrics row", async () => {
    const org = "org-idle-check";
    const token = await userToken({ org });
    const { environment, agentToken } = await create(token, "idlecheck", { heartbeatMs: 5000, idleCheckMs: 1000 });
    const clock = await fakeClock(org, environment.id, Date.now());
    const agent = await TestAgent.ready(environment.id, agentToken);
    const metrics = async () => (await (await call("GET", `/v1/environments/${environment.id}/metrics`, { token })).json()) as { rowsWritten: number; alarms: number };
    agent.ws.send("ping");
    await eventually(async () => agent.texts.includes("pong"));
    const m0 = await metrics();
    clock.set(Date.now() + 1000); // the link check is due; the link is live (pinged well within three intervals)
    await runDurableObjectAlarm(stubOf(org, environment.id));
    expect((await get(token, environment.id)).state).toBe("running");
    expect(await alarmAt(org, environment.id)).toBe(clock.now + 1000);
    const m1 = await metrics();
    expect(m1.alarms).toBe(m0.alarms + 1);
    expect(m1.rowsWritten - m0.rowsWritten).toBe(1);
    agent.ws.close(1000);
  });

  it("pings neither wake the object nor write a row", async () => {
    const org = "org-idle";
    const token = await userToken({ org });
    const { environment, agentToken } = await create(token, "idle");
    const agent = await TestAgent.ready(environment.id, agentToken);
    const metrics = async () => (await (await call("GET", `/v1/environments/${environment.id}/metrics`, { token })).json()) as { rowsWritten: number; entries: Record<string, number>; wakeups: number };
    // Control: what reading the metrics costs by itself, with nothing else happening: no row, as
    // its counts ride on the agent socket's attachment until something else is written.
    const m0 = await metrics();
    const m1 = await metrics();
    const readCost = m1.rowsWritten - m0.rowsWritten;
    expect(readCost).toBe(0);
    expect(m1.entries.rpc).toBe((m0.entries.rpc ?? 0) + 1);
    for (let i = 0; i < 20; i++) agent.ws.send("ping");
    await eventually(async () => agent.texts.filter((t) => t === "pong").length === 20);
    const m2 = await metrics();
    expect(m2.entries.webSocketMessage).toBe(m1.entries.webSocketMessage);
    expect(m2.wakeups).toBe(m1.wakeups);
    expect(m2.rowsWritten - m1.rowsWritten).toBe(readCost);
    // ... whereas one real message does wake the handler.
    agent.send({ v: 1, kind: "error", error: { code: "noise", message: "x" } });
    await eventually(async () => ((await metrics()).entries.webSocketMessage ?? 0) > (m2.entries.webSocketMessage ?? 0));
    agent.ws.close(1000);
  });
});

describe("actions", () => {
  it("stop asks the agent to shut down and waits for it; repeated stop is 409 naming the state", async () => {
    const org = "org-stop";
    const token = await userToken({ org });
    const { environment, agentToken } = await create(token, "stop");
    const agent = await TestAgent.ready(environment.id, agentToken);
    const stopping = call("POST", `/v1/environments/${environment.id}/stop`, { token });
    const req = await agent.next("request");
    expect(req.op).toBe("shutdown");
    agent.send({ v: 1, kind: "reply", re: req.id, ok: true, result: {} });
    agent.ws.close(1000, "shutting down");
    const res = await stopping;
    expect(res.status).toBe(200);
    expect(((await res.json()) as { environment: Env0 }).environment.state).toBe("stopped");
    const again = await expectProblem(await call("POST", `/v1/environments/${environment.id}/stop`, { token }), 409, "invalid_state");
    expect(again.detail).toContain("already stopped");
    // An agent that dials in while stopped is told so and sent away.
    const late = await TestAgent.connect(environment.id, agentToken);
    late.hello();
    expect((await late.waitClosed()).code).toBe(CLOSE.stopped);
  });

  it("stop records stopped after the timeout when the agent does not leave", async () => {
    const org = "org-stop-timeout";
    const token = await userToken({ org });
    const { environment, agentToken } = await create(token, "stuck", { stopTimeoutMs: 50 });
    const agent = await TestAgent.ready(environment.id, agentToken);
    const clock = await fakeClock(org, environment.id);
    const stopping = call("POST", `/v1/environments/${environment.id}/stop`, { token });
    await agent.next("request"); // never answered
    clock.set(clock.now + 50);
    await eventually(async () => (await alarmAt(org, environment.id)) !== null || true);
    await runDurableObjectAlarm(stubOf(org, environment.id));
    const res = await stopping;
    expect(((await res.json()) as { environment: Env0 }).environment.state).toBe("stopped");
    expect((await agent.waitClosed()).code).toBe(CLOSE.stopped);
  });

  it("stop without an agent is immediate; start waits for an agent; start.expired → unconnectable", async () => {
    const org = "org-start";
    const token = await userToken({ org });
    const { environment, agentToken } = await create(token, "start", { startTimeoutMs: 500, restart: { policy: "never" } });
    await expectProblem(await call("POST", `/v1/environments/${environment.id}/stop`, { token }), 409, "invalid_state");
    const started = await call("POST", `/v1/environments/${environment.id}/start`, { token });
    expect(((await started.json()) as { environment: Env0 }).environment.state).toBe("starting");
    const stopped = await call("POST", `/v1/environments/${environment.id}/stop`, { token });
    expect(((await stopped.json()) as { environment: Env0 }).environment.state).toBe("stopped");
    await call("POST", `/v1/environments/${environment.id}/start`, { token });
    const clock = await fakeClock(org, environment.id);
    clock.set(clock.now + 10_000);
    await runDurableObjectAlarm(stubOf(org, environment.id));
    expect((await get(token, environment.id)).state).toBe("unconnectable");
    const agent = await TestAgent.ready(environment.id, agentToken);
    expect((await get(token, environment.id)).state).toBe("running");
    await expectProblem(await call("POST", `/v1/environments/${environment.id}/start`, { token }), 409, "invalid_state");
    agent.ws.close(1000);
  });

  it("restart cuts the agent with 'reconnect' and counts; the agent's return makes it running", async () => {
    const org = "org-restart";
    const token = await userToken({ org });
    const { environment, agentToken } = await create(token, "restart");
    const agent = await TestAgent.ready(environment.id, agentToken);
    const res = await call("POST", `/v1/environments/${environment.id}/restart`, { token });
    const body = (await res.json()) as { environment: Env0 };
    expect(body.environment.state).toBe("restarting");
    expect(body.environment.restartCount).toBe(1);
    expect((await agent.waitClosed()).code).toBe(CLOSE.reconnect);
    const back = await TestAgent.ready(environment.id, agentToken);
    expect((await get(token, environment.id)).state).toBe("running");
    back.ws.close(1000);
  });

  it("archive keeps a tombstone and the events, revokes the agent, frees the name", async () => {
    const org = "org-archive";
    const token = await userToken({ org });
    const operator = await userToken({ org, role: "operator" });
    const { environment, agentToken } = await create(token, "gone");
    const agent = await TestAgent.ready(environment.id, agentToken);
    await expectProblem(await call("DELETE", `/v1/environments/${environment.id}`, { token: operator }), 403);
    const res = await call("DELETE", `/v1/environments/${environment.id}`, { token });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { environment: Env0 }).environment.state).toBe("archived");
    expect((await agent.waitClosed()).code).toBe(CLOSE.archived);
    expect((await get(token, environment.id)).state).toBe("archived");
    const refused = await call("GET", `/v1/environments/${environment.id}/connect`, { token: agentToken, headers: { upgrade: "websocket" } });
    expect(refused.status).toBe(401);
    await expectProblem(await call("POST", `/v1/environments/${environment.id}/start`, { token }), 409, "invalid_state");
    expect((await eventsOf(token, environment.id)).some((e) => e.type === "state.changed" && e.data.to === "archived")).toBe(true);
    const list = (await (await call("GET", "/v1/environments", { token })).json()) as { environments: unknown[] };
    expect(list.environments).toHaveLength(0);
    const archived = (await (await call("GET", "/v1/environments?state=archived", { token })).json()) as { environments: unknown[] };
    expect(archived.environments).toHaveLength(1);
    await create(token, "gone"); // the name is free again
    expect(await alarmAt(org, environment.id)).toBeNull();
  });
});

describe("event log", () => {
  it("pages with after/limit, and the stream resumes from a cursor with no gap and no duplicate", async () => {
    const org = "org-events";
    const token = await userToken({ org });
    const { environment, agentToken } = await create(token, "events");
    const agent = await TestAgent.ready(environment.id, agentToken);
    agent.ws.close(1000);
    await eventually(async () => (await get(token, environment.id)).state === "disconnected");
    const all = (await (await call("GET", `/v1/environments/${environment.id}/events?limit=1000`, { token })).json()) as { events: Array<{ seq: number; type: string }>; next: number };
    expect(all.events.map((e) => e.type)).toEqual(["environment.created", "agent.connected", "state.changed", "agent.disconnected", "state.changed"]);
    const seqs = all.events.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    const page = (await (await call("GET", `/v1/environments/${environment.id}/events?after=${seqs[1]}&limit=2`, { token })).json()) as { events: Array<{ seq: number }>; next: number };
    expect(page.events.map((e) => e.seq)).toEqual([seqs[2], seqs[3]]);
    expect(page.next).toBe(seqs[3]);

    // A watcher that saw up to seqs[2] reconnects: it gets exactly the rest, then live events.
    const res = await call("GET", `/v1/environments/${environment.id}/events/stream?after=${seqs[2]}`, { token, headers: { upgrade: "websocket" } });
    const ws = res.webSocket!;
    ws.accept();
    const got: number[] = [];
    ws.addEventListener("message", (e) => got.push((JSON.parse(e.data as string) as { event: { seq: number } }).event.seq));
    await eventually(async () => got.length === 2);
    expect(got).toEqual([seqs[3], seqs[4]]);
    const again = await TestAgent.ready(environment.id, agentToken);
    await eventually(async () => got.length >= 4);
    expect(got.slice(0, 4)).toEqual([seqs[3], seqs[4], seqs[4]! + 1, seqs[4]! + 2]);
    ws.close(1000);
    again.ws.close(1000);

    // Browsers pass the token in the query; without any token the stream is refused.
    const viaQuery = await call("GET", `/v1/environments/${environment.id}/events/stream?access_token=${token}`, { headers: { upgrade: "websocket" } });
    expect(viaQuery.status).toBe(101);
    viaQuery.webSocket!.accept();
    viaQuery.webSocket!.close(1000);
    await expectProblem(await call("GET", `/v1/environments/${environment.id}/events/stream`, { headers: { upgrade: "websocket" } }), 401);
    await expectProblem(await call("GET", `/v1/environments/${environment.id}/events/stream`, { token }), 426);
  });
});
