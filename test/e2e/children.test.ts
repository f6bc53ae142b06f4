/**
 * Hierarchical environments with real agents: from inside a parent granted the spawn scope,
 * `outpost-agent spawn` creates two children (their agents started here with the tokens it
 * printed), work is chained to them, a third child is refused at the limit, and archiving the
 * parent archives the children, whose agents are told so and exit.
 */
import { realpathSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AGENT_BUNDLE, type AgentProcess } from "../../scripts/lib/agent-process.js";
import { connectAgent, startEnvironment } from "./environments.js";
import { exitWithin, startHarness, type Harness } from "./helpers.js";

let h: Harness;
let parentId: string;
beforeAll(async () => {
  h = await startHarness();
  parentId = (await startEnvironment(h, "parent")).id;
}, 120_000);
afterAll(async () => {
  await h?.close();
});

const inside = (args: string[]) => h.admin.exec("parent", { command: [process.execPath, AGENT_BUNDLE, ...args], timeoutMs: 30_000 });

describe("a parent environment and its children", () => {
  it("spawns two children from inside, chains work to them, is held to its limit, and takes them along when archived", async () => {
    expect((await inside(["spawn", "--name", "kid-0", "--provider", "local"])).stderr).toMatch(/403: .*no spawn scope/);
    const granted = await h.admin.request("PUT", "/v1/environments/parent/spawn", { json: { spawn: { maxChildren: 2, providers: ["local"] } } });
    expect(granted.status).toBe(200);
    // The running agent was handed the token that carries the scope over its link; nobody restarts it.
    expect(((await granted.json()) as { delivered: boolean }).delivered).toBe(true);
    const kids: Array<{ id: string; name: string; workspace: string; agent: AgentProcess }> = [];
    for (const name of ["kid-1", "kid-2"]) {
      const r = await inside(["spawn", "--name", name, "--provider", "local"]);
      expect(r.exitCode, r.stderr).toBe(0);
      const { agentToken, environment } = JSON.parse(r.stdout) as { agentToken: string; environment: { id: string } };
      const { workspace } = await h.workspace();
      const { agent } = await connectAgent(h, name, agentToken, workspace);
      expect((await h.admin.request("PUT", `/v1/environments/${name}/gateway`, { json: { accept: true, allowFrom: ["parent"] } })).status).toBe(200);
      kids.push({ id: environment.id, name, workspace: realpathSync(workspace), agent });
    }
    const full = await inside(["spawn", "--name", "kid-3", "--provider", "local"]);
    expect(full).toMatchObject({ exitCode: 1 });
    expect(full.stderr).toMatch(/409: .*maxChildren 2/);

    const fan = await inside(["exec", "--targets", "kid-1,kid-2", "--", "pwd", "-P"]);
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
