import { describe, expect, it } from "vitest";
import { SELF } from "cloudflare:test";
import { CLOSE } from "@outpost/protocol";
import { BASE, call, eventually, expectProblem, stateOf, TestAgent, userToken } from "./helpers.js";

type Offer = { id: string; capabilities?: string[]; config?: Record<string, unknown> };

/** A stand-in provider host speaking the host link protocol. */
async function connectHost(token: string, name: string, o: { providers: Offer[]; capabilities?: string[]; max?: number; resources?: Array<{ environmentId: string; provider: string; resourceId: string }> }) {
  const res = await SELF.fetch(`${BASE}/v1/hosts/connect`, { headers: { upgrade: "websocket", authorization: `Bearer ${token}` } });
  if (!res.webSocket) throw new Error(`host upgrade refused: ${res.status} ${await res.text()}`);
  res.webSocket.accept();
  const host = new TestAgent(res.webSocket);
  host.send({
    v: 1,
    kind: "host.hello",
    protocol: "1.0",
    host: { name, hostname: `${name}.local`, version: "t", platform: "linux" },
    providers: o.providers.map((p) => ({ id: p.id, name: p.id, version: "1.0.0", category: "local", capabilities: p.capabilities ?? [], config: p.config ?? {} })),
    capabilities: o.capabilities ?? [],
    capacity: { maxEnvironments: o.max ?? 10 },
    resources: o.resources ?? [],
  });
  await host.next("host.welcome");
  return host;
}

async function hostToken(admin: string, name: string, providers?: string[]) {
  const res = await call("POST", "/v1/hosts/tokens", { token: admin, json: { name, providers } });
  expect(res.status).toBe(201);
  return ((await res.json()) as { token: string }).token;
}

/** Answers every host.request like a host that creates resources. */
function serveHost(host: TestAgent, seen: Array<Record<string, unknown>>) {
  let running = true;
  void (async () => {
    while (running) {
      const req = await host.next("host.request", 10_000).catch(() => null);
      if (!req) return;
      seen.push(req);
      const p = req.params as { environmentId: string };
      const result = req.op === "env.teardown" ? { removed: true } : { resourceId: `/srv/${p.environmentId}`, ...(req.op === "env.recover" ? { recovered: true } : {}) };
      host.send({ v: 1, kind: "host.reply", re: req.id, ok: true, result });
    }
  })();
  return () => void (running = false);
}

describe("provider hosts and placement", () => {
  it("routes requirements to the host that has them, provisions there, and the agent it starts makes it running", async () => {
    const org = "org-hosts";
    const admin = await userToken({ org });
    const laptop = await connectHost(await hostToken(admin, "laptop"), "laptop", { providers: [{ id: "local" }, { id: "worktree" }], capabilities: ["node"] });
    const gpu = await connectHost(await hostToken(admin, "gpu-box"), "gpu-box", { providers: [{ id: "docker", capabilities: ["docker"] }], capabilities: ["gpu", "python"] });
    const list = (await (await call("GET", "/v1/hosts", { token: admin })).json()) as { hosts: Array<{ name: string; connected: boolean; providers: Array<{ id: string }> }> };
    expect(list.hosts.map((h) => [h.name, h.connected])).toEqual([["gpu-box", true], ["laptop", true]]);

    const seenGpu: Array<Record<string, unknown>> = [];
    const seenLaptop: Array<Record<string, unknown>> = [];
    const stopGpu = serveHost(gpu, seenGpu);
    const stopLaptop = serveHost(laptop, seenLaptop);

    const res = await call("POST", "/v1/environments", { token: admin, json: { name: "trainer", requires: { capabilities: ["gpu"] } } });
    expect(res.status, await res.clone().text()).toBe(201);
    const { environment } = (await res.json()) as { environment: { id: string; provider: string; host: string; state: string; resourceId: string } };
    expect(environment).toMatchObject({ provider: "docker", host: "gpu-box", state: "starting", resourceId: `/srv/${environment.id}` });
    expect(seenGpu).toHaveLength(1);
    expect(seenLaptop).toHaveLength(0);
    const create = seenGpu[0]!.params as { agentToken: string; url: string; environmentId: string };
    expect(create.environmentId).toBe(environment.id);
    expect(create.url).toBe(BASE);

    // The agent the host started dials in with the token it was given.
    const agent = await TestAgent.ready(environment.id, create.agentToken);
    await eventually(async () => (await stateOf(admin, environment.id)) === "running");

    // A named provider goes to the host that offers it.
    const local = (await (await call("POST", "/v1/environments", { token: admin, json: { name: "dev", provider: "worktree" } })).json()) as { environment: { host: string } };
    expect(local.environment.host).toBe("laptop");

    // Restart recovers through the host by resource id; archive tears down there.
    await call("POST", `/v1/environments/${environment.id}/restart`, { token: admin });
    await eventually(async () => seenGpu.some((r) => r.op === "env.recover"));
    expect((seenGpu.find((r) => r.op === "env.recover")!.params as { resourceId: string }).resourceId).toBe(`/srv/${environment.id}`);
    await call("DELETE", `/v1/environments/${environment.id}`, { token: admin });
    await eventually(async () => seenGpu.some((r) => r.op === "env.teardown"));

    // Nothing can serve this: 409 with the reason.
    const none = await expectProblem(await call("POST", "/v1/environments", { token: admin, json: { name: "quantum", requires: { capabilities: ["qpu"] } } }), 409, "conflict");
    expect(none.detail).toContain("gpu-box lacks qpu");
    expect(none.detail).toContain("laptop lacks qpu");
    stopGpu();
    stopLaptop();
    agent.ws.close(1000);
    gpu.ws.close(1000);
    laptop.ws.close(1000);
    await eventually(async () => {
      const l = (await (await call("GET", "/v1/hosts", { token: admin })).json()) as { hosts: Array<{ connected: boolean }> };
      return l.hosts.every((h) => !h.connected);
    });
    await expectProblem(await call("POST", "/v1/environments", { token: admin, json: { name: "later", host: "laptop" } }), 409);
  });

  it("merges config: provider defaults < the org's installed config < the environment's; secrets are redacted", async () => {
    const org = "org-config";
    const admin = await userToken({ org });
    const host = await connectHost(await hostToken(admin, "h1"), "h1", {
      providers: [{ id: "cloud", config: { region: { type: "string", default: "eu" }, size: { type: "number", default: 1 }, apiKey: { type: "string", secret: true }, image: { type: "string", required: true } } }],
    });
    const seen: Array<Record<string, unknown>> = [];
    const stop = serveHost(host, seen);
    expect((await call("POST", "/v1/providers", { token: admin, json: { id: "cloud", config: { region: "us", apiKey: "sk-secret", image: "base" } } })).status).toBe(201);
    const res = await call("POST", "/v1/environments", { token: admin, json: { name: "c1", provider: "cloud", config: { size: 4 } } });
    expect(res.status, await res.clone().text()).toBe(201);
    const { environment } = (await res.json()) as { environment: { config: Record<string, unknown> } };
    expect(environment.config).toEqual({ region: "us", size: 4, apiKey: "[redacted]", image: "base" });
    expect((seen[0]!.params as { config: Record<string, unknown> }).config).toEqual({ region: "us", size: 4, apiKey: "sk-secret", image: "base" });
    const bad = await expectProblem(await call("POST", "/v1/environments", { token: admin, json: { name: "c2", provider: "cloud", config: { size: "big", colour: "red" } } }), 400);
    expect(bad.detail).toContain("config.size: expected number");
    expect(bad.detail).toContain("config.colour: not a config field");
    const providers = (await (await call("GET", "/v1/providers", { token: admin })).json()) as { providers: Array<{ id: string; offeredBy: Array<{ host: string }> }> };
    expect(providers.providers).toEqual([expect.objectContaining({ id: "cloud", offeredBy: [{ host: "h1", connected: true }] })]);
    stop();
    host.ws.close(1000);
  });

  it("a returning host recovers its live environments by resource id and has its orphans removed", async () => {
    const org = "org-host-return";
    const admin = await userToken({ org });
    const token = await hostToken(admin, "box");
    let host = await connectHost(token, "box", { providers: [{ id: "local" }] });
    const seen: Array<Record<string, unknown>> = [];
    let stop = serveHost(host, seen);
    const live = ((await (await call("POST", "/v1/environments", { token: admin, json: { name: "live", provider: "local" } })).json()) as { environment: { id: string; resourceId: string } }).environment;
    const dead = ((await (await call("POST", "/v1/environments", { token: admin, json: { name: "dead", provider: "local" } })).json()) as { environment: { id: string; resourceId: string } }).environment;
    await call("DELETE", `/v1/environments/${dead.id}`, { token: admin });
    await eventually(async () => seen.some((r) => r.op === "env.teardown"));
    stop();
    host.ws.close(1000);

    // The host comes back still holding both resources (say its teardown was lost with it).
    host = await connectHost(token, "box", {
      providers: [{ id: "local" }],
      resources: [
        { environmentId: live.id, provider: "local", resourceId: live.resourceId },
        { environmentId: dead.id, provider: "local", resourceId: dead.resourceId },
      ],
    });
    const again: Array<Record<string, unknown>> = [];
    stop = serveHost(host, again);
    await eventually(async () => again.length >= 2);
    const ops = again.map((r) => [r.op, (r.params as { environmentId: string }).environmentId]);
    expect(ops).toEqual(expect.arrayContaining([["env.recover", live.id], ["env.teardown", dead.id]]));
    await eventually(async () => {
      const e = (await (await call("GET", `/v1/environments/${dead.id}/events?limit=100`, { token: admin })).json()) as { events: Array<{ type: string }> };
      return e.events.some((x) => x.type === "provider.orphan_removed");
    });
    stop();
    host.ws.close(1000);
  });

  it("host tokens: checked before the registry is touched, limited to their providers, one connection per host", async () => {
    const org = "org-host-tokens";
    const admin = await userToken({ org });
    const operator = await userToken({ org, role: "operator" });
    await expectProblem(await call("POST", "/v1/hosts/tokens", { token: operator, json: { name: "x" } }), 403);
    await expectProblem(await call("GET", "/v1/hosts/connect", { token: admin, headers: { upgrade: "websocket" } }), 403);
    const limited = await hostToken(admin, "limited", ["local"]);
    const host = await connectHost(limited, "limited", { providers: [{ id: "local" }, { id: "docker" }] });
    const list = (await (await call("GET", "/v1/hosts", { token: admin })).json()) as { hosts: Array<{ providers: Array<{ id: string }> }> };
    expect(list.hosts[0]!.providers.map((p) => p.id)).toEqual(["local"]);
    const again = await connectHost(limited, "limited", { providers: [{ id: "local" }] });
    expect((await host.waitClosed()).code).toBe(CLOSE.replaced);
    again.ws.close(1000);
    // A host may only say it is the host its token names.
    const res = await SELF.fetch(`${BASE}/v1/hosts/connect`, { headers: { upgrade: "websocket", authorization: `Bearer ${limited}` } });
    res.webSocket!.accept();
    const impostor = new TestAgent(res.webSocket!);
    impostor.send({ v: 1, kind: "host.hello", protocol: "1.0", host: { name: "other", hostname: "h", version: "t", platform: "linux" }, providers: [], capabilities: [], capacity: { maxEnvironments: 1 }, resources: [] });
    expect((await impostor.waitClosed()).code).toBe(CLOSE.unauthorized);
  });
});
