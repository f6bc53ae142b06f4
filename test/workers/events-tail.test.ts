/** The event stream's `tail`: a watcher that wants only the newest events (or only live ones) gets no backlog. */
import { describe, expect, it } from "vitest";
import { call, createEnvironment, eventually, expectProblem, TestAgent, userToken } from "./helpers.js";

async function watch(path: string, token: string): Promise<{ seqs: number[]; ws: WebSocket }> {
  const res = await call("GET", path, { token, headers: { upgrade: "websocket" } });
  expect(res.status).toBe(101);
  const ws = res.webSocket!;
  ws.accept();
  const seqs: number[] = [];
  ws.addEventListener("message", (e) => seqs.push((JSON.parse(e.data as string) as { event: { seq: number } }).event.seq));
  return { seqs, ws };
}

describe("event stream tail", () => {
  it("replays only the newest N events, or none with tail=0, then live ones; after still bounds it", async () => {
    const token = await userToken({ org: "org-tail" });
    const { environment, agentToken } = await createEnvironment(token, "tail");
    const agent = await TestAgent.ready(environment.id, agentToken);
    agent.ws.close(1000);
    const base = `/v1/environments/${environment.id}/events`;
    await eventually(async () => ((await (await call("GET", `${base}?limit=1000`, { token })).json()) as { events: unknown[] }).events.length >= 5);
    const all = ((await (await call("GET", `${base}?limit=1000`, { token })).json()) as { events: Array<{ seq: number }> }).events.map((e) => e.seq);
    const top = all[all.length - 1]!;

    const two = await watch(`${base}/stream?tail=2`, token);
    const live = await watch(`${base}/stream?tail=0`, token);
    const bounded = await watch(`${base}/stream?tail=4&after=${top - 1}`, token);
    await eventually(async () => two.seqs.length === 2 && bounded.seqs.length === 1);
    expect(two.seqs).toEqual([top - 1, top]);
    expect(bounded.seqs).toEqual([top]);
    expect(live.seqs).toEqual([]);

    const again = await TestAgent.ready(environment.id, agentToken); // appends agent.connected and a state change
    await eventually(async () => live.seqs.length >= 2);
    expect(live.seqs.slice(0, 2)).toEqual([top + 1, top + 2]);
    expect(two.seqs.slice(0, 4)).toEqual([top - 1, top, top + 1, top + 2]);
    for (const w of [two, live, bounded]) w.ws.close(1000);
    again.ws.close(1000);

    await expectProblem(await call("GET", `${base}/stream?tail=-1`, { token, headers: { upgrade: "websocket" } }), 400);
    await expectProblem(await call("GET", `${base}/stream?tail=lots`, { token, headers: { upgrade: "websocket" } }), 400);
  });
});
