import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { CHUNK_BYTES, CLOSE, INITIAL_CREDIT } from "@outpost/protocol";
import { AGENT_TAG, type AgentAttachment } from "../../durable-objects/agent-socket.js";
import type { EnvironmentObject } from "../../durable-objects/environment.js";
import { call, createEnvironment, eventually, expectProblem, ndjson, TestAgent, userToken } from "./helpers.js";

async function ready(org: string, name: string) {
  const token = await userToken({ org });
  const { environment, agentToken } = await createEnvironment(token, name);
  const agent = await TestAgent.ready(environment.id, agentToken);
  return { token, id: environment.id, agentToken, agent };
}

describe("the reliable link (edge side)", () => {
  it("sequences requests and resends an unacknowledged one to the agent that reconnects", async () => {
    const { token, id, agentToken, agent } = await ready("org-replay", "replay");
    const exec = call("POST", `/v1/environments/${id}/exec`, { token, json: { command: ["echo", "again"] } });
    const first = await agent.next("request");
    expect(first.seq).toBeTypeOf("number");
    agent.ws.close(4000, "link cut before the reply"); // the agent never answered nor acked
    const again = await TestAgent.connect(id, agentToken);
    again.send({ v: 1, kind: "hello", protocol: "1.0", ack: 0, resume: 1, agent: { version: "t", hostname: "h", platform: "linux", arch: "x64", node: "v20", pid: 2 }, capabilities: [] });
    await again.next("welcome");
    const resent = await again.next("request");
    expect(resent).toMatchObject({ id: first.id, seq: first.seq, op: "exec" });
    again.send({ v: 1, kind: "reply", seq: 1, re: resent.id, ok: true, result: { exitCode: 0, signal: null, stdout: "again\n", stderr: "", durationMs: 1 } });
    const res = await exec;
    expect(res.status).toBe(200);
    expect(((await res.json()) as { stdout: string }).stdout).toBe("again\n");
    again.ws.close(1000);
  });

  it("drops a frame whose seq it has already processed, and acknowledges cumulatively", async () => {
    const { token, id, agent } = await ready("org-dedup", "dedup");
    const exec = call("POST", `/v1/environments/${id}/exec`, { token, json: { command: ["x"], stream: false } });
    const req = await agent.next("request");
    const reply = { v: 1, kind: "reply", seq: 1, re: req.id, ok: true, result: { exitCode: 3, signal: null, stdout: "", stderr: "", durationMs: 1 } };
    agent.send(reply);
    expect(((await (await exec).json()) as { exitCode: number }).exitCode).toBe(3);
    // The same seq again (a resend after a reconnect): no effect, but an ack comes back.
    agent.send({ ...reply, result: { ...reply.result, exitCode: 99 } });
    const ack = await agent.next("ack", 2000);
    expect(ack.ack).toBe(1);
    agent.ws.close(1000);
  });

  it("forgets a durable frame once the agent acknowledges it, and resends only those it has not", async () => {
    const { token, id, agentToken, agent } = await ready("org-durable-ack", "durable-ack");
    const startRun = async () => ((await (await call("POST", `/v1/environments/${id}/runs`, { token, json: { agent: { command: ["x"] } } })).json()) as { run: { id: string } }).run.id;
    const first = await startRun();
    const firstStart = await agent.next("request");
    expect(firstStart).toMatchObject({ id: `run:${first}:start` });
    agent.send({ v: 1, kind: "ack", ack: firstStart.seq });
    const stub = env.ENVIRONMENTS.get(env.ENVIRONMENTS.idFromName(`org-durable-ack/${id}`));
    const keys = () => runInDurableObject(stub, (_o: EnvironmentObject, ctx) => ctx.storage.sql.exec<{ key: string }>("SELECT key FROM outbox ORDER BY seq").toArray().map((r) => r.key));
    await eventually(async () => (await keys()).length === 0);
    const second = await startRun();
    const secondStart = await agent.next("request");
    expect(secondStart).toMatchObject({ id: `run:${second}:start` });
    expect(await keys()).toEqual([second]);
    agent.ws.close(4000, "link cut before the second start was acknowledged");
    const again = await TestAgent.connect(id, agentToken);
    again.send({ v: 1, kind: "hello", protocol: "1.0", ack: 0, resume: 1, agent: { version: "t", hostname: "h", platform: "linux", arch: "x64", node: "v20", pid: 2 }, capabilities: ["runs"] });
    await again.next("welcome");
    expect(await again.next("request")).toMatchObject({ id: `run:${second}:start`, seq: secondStart.seq });
    again.send({ v: 1, kind: "ack", ack: secondStart.seq });
    await eventually(async () => (await keys()).length === 0);
    again.ws.close(1000);
  });

  it("keeps recv in memory and writes it to the socket's attachment with each ack, not each frame", async () => {
    const org = "org-recv";
    const { token, id, agent } = await ready(org, "recv");
    const stub = env.ENVIRONMENTS.get(env.ENVIRONMENTS.idFromName(`${org}/${id}`));
    const attachedRecv = () => runInDurableObject(stub, (_o: EnvironmentObject, ctx) => (ctx.getWebSockets(AGENT_TAG)[0]!.deserializeAttachment() as AgentAttachment).recv);
    const resP = call("POST", `/v1/environments/${id}/exec`, { token, json: { command: ["x"] }, headers: { accept: "application/x-ndjson" } });
    const req = await agent.next("request");
    for (let n = 0; n < 40; n++) agent.send({ v: 1, kind: "chunk", seq: n + 1, re: req.id, n, stream: "stdout", data: btoa(`${n}\n`) });
    // An ack leaves only after the attachment holds what it acknowledges (32 frames at once, the rest after a delay).
    let ack = 0;
    while (ack < 40) ack = Number((await agent.next("ack", 2000)).ack);
    expect(await attachedRecv()).toBe(40);
    agent.send({ v: 1, kind: "reply", seq: 41, re: req.id, ok: true, result: { exitCode: 0, signal: null, stdout: "", stderr: "", durationMs: 1 } });
    const out = await ndjson(await resP);
    expect(out.at(-1)).toMatchObject({ type: "exit", exitCode: 0 });
    agent.ws.close(1000);
  });

  it("puts frames that arrive out of order back in order, and resets a link whose gap does not fill", async () => {
    const { token, id, agent } = await ready("org-reorder", "reorder");
    const resP = call("POST", `/v1/environments/${id}/exec`, { token, json: { command: ["x"] }, headers: { accept: "application/x-ndjson" } });
    const req = await agent.next("request");
    const chunk = (seq: number, n: number) => ({ v: 1, kind: "chunk", seq, re: req.id, n, stream: "stdout", data: btoa(`${n}\n`) });
    agent.send(chunk(2, 1)); // ahead of its turn: held
    agent.send(chunk(1, 0));
    agent.send({ v: 1, kind: "reply", seq: 3, re: req.id, ok: true, result: { exitCode: 0, signal: null, stdout: "", stderr: "", durationMs: 1 } });
    const text = await (await resP).text();
    expect(text.trim().split("\n").slice(1, 3).map((l) => JSON.parse(l).data)).toEqual(["0\n", "1\n"]);
    // seq 5 without 4 ever coming: after a bounded wait the edge closes the link (the agent resends).
    agent.send(chunk(5, 9));
    expect((await agent.waitClosed(6000)).code).toBe(CLOSE.protocolError);
  });

  it("streams exec output as ndjson, granting credit as the reader takes it; cancel reaches the agent", async () => {
    const { token, id, agent } = await ready("org-ndjson", "ndjson");
    const resP = call("POST", `/v1/environments/${id}/exec`, { token, json: { command: ["yes"] }, headers: { accept: "application/x-ndjson" } });
    const req = await agent.next("request");
    expect((req.params as { stream: boolean }).stream).toBe(true);
    for (let n = 0; n < 3; n++) agent.send({ v: 1, kind: "chunk", seq: n + 1, re: req.id, n, stream: n === 1 ? "stderr" : "stdout", data: btoa(`line ${n}\n`) });
    const res = await resP;
    expect(res.headers.get("content-type")).toContain("application/x-ndjson");
    const body = ndjson(res); // the reader takes lines as they come, which is what releases credit
    const credit = await agent.next("credit");
    expect(credit).toMatchObject({ re: req.id });
    expect(credit.n as number).toBeGreaterThanOrEqual(INITIAL_CREDIT);
    // Cancel by the execId from the first line.
    const cancel = await call("POST", `/v1/environments/${id}/exec/${req.id}/cancel`, { token });
    expect(cancel.status, await cancel.clone().text()).toBe(200);
    expect((await agent.next("cancel")).re).toBe(req.id);
    agent.send({ v: 1, kind: "reply", seq: 4, re: req.id, ok: true, result: { exitCode: null, signal: "SIGTERM", stdout: "", stderr: "", durationMs: 5, cancelled: true } });
    const got = await body;
    expect(got[0]).toEqual({ type: "started", execId: req.id });
    expect(got.slice(1, 4)).toEqual([
      { type: "stdout", data: "line 0\n" },
      { type: "stderr", data: "line 1\n" },
      { type: "stdout", data: "line 2\n" },
    ]);
    expect(got[4]).toMatchObject({ type: "exit", exitCode: null, signal: "SIGTERM", cancelled: true });
    await expectProblem(await call("POST", `/v1/environments/${id}/exec/${req.id}/cancel`, { token }), 404);
    agent.ws.close(1000);
  });

  it("an upload never runs ahead of the agent's credit", async () => {
    const { token, id, agent } = await ready("org-credit", "credit");
    const chunks = INITIAL_CREDIT + 4;
    const body = new Uint8Array(chunks * CHUNK_BYTES).map((_, i) => i % 251);
    const put = call("PUT", `/v1/environments/${id}/files?path=big.bin`, { token, body });
    const req = await agent.next("request");
    const seen: number[] = [];
    for (let i = 0; i < INITIAL_CREDIT; i++) seen.push((await agent.next("chunk")).n as number);
    // Without credit nothing more may come.
    await new Promise((r) => setTimeout(r, 200));
    expect(agent.frames.filter((f) => f.kind === "chunk")).toHaveLength(0);
    agent.send({ v: 1, kind: "credit", re: req.id, n: chunks + 1 });
    for (;;) {
      const c = await agent.next("chunk");
      seen.push(c.n as number);
      if (c.last) break;
    }
    expect(seen).toEqual([...Array(chunks + 1).keys()]);
    agent.send({ v: 1, kind: "reply", seq: 1, re: req.id, ok: true, result: { size: body.length } });
    expect((await put).status).toBe(200);
    agent.ws.close(1000);
  });

  it("an upload that keeps being granted credit outlives its idle deadline", async () => {
    const org = "org-credit-idle";
    const { token, id, agent } = await ready(org, "credit-idle");
    const stub = env.ENVIRONMENTS.get(env.ENVIRONMENTS.idFromName(`${org}/${id}`));
    await runInDurableObject(stub, (obj: EnvironmentObject) => void (obj.timing = { ...obj.timing, transferIdleMs: 1000 }));
    const chunks = INITIAL_CREDIT + 6;
    const body = new Uint8Array(chunks * CHUNK_BYTES).map((_, i) => i % 251);
    const put = call("PUT", `/v1/environments/${id}/files?path=slow.bin`, { token, body });
    const req = await agent.next("request");
    // Credit for one more chunk per chunk taken; past the initial window, only every 300 ms: the
    // whole upload takes far longer than the 1 s idle deadline, yet never stalls for that long.
    for (let n = 0; ; n++) {
      const c = await agent.next("chunk");
      if (c.last) break;
      if (n >= INITIAL_CREDIT) await new Promise((r) => setTimeout(r, 300));
      agent.send({ v: 1, kind: "credit", re: req.id, n: n + INITIAL_CREDIT });
    }
    agent.send({ v: 1, kind: "reply", seq: 1, re: req.id, ok: true, result: { size: body.length } });
    expect((await put).status).toBe(200);
    expect(agent.frames.filter((f) => f.kind === "cancel")).toHaveLength(0);
    agent.ws.close(1000);
  });

  it("keeps the agent's health report on the record without writing it", async () => {
    const { token, id, agent } = await ready("org-health", "health");
    agent.send({ v: 1, kind: "health", at: new Date().toISOString(), cpu: { load1: 0.5, cores: 2 }, memory: { totalBytes: 8e9, freeBytes: 4e9, agentRssBytes: 5e7 }, disk: { totalBytes: 1e11, freeBytes: 5e10 }, processes: 42 });
    const health = await eventually(async () => {
      const env = (await (await call("GET", `/v1/environments/${id}`, { token })).json()) as { environment: { health: { processes: number } | null } };
      return env.environment.health;
    });
    expect(health.processes).toBe(42);
    agent.ws.close(1000);
  });
});
