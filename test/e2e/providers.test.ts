/**
 * Providers end to end: real `outpost-agent host` processes register with the real control plane,
 * environments are placed on them by provider or by capability, the host creates each environment
 * (a directory, or a git worktree on its own branch) and starts an agent in it, and archiving tears
 * it all down again. Nothing may be left behind.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ProcessGroup } from "../../scripts/lib/process-group.js";
import { startProviderHost } from "../../scripts/lib/provider-host.js";
import { expectProblem, killLeftovers, startHarness, waitFor, type Harness } from "./helpers.js";

let h: Harness;
const hosts: ProcessGroup[] = [];
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await Promise.all(hosts.map((p) => p.stop("SIGTERM", 5_000).catch(() => p.kill())));
  killLeftovers(join(h?.dir ?? "/nonexistent", "hosts")); // the agents the hosts started
  await h?.close();
});

async function startHost(name: string, args: string[]): Promise<ProcessGroup> {
  const host = await startProviderHost({ admin: h.admin, name, dir: join(h.dir, "hosts", name), args });
  hosts.push(host.process);
  return host.process;
}

type Env = { id: string; state: string; host: string | null; provider: string; resourceId: string | null; connected: boolean };
const getEnv = async (id: string) => ((await (await h.admin.request("GET", `/v1/environments/${id}`)).json()) as { environment: Env }).environment;

describe("provider hosts, end to end", () => {
  it("local: placed by capability, created by the host, used, and torn down leaving nothing", async () => {
    await startHost("laptop", ["--providers", "local", "--capabilities", "node"]);
    await startHost("gpu-box", ["--providers", "local", "--capabilities", "gpu"]);
    const res = await h.admin.request("POST", "/v1/environments", { json: { name: "trainer", requires: { capabilities: ["gpu"] } } });
    expect(res.status, await res.clone().text()).toBe(201);
    const { environment } = (await res.json()) as { environment: Env };
    expect(environment).toMatchObject({ host: "gpu-box", provider: "local" });
    const dir = environment.resourceId!;
    expect(dir).toContain(join("hosts", "gpu-box"));
    await waitFor(async () => (await getEnv(environment.id)).state === "running", { timeoutMs: 30_000, what: "the host's agent to connect" });
    expect((await h.admin.exec(environment.id, { command: ["pwd"] })).stdout.trim()).toBe(dir);
    await h.admin.writeFile(environment.id, "note.txt", "hi\n");
    expect(existsSync(join(dir, "note.txt"))).toBe(true);
    const diff = (await (await h.admin.request("GET", `/v1/environments/${environment.id}/diff`)).json()) as { files: Array<{ path: string; status: string }> };
    expect(diff.files).toEqual([expect.objectContaining({ path: "note.txt", status: "added" })]);

    await expectProblem(await h.admin.request("POST", "/v1/environments", { json: { name: "nope", requires: { capabilities: ["qpu"] } } }), 409, "conflict");

    const stopped = (await (await h.admin.request("POST", `/v1/environments/${environment.id}/stop`, { timeoutMs: 40_000 })).json()) as { environment: Env };
    expect(stopped.environment.state).toBe("stopped");
    expect((await h.admin.request("DELETE", `/v1/environments/${environment.id}`)).status).toBe(200);
    await waitFor(() => !existsSync(dir), { timeoutMs: 20_000, what: "the host to remove the environment's directory" });
  });

  it("worktree: a branch per environment from a repository; teardown removes worktree and branch", async () => {
    const repo = join(h.dir, "repo");
    mkdirSync(repo);
    const git = (...args: string[]) => execFileSync("git", ["-C", repo, ...args], { encoding: "utf8" });
    git("init", "-q");
    writeFileSync(join(repo, "README"), "base\n");
    git("add", ".");
    git("-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qm", "base");
    await startHost("dev-box", ["--providers", "worktree"]);
    const res = await h.admin.request("POST", "/v1/environments", { json: { name: "feature", provider: "worktree", config: { repository: repo } } });
    expect(res.status, await res.clone().text()).toBe(201);
    const { environment } = (await res.json()) as { environment: Env };
    expect(environment.host).toBe("dev-box");
    await waitFor(async () => (await getEnv(environment.id)).state === "running", { timeoutMs: 30_000, what: "the worktree's agent to connect" });
    expect((await h.admin.exec(environment.id, { command: ["git", "rev-parse", "--abbrev-ref", "HEAD"] })).stdout.trim()).toBe(`outpost/${environment.id}`);
    expect(git("branch", "--list", `outpost/${environment.id}`)).toContain(environment.id);

    expect((await h.admin.request("DELETE", `/v1/environments/${environment.id}`)).status).toBe(200);
    await waitFor(() => !git("worktree", "list").includes(environment.id) && !git("branch", "--list", `outpost/${environment.id}`).trim(), {
      timeoutMs: 20_000,
      what: "the worktree and its branch to be removed",
    });
    expect(existsSync(environment.resourceId!)).toBe(false);
  });

  it("a host that restarts keeps its environments: they come back by resource id", async () => {
    const host = await startHost("phoenix", ["--providers", "local"]);
    const res = await h.admin.request("POST", "/v1/environments", { json: { name: "survivor", provider: "local", host: "phoenix" } });
    const { environment } = (await res.json()) as { environment: Env };
    await waitFor(async () => (await getEnv(environment.id)).state === "running", { timeoutMs: 30_000, what: "running" });
    await host.stop("SIGTERM", 5_000);
    // Its agent keeps running without the host; kill the agent too, as a crashed machine would.
    killLeftovers(environment.resourceId!);
    await waitFor(async () => !(await getEnv(environment.id)).connected, { timeoutMs: 20_000, what: "the agent to be gone" });
    hosts.splice(hosts.indexOf(host), 1);
    await startHost("phoenix", ["--providers", "local"]);
    await waitFor(async () => (await getEnv(environment.id)).state === "running", { timeoutMs: 30_000, what: "the environment to be recovered" });
    const events = (await (await h.admin.request("GET", `/v1/environments/${environment.id}/events?limit=1000`)).json()) as { events: Array<{ type: string }> };
    expect(events.events.map((e) => e.type)).toContain("provider.recover");
    expect((await h.admin.exec(environment.id, { command: ["true"] })).exitCode).toBe(0);
  });

  it("a team: two hosts in one org with different names, providers and capabilities; placement by name and by requirement", async () => {
    await startHost("alice-laptop", ["--providers", "local,worktree", "--capabilities", "node", "--max-environments", "4"]);
    await startHost("build-server", ["--providers", "local,sandbox", "--capabilities", "python", "--max-environments", "8"]);
    type HostRow = { name: string; connected: boolean; providers: Array<{ id: string; category: string }>; capabilities: string[]; environments: number; maxEnvironments: number };
    const team = async () =>
      ((await (await h.admin.request("GET", "/v1/hosts")).json()) as { hosts: HostRow[] }).hosts
        .filter((x) => x.name === "alice-laptop" || x.name === "build-server")
        .sort((a, b) => a.name.localeCompare(b.name));
    // The registry: each host with its providers, capabilities and load.
    expect((await team()).map((x) => [x.name, x.connected, x.providers.map((p) => `${p.id}:${p.category}`).sort(), x.capabilities.includes("python"), x.capabilities.includes("node"), x.environments, x.maxEnvironments])).toEqual([
      ["alice-laptop", true, ["local:local", "worktree:local"], false, true, 0, 4],
      ["build-server", true, ["local:local", "sandbox:local"], true, false, 0, 8],
    ]);
    const create = async (body: Record<string, unknown>) => {
      const res = await h.admin.request("POST", "/v1/environments", { json: body });
      expect(res.status, await res.clone().text()).toBe(201);
      return ((await res.json()) as { environment: Env }).environment;
    };
    // The same provider on both: the name decides.
    const pinned = await create({ name: "team-pinned", provider: "local", host: "build-server" });
    expect(pinned.host).toBe("build-server");
    // A requirement only one host meets decides.
    const needsPython = await create({ name: "team-python", requires: { capabilities: ["python"] } });
    expect(needsPython.host).toBe("build-server");
    const needsNode = await create({ name: "team-node", provider: "local", requires: { capabilities: ["node"] } });
    expect(needsNode.host).toBe("alice-laptop");
    // A pinned host that does not offer the provider, or lacks a capability: 409 naming why.
    const refused = await expectProblem(await h.admin.request("POST", "/v1/environments", { json: { name: "team-no", provider: "worktree", host: "build-server" } }), 409, "conflict");
    expect(refused.detail).toContain("build-server");
    await expectProblem(await h.admin.request("POST", "/v1/environments", { json: { name: "team-no2", host: "alice-laptop", requires: { capabilities: ["python"] } } }), 409, "conflict");
    for (const env of [pinned, needsPython, needsNode]) {
      await waitFor(async () => (await getEnv(env.id)).state === "running", { timeoutMs: 30_000, what: `${env.id} on ${env.host} to run` });
      expect((await h.admin.exec(env.id, { command: ["pwd"] })).stdout.trim()).toContain(join("hosts", env.host!));
    }
    // The load each host reports: two environments on build-server, one on alice-laptop.
    await waitFor(async () => (await team()).map((x) => x.environments).join() === "1,2", { timeoutMs: 20_000, what: "each host to report its load" });
    for (const env of [pinned, needsPython, needsNode]) {
      expect((await h.admin.request("DELETE", `/v1/environments/${env.id}`)).status).toBe(200);
      await waitFor(() => !existsSync(env.resourceId!), { timeoutMs: 20_000, what: `${env.resourceId} to be removed` });
    }
    await waitFor(async () => (await team()).map((x) => x.environments).join() === "0,0", { timeoutMs: 20_000, what: "each host's load to drop to zero" });
  });
});
