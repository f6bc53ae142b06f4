/**
 * Execution chaining end to end: one control plane, six real agents (a … f), work
 * forwarded between them by DO RPC in every topology the issue names, and from inside an
 * environment through the agent's local endpoint (`outpost-agent exec`); then, on the same control
 * plane, a parent that spawns children from inside and chains work to them.
 */
import { realpathSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AGENT_BUNDLE, type AgentProcess } from "../../scripts/lib/agent-process.js";
import { pidAlive } from "../../scripts/lib/processes.js";
import { readUntilPid, SLEEPER } from "./chaining-helpers.js";
import { connectAgent, startEnvironment, type Started } from "./environments.js";
import { exitWithin, expectProblem, startHarness, waitFor, type Harness } from "./helpers.js";

let h: Harness;
const envs: Record<string, Started> = {};
const NAMES = ["a", "b", "c", "d", "e", "f"];

beforeAll(async () => {
  // Quiet forward streams get a keepalive line every 300 ms: that is how a gone client is noticed.
  h = await startHarness({ vars: { OUTPOST_FORWARD_KEEPALIVE_MS: "300" } });
  for (const name of NAMES) envs[name] = await startEnvironment(h, name, { gateway: { capabilities: name === "d" ? ["gpu"] : [] } });
}, 180_000);
afterAll(async () => {
  await h?.close();
});

const forward = (from: string, body: unknown, ndjson = false) =>
  h.admin.request("POST", `/v1/environments/${from}/forward`, { json: body, headers: ndjson ? { accept: "application/x-ndjson" } : {}, timeoutMs: 60_000 });
const json = async (res: Response) => {
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return JSON.parse(text) as Record<string, unknown> & { results: Array<Record<string, unknown>> };
};
const routes = (name: string, rules: unknown[]) => h.admin.request("PUT", `/v1/environments/${name}/routes`, { json: { rules } });
const PWD = ["pwd", "-P"];

describe("execution chaining between real agents", () => {
  it("a linear chain a → b → c → d returns d's output to a, in order", async () => {
    const script = "for i in 1 2 3 4 5 6 7 8; do echo line $i; done; pwd -P; echo done >&2";
    const res = await forward("a", { exec: { command: ["sh", "-c", script] }, route: ["b", "c", "d"] }, true);
    expect(res.status).toBe(200);
    const lines = (await res.text()).split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({ type: "started" });
    const stdout = lines.filter((l) => l.type === "stdout").map((l) => l.data).join("");
    expect(stdout).toBe(`${[1, 2, 3, 4, 5, 6, 7, 8].map((i) => `line ${i}\n`).join("")}${envs.d!.workspace}\n`);
    expect(lines.filter((l) => l.type === "stderr").map((l) => l.data).join("")).toBe("done\n");
    expect(lines.at(-1)).toMatchObject({ type: "exit", exitCode: 0, route: ["a", "b", "c", "d"] });
  });

  it("fans out to three targets with a result and output per target", async () => {
    const body = await json(await forward("a", { exec: { command: PWD }, targets: ["b", "c", "d"] }));
    const byTarget = Object.fromEntries(body.results.map((r) => [r.target, r]));
    for (const t of ["b", "c", "d"]) expect(byTarget[t]).toMatchObject({ ok: true, exitCode: 0, stdout: `${envs[t]!.workspace}\n`, route: ["a", t] });
  });

  it("a tree: a fans out to b and c, and b's own rules send the work on to d", async () => {
    expect((await routes("b", [{ match: "tree", to: "d" }])).status).toBe(200);
    const body = await json(await forward("a", { type: "tree", exec: { command: PWD }, targets: ["b", "c"] }));
    const byTarget = Object.fromEntries(body.results.map((r) => [r.target, r]));
    expect(byTarget.b).toMatchObject({ ok: true, stdout: `${envs.d!.workspace}\n`, route: ["a", "b", "d"] });
    expect(byTarget.c).toMatchObject({ ok: true, stdout: `${envs.c!.workspace}\n`, route: ["a", "c"] });
  });

  it("a mesh a → b → c → a: the loop is refused with a clear error", async () => {
    await routes("a", [{ match: "mesh", to: "b" }]);
    await routes("b", [{ match: "mesh", to: "c" }]);
    await routes("c", [{ match: "mesh", to: "a" }]);
    const p = await expectProblem(await forward("a", { type: "mesh", exec: { command: ["true"] } }), 409, "loop_detected");
    expect(p.detail).toBe("Loop refused: a → b → c → a comes back to environment 'a'.");
    // Across the mesh the other way, work that does not loop goes through.
    const ok = await json(await forward("c", { exec: { command: PWD }, route: ["b", "a"] }));
    expect(ok).toMatchObject({ exitCode: 0, stdout: `${envs.a!.workspace}\n`, route: ["c", "b", "a"] });
  });

  it("a hub: spokes send jobs to b, which routes each by its action", async () => {
    await routes("b", [{ match: "job:c", to: "c" }, { match: "job:d", to: "d" }]);
    await routes("a", [{ match: "job", to: "b" }]);
    // c is a spoke and a destination: its own jobs stay (the more specific rule wins).
    await routes("c", [{ match: "job", to: "b" }, { match: "job:c", to: "local" }]);
    expect(await json(await forward("a", { type: "job:d", exec: { command: PWD } }))).toMatchObject({ stdout: `${envs.d!.workspace}\n`, route: ["a", "b", "d"] });
    expect(await json(await forward("a", { type: "job:c", exec: { command: PWD } }))).toMatchObject({ stdout: `${envs.c!.workspace}\n`, route: ["a", "b", "c"] });
    expect(await json(await forward("c", { type: "job:d", exec: { command: PWD } }))).toMatchObject({ stdout: `${envs.d!.workspace}\n`, route: ["c", "b", "d"] });
  });

  it("routes by capability, and forwards file operations and runs", async () => {
    expect(await json(await forward("a", { exec: { command: PWD }, target: { capability: "gpu" } }))).toMatchObject({ stdout: `${envs.d!.workspace}\n`, route: ["a", "d"] });
    await routes("a", [{ match: "inference", to: { capability: "gpu" } }]);
    expect(await json(await forward("a", { type: "inference:generate", exec: { command: PWD } }))).toMatchObject({ route: ["a", "d"] });
    await expectProblem(await forward("a", { exec: { command: PWD }, target: { capability: "tpu" } }), 404, "not_found");
    await h.admin.writeFile("c", "notes.txt", "chained");
    expect(await json(await forward("a", { file: { op: "stat", params: { path: "notes.txt" } }, target: "c" }))).toMatchObject({ ok: true, result: { path: "notes.txt", size: 7 }, route: ["a", "c"] });
    const run = await json(await forward("a", { run: { agent: { command: ["sh", "-c", "echo ran"] } }, route: ["b", "c"] }));
    expect(run).toMatchObject({ ok: true, result: { environmentId: envs.c!.id }, route: ["a", "b", "c"] });
  });

  it("from inside a: outpost-agent exec reaches other environments through the agent's endpoint", async () => {
    const inside = (args: string[]) => h.admin.exec("a", { command: [process.execPath, AGENT_BUNDLE, "exec", ...args], timeoutMs: 30_000 });
    expect(await inside(["--route", "b,c", "--", "pwd", "-P"])).toMatchObject({ exitCode: 0, stdout: `${envs.c!.workspace}\n` });
    expect(await inside(["--target", "d", "--", "sh", "-c", "echo out; echo err >&2; exit 3"])).toMatchObject({ exitCode: 3, stdout: "out\n", stderr: "err\n" });
    const fan = await inside(["--targets", "b,d", "--", "echo", "hi"]);
    expect(fan.exitCode).toBe(0);
    expect(fan.stdout.split("\n").sort()).toEqual(["", "[b] hi", "[d] hi"]);
    const refused = await inside(["--target", "a", "--", "true"]);
    expect(refused).toMatchObject({ exitCode: 125 });
    expect(refused.stderr).toMatch(/Loop refused/);
  });

  it("a custom type with a payload runs the destination's own handler for it, the sender knowing only the type", async () => {
    const handler = { command: ["sh", "-c", 'echo "$OUTPOST_REQUEST_TYPE from $OUTPOST_FORWARD_ORIGIN in $(pwd -P)"; cat'] };
    const gate = await h.admin.request("PUT", "/v1/environments/d/gateway", { json: { accept: true, allowFrom: ["*"], capabilities: ["gpu"], handlers: { inference: handler } } });
    expect(gate.status).toBe(200);
    await routes("a", [{ match: "inference", to: { capability: "gpu" } }]);
    const payload = { prompt: "hi", n: 2 };
    const expected = (origin: string) => `inference:generate from ${origin} in ${envs.d!.workspace}\n${JSON.stringify(payload)}`;
    // By a's rules (to whoever has a gpu: d), by an explicit target, and on through b's own rules.
    expect(await json(await forward("a", { type: "inference:generate", payload }))).toMatchObject({ ok: true, exitCode: 0, stdout: expected("a"), route: ["a", "d"] });
    expect(await json(await forward("c", { type: "inference:generate", payload, target: "d" }))).toMatchObject({ ok: true, stdout: expected("c"), route: ["c", "d"] });
    await routes("b", [{ match: "inference", to: "d" }]);
    expect(await json(await forward("a", { type: "inference:generate", payload, target: "b" }))).toMatchObject({ ok: true, stdout: expected("a"), route: ["a", "b", "d"] });
    // Where no handler is declared, the request is refused naming that environment.
    const none = await expectProblem(await forward("a", { type: "inference:generate", payload, target: "c" }), 404, "not_found");
    expect(none.detail).toBe("Hop 'c' has no handler for request type 'inference:generate' (its gateway declares none).");
    await expectProblem(await forward("a", { type: "exec", payload, target: "d" }), 400, "bad_request");
    // From inside a, through its agent's endpoint.
    const inside = await h.admin.exec("a", { command: [process.execPath, AGENT_BUNDLE, "exec", "--type", "inference:generate", "--payload", JSON.stringify(payload), "--target", "d"], timeoutMs: 30_000 });
    expect(inside).toMatchObject({ exitCode: 0, stdout: expected("a") });
  });

  it("cancel at the origin kills the process at the leaf", async () => {
    const run = await readUntilPid(await forward("a", { exec: { command: SLEEPER }, route: ["b", "c"] }, true));
    expect(pidAlive(run.pid)).toBe(true);
    const cancelled = await h.admin.request("POST", `/v1/environments/a/forward/${run.forwardId}/cancel`);
    expect(await cancelled.json()).toEqual({ cancelled: true, hops: 1 });
    await waitFor(() => !pidAlive(run.pid), { timeoutMs: 15_000, what: `leaf process ${run.pid} to end` });
    expect((await run.rest()).trim().split("\n").at(-1)).toContain('"cancelled":true');
  });

  it("an origin client that goes away mid-stream cancels the work down to the leaf", async () => {
    const client = new AbortController();
    const res = await h.admin.request("POST", "/v1/environments/a/forward", { json: { exec: { command: SLEEPER }, route: ["b", "c"] }, headers: { accept: "application/x-ndjson" }, timeoutMs: 0, signal: client.signal });
    const run = await readUntilPid(res);
    expect(pidAlive(run.pid)).toBe(true);
    client.abort();
    await waitFor(() => !pidAlive(run.pid), { timeoutMs: 15_000, what: `leaf process ${run.pid} to end after the origin client went away` });
    const events = (await (await h.admin.request("GET", "/v1/environments/c/events")).json()) as { events: Array<{ type: string; data: Record<string, unknown> }> };
    expect(events.events.filter((e) => e.type === "forward.cancelled").map((e) => e.data.forwardId)).toContain(run.forwardId);
  });

  it("a leaf whose agent holds its link open but has stopped fails at the origin within the bound, naming it", async () => {
    expect((await h.admin.request("PUT", "/v1/environments/a/routes", { json: { rules: [], ackTimeoutMs: 1_000 } })).status).toBe(200);
    envs.f!.agent.signal("SIGSTOP");
    try {
      const p = (await expectProblem(await forward("a", { exec: { command: ["true"] }, route: ["b", "f"] }), 504, "timeout")) as { detail: string; hop?: string; route?: string[] };
      expect(p.detail).toBe("Hop 'f' failed: its agent is connected but did not acknowledge the request within 1000 ms");
      expect(p).toMatchObject({ hop: "f", route: ["a", "b", "f"] });
    } finally {
      envs.f!.agent.signal("SIGCONT");
      await h.admin.request("PUT", "/v1/environments/a/routes", { json: { rules: [] } });
    }
  });

  it("a dead middle hop produces a clear error naming it", async () => {
    await envs.e!.agent.stop("SIGTERM", 5_000);
    await h.admin.waitForEnvironment("e", (x) => !x.connected, { timeoutMs: 15_000 });
    const p = await expectProblem(await forward("a", { exec: { command: ["true"] }, route: ["e", "d"] }), 409, "agent_not_connected");
    expect(p.detail).toMatch(/^Hop 'e' cannot pass the request on: No agent is connected to environment 'e'/);
    const inactive = await expectProblem(await forward("a", { exec: { command: ["true"] }, target: "nope" }), 404, "not_found");
    expect(inactive.detail).toMatch(/'nope'/);
  });
});

const insideParent = (args: string[]) => h.admin.exec("parent", { command: [process.execPath, AGENT_BUNDLE, ...args], timeoutMs: 30_000 });

/**
 * Hierarchical environments with real agents, on this file's control plane: from inside a parent
 * granted the spawn scope, `outpost-agent spawn` creates two children (their agents started here
 * with the tokens it printed), work is chained to them, a third child is refused at the limit, and
 * archiving the parent archives the children, whose agents are told so and exit.
 */
describe("a parent environment and its children", () => {
  let parentId: string;
  beforeAll(async () => {
    parentId = (await startEnvironment(h, "parent")).id;
  }, 120_000);

  it("spawns two children from inside, chains work to them, is held to its limit, and takes them along when archived", async () => {
    expect((await insideParent(["spawn", "--name", "kid-0", "--provider", "local"])).stderr).toMatch(/403: .*no spawn scope/);
    const granted = await h.admin.setSpawnScope("parent", { maxChildren: 2, providers: ["local"] });
    // The running agent was handed the token that carries the scope over its link; nobody restarts it.
    expect(granted.delivered).toBe(true);
    const kids: Array<{ id: string; name: string; workspace: string; agent: AgentProcess }> = [];
    for (const name of ["kid-1", "kid-2"]) {
      const r = await insideParent(["spawn", "--name", name, "--provider", "local"]);
      expect(r.exitCode, r.stderr).toBe(0);
      const { agentToken, environment } = JSON.parse(r.stdout) as { agentToken: string; environment: { id: string } };
      const { workspace } = await h.workspace();
      const { agent } = await connectAgent(h, name, agentToken, workspace);
      await h.admin.setGateway(name, { accept: true, allowFrom: ["parent"] });
      kids.push({ id: environment.id, name, workspace: realpathSync(workspace), agent });
    }
    const full = await insideParent(["spawn", "--name", "kid-3", "--provider", "local"]);
    expect(full).toMatchObject({ exitCode: 1 });
    expect(full.stderr).toMatch(/409: .*maxChildren 2/);

    const fan = await insideParent(["exec", "--targets", "kid-1,kid-2", "--", "pwd", "-P"]);
    expect(fan.exitCode, fan.stderr).toBe(0);
    expect(fan.stdout.trim().split("\n").sort()).toEqual(kids.map((k) => `[${k.name}] ${k.workspace}`).sort());

    const tree = (await (await h.admin.request("GET", "/v1/environments/parent/children")).json()) as { tree: { children: Array<{ name: string }> } };
    expect(tree.tree.children.map((c) => c.name).sort()).toEqual(["kid-1", "kid-2"]);
    for (const k of kids) expect((await h.admin.getEnvironment(k.id)).parent).toMatchObject({ name: "parent" });

    expect((await h.admin.request("DELETE", "/v1/environments/parent")).status).toBe(200);
    for (const k of kids) {
      expect((await h.admin.getEnvironment(k.id)).state).toBe("archived");
      expect((await exitWithin(k.agent, 15_000)).code).toBe(3); // told its environment is archived
    }
    const types = async (env: string) => ((await (await h.admin.request("GET", `/v1/environments/${env}/events?limit=500`)).json()) as { events: Array<{ type: string }> }).events.map((e) => e.type);
    expect(await types(parentId)).toEqual(expect.arrayContaining(["spawn.granted", "agent.token_renewed", "child.spawned", "child.archived"]));
    for (const k of kids) expect(await types(k.id)).toEqual(expect.arrayContaining(["environment.spawned_by", "parent.archived"]));
  });
});
