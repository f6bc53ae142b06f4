import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { EnvironmentObject } from "../../durable-objects/environment.js";
import { call, TestAgent, userToken } from "./helpers.js";

/**
 * A control plane restart leaves a running environment without its agent socket and without a
 * close event. The first wake after it must not flap the environment to disconnected (its agent is
 * usually dialling back already): it schedules a link check, which declares the agent lost only if
 * it has not returned by then. The restart is simulated by a running record with no socket.
 */
type Env0 = { id: string; state: string; connected: boolean };
type Page = { events: Array<{ type: string; data: Record<string, unknown> }> };
type Recovering = { recover(): Promise<void> };

const stubOf = (org: string, id: string) => env.ENVIRONMENTS.get(env.ENVIRONMENTS.idFromName(`${org}/${id}`));

async function setup(org: string, name: string) {
  const token = await userToken({ org });
  const res = await call("POST", "/v1/environments", { token, json: { name, provider: "local", lifecycle: { heartbeatMs: 1000 } } });
  const { environment, agentToken } = (await res.json()) as { environment: Env0; agentToken: string };
  const stub = stubOf(org, environment.id);
  // An hour ahead, so the alarms it sets only fire when the test runs them.
  const t0 = Date.now() + 3_600_000;
  let t = t0;
  const woke = await runInDurableObject(stub, async (obj: EnvironmentObject, ctx) => {
    obj.now = () => t;
    ctx.storage.sql.exec("UPDATE environment SET state = 'running'");
    await (obj as unknown as Recovering).recover();
    return { alarm: await ctx.storage.getAlarm() };
  });
  const get = async () => ((await (await call("GET", `/v1/environments/${environment.id}`, { token })).json()) as { environment: Env0 }).environment;
  const states = async () =>
    ((await (await call("GET", `/v1/environments/${environment.id}/events?limit=100`, { token })).json()) as Page).events
      .filter((e) => e.type === "state.changed")
      .map((e) => `${String(e.data.from)}→${String(e.data.to)}`);
  return { token, environment, agentToken, stub, t0, woke, setClock: (ms: number) => void (t = ms), get, states };
}

describe("waking after a control plane restart", () => {
  it("keeps the environment running while its agent dials back, and welcomes it without a flap", async () => {
    const s = await setup("org-recover", "back");
    expect(s.woke.alarm).toBe(s.t0 + 3 * 1000); // three heartbeat intervals, as half-open detection
    expect((await s.get()).state).toBe("running");

    const agent = await TestAgent.ready(s.environment.id, s.agentToken);
    expect(await s.get()).toMatchObject({ state: "running", connected: true });
    // Its return drops the link check: the alarm moves on to the idle check, no wake at t0 + 3 s.
    const after = await runInDurableObject(s.stub, async (_obj: EnvironmentObject, ctx) => ({
      timers: ctx.storage.sql.exec("SELECT key FROM schedule").toArray().map((r) => r.key),
      alarm: await ctx.storage.getAlarm(),
    }));
    expect(after.timers).not.toContain("link.check");
    expect(after.alarm).toBeGreaterThan(s.t0 + 3 * 1000);

    // A check (the idle one, run early) finds the agent.
    s.setClock(s.t0 + 3 * 1000);
    await runDurableObjectAlarm(s.stub);
    expect((await s.get()).state).toBe("running");
    expect(await s.states()).not.toContain("running→disconnected");
    agent.ws.close(1000);
  });

  it("declares the agent lost when it has not come back by the link check", async () => {
    const s = await setup("org-recover", "gone");
    s.setClock(s.t0 + 2_999);
    await runDurableObjectAlarm(s.stub); // an earlier alarm (say, a persisted one) waits for the check
    expect((await s.get()).state).toBe("running");

    s.setClock(s.t0 + 3_000);
    await runDurableObjectAlarm(s.stub);
    expect((await s.get()).state).toBe("disconnected");
    expect(await s.states()).toContain("running→disconnected");
  });
});
