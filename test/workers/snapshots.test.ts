/**
 * The snapshot export path inside workerd: Worker → Durable Object → a test agent → back → R2.
 * The bytes land in R2 only when the agent's sha256 holds for the bytes that arrived; progress is
 * reported at most once per interval of the object's clock (injected), never per chunk; the
 * hierarchy routes validate before anything is touched.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { EnvironmentObject } from "../../durable-objects/environment.js";
import { call, createEnvironment, expectProblem, TestAgent, userToken } from "./helpers.js";

const CHUNK = 1024;

async function sha256(bytes: Uint8Array): Promise<string> {
  return [...new Uint8Array(await crypto.subtle.digest("SHA-256", bytes))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

const b64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes));

/** A test agent that takes one snapshot and serves its "bundle"; `lie` makes it claim another sha256. */
async function agentWithBundle(org: string, bundle: Uint8Array, o: { lie?: boolean } = {}) {
  const token = await userToken({ org, role: "admin" });
  const { environment, agentToken } = await createEnvironment(token, "snap");
  const agent = await TestAgent.ready(environment.id, agentToken);
  const commit = "a".repeat(40);
  let seq = 0;
  let running = true;
  void (async () => {
    while (running) {
      const req = await agent.next("request", 10_000).catch(() => null);
      if (!req) return;
      const p = req.params as Record<string, unknown>;
      if (req.op === "snapshot.take") {
        const result = { snapshotId: p.snapshotId, commit, tree: "b".repeat(40), parent: null, threadId: null, runId: null, objectiveId: null, files: 1, bytes: bundle.length, message: "snapshot" };
        agent.send({ v: 1, kind: "reply", seq: ++seq, re: req.id, ok: true, result });
      } else if (req.op === "snapshot.bundle") {
        const sum = o.lie ? "0".repeat(64) : await sha256(bundle);
        agent.send({ v: 1, kind: "reply", seq: ++seq, re: req.id, ok: true, result: { bundleId: "b1", size: bundle.length, sha256: sum } });
      } else if (req.op === "snapshot.read") {
        // Before each chunk the object's clock moves 300 ms: progress may be reported at most every
        // 1000 ms of it, so a handful of events, not one per chunk.
        let n = 0;
        for (let off = 0; off <= bundle.length; off += CHUNK) {
          const piece = bundle.subarray(off, off + CHUNK);
          agent.send({ v: 1, kind: "chunk", seq: ++seq, re: req.id, n: n++, data: b64(piece), ...(piece.length === 0 ? { last: true } : {}) });
          if (n % 8 === 0) await new Promise((r) => setTimeout(r, 1));
        }
        agent.send({ v: 1, kind: "reply", seq: ++seq, re: req.id, ok: true, result: { size: bundle.length, sha256: await sha256(bundle) } });
      }
    }
  })();
  return { token, environment, agent, stop: () => void (running = false) };
}

describe("snapshot export to R2", () => {
  it("streams the bundle into R2 with its sha256, writes narrative.json, reports throttled progress", async () => {
    const bundle = crypto.getRandomValues(new Uint8Array(40 * CHUNK + 17));
    const a = await agentWithBundle("org-snap", bundle);
    const stub = env.ENVIRONMENTS.get(env.ENVIRONMENTS.idFromName(`org-snap/${a.environment.id}`));
    let clock = Date.now();
    await runInDurableObject(stub, (obj: EnvironmentObject) => {
      obj.now = () => (clock += 300);
    });
    const res = await call("POST", "/v1/snapshots", { token: a.token, json: { environment: a.environment.id, message: "hello", export: { format: "bundle" } } });
    expect(res.status, await res.clone().text()).toBe(201);
    const { snapshot } = (await res.json()) as { snapshot: { id: string; exports: Array<{ key: string; size: number; sha256: string }>; environments: string[] } };
    expect(snapshot.environments).toEqual([a.environment.id]);
    const exp = snapshot.exports[0]!;
    expect(exp.size).toBe(bundle.length);
    expect(exp.sha256).toBe(await sha256(bundle));
    const stored = await env.BUNDLES.get(exp.key);
    expect(new Uint8Array(await stored!.arrayBuffer())).toEqual(bundle);
    const narrative = (await (await env.BUNDLES.get(`org-snap/snapshots/${snapshot.id}/narrative.json`))!.json()) as { snapshot: { id: string } };
    expect(narrative.snapshot.id).toBe(snapshot.id);

    const events = (await (await call("GET", `/v1/environments/${a.environment.id}/events?limit=500`, { token: a.token })).json()) as { events: Array<{ type: string; data: Record<string, unknown> }> };
    const progress = events.events.filter((e) => e.type === "snapshot.progress").map((e) => e.data);
    // 42 chunks, the clock read about once per chunk at 300 ms a read: far fewer events than chunks.
    expect(progress.length).toBeGreaterThan(2);
    expect(progress.length).toBeLessThan(25);
    expect(progress.at(-1)).toMatchObject({ direction: "export", bytes: bundle.length, total: bundle.length, percent: 100, done: true });
    const percents = progress.map((p) => p.percent as number);
    expect([...percents].sort((x, y) => x - y)).toEqual(percents);
    a.stop();
    a.agent.ws.close(1000);
  });

  it("keeps nothing when the bytes do not hash to what the agent said", async () => {
    const bundle = crypto.getRandomValues(new Uint8Array(5 * CHUNK));
    const a = await agentWithBundle("org-snap-lie", bundle, { lie: true });
    const res = await call("POST", "/v1/snapshots", { token: a.token, json: { environment: a.environment.id, export: { format: "bundle" } } });
    const problem = await expectProblem(res, 502);
    expect(problem.detail).toMatch(/sha256|storage/);
    const listed = await env.BUNDLES.list({ prefix: "org-snap-lie/" });
    expect(listed.objects).toEqual([]);
    a.stop();
    a.agent.ws.close(1000);
  });
});

describe("the hierarchy routes", () => {
  it("objectives and threads: created, listed, read; bad input refused", async () => {
    const token = await userToken({ org: "org-hier", role: "operator" });
    const o = await call("POST", "/v1/objectives", { token, json: { title: "goal" } });
    expect(o.status).toBe(201);
    const { objective } = (await o.json()) as { objective: { id: string } };
    const t = await call("POST", "/v1/threads", { token, json: { objectiveId: objective.id, title: "try 1" } });
    expect(t.status).toBe(201);
    const { thread } = (await t.json()) as { thread: { id: string } };
    const got = (await (await call("GET", `/v1/objectives/${objective.id}`, { token })).json()) as { threads: Array<{ id: string }> };
    expect(got.threads.map((x) => x.id)).toEqual([thread.id]);
    const tv = (await (await call("GET", `/v1/threads/${thread.id}`, { token })).json()) as { runs: unknown[]; snapshots: unknown[] };
    expect(tv).toMatchObject({ runs: [], snapshots: [] });
    await expectProblem(await call("POST", "/v1/objectives", { token, json: { title: "" } }), 400, "bad_request");
    await expectProblem(await call("POST", "/v1/threads", { token, json: { objectiveId: "obj_aaaaaaaaaaaaaaaaaaaa" } }), 404, "not_found");
    await expectProblem(await call("GET", "/v1/threads/nope", { token }), 404, "not_found");
    // Another org sees none of it.
    const other = await userToken({ org: "org-other", role: "viewer" });
    await expectProblem(await call("GET", `/v1/objectives/${objective.id}`, { token: other }), 404, "not_found");
    const viewer = await userToken({ org: "org-hier", role: "viewer" });
    await expectProblem(await call("POST", "/v1/objectives", { token: viewer, json: { title: "x" } }), 403);
  });
});
