/**
 * `outpost-agent host` as a real process (the CLI from source) against a stand-in host registry on
 * 127.0.0.1, with the agents it starts dialing a stand-in edge: hello, create, recover, teardown,
 * status, errors, heartbeats, and a restart on the same state file.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { processesIn } from "../../provider-agent/src/host/processes.js";
import { agentToken, tempDir, TestEdge, waitFor, type EdgeConnection } from "./helpers.js";
import { cliSource, git, gitRepo, hostToken, repoRoot, TestRegistry, tsxImport, type Frame } from "./host-helpers.js";
import { pidAlive } from "../../scripts/lib/processes.js";

const ENV_A = "env_aaaaaaaaaaaaaaaaaaaa";
const ENV_B = "env_bbbbbbbbbbbbbbbbbbbb";
const ENV_C = "env_cccccccccccccccccccc";
const HOST_TOKEN = hostToken();

type Outcome = { code: number | null; stdout: string; stderr: string };
type HostProcess = { child: ChildProcess; done: Promise<Outcome>; stderr: () => string };

let base: { dir: string; cleanup: () => Promise<void> };
const children: ChildProcess[] = [];
const closers: Array<() => Promise<void>> = [];

beforeEach(async () => {
  base = await tempDir("outpost-hostproc-");
});
afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const pid of await processesIn(base.dir)) process.kill(pid, "SIGKILL");
  // Agents started by a host run in the host's working directory (the repo), not in base.dir: find them by their runtime dir.
  for (const close of closers.splice(0)) await close();
  await base.cleanup();
});

function startHost(args: string[], env: Record<string, string> = {}, program: string[] = [...tsxImport, cliSource]): HostProcess {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("OUTPOST_") && k !== "XDG_STATE_HOME" && k !== "XDG_DATA_HOME"));
  const child = spawn(process.execPath, [...program, "host", ...args], {
    cwd: repoRoot,
    env: { ...inherited, XDG_STATE_HOME: path.join(base.dir, "xdg-state"), XDG_DATA_HOME: path.join(base.dir, "xdg-data"), ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Outcome>((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
  return { child, done, stderr: () => stderr };
}

const runHost = (args: string[], env: Record<string, string> = {}) => startHost(args, env).done;

async function registry(options: { heartbeatMs?: number; token?: string } = {}): Promise<TestRegistry> {
  const r = await TestRegistry.start({ token: options.token ?? HOST_TOKEN, heartbeatMs: options.heartbeatMs ?? 10_000 });
  closers.push(() => r.close());
  return r;
}

async function edge(): Promise<TestEdge> {
  const e = await TestEdge.start();
  closers.push(() => e.close());
  return e;
}

/** Kills the agents a host left running (they outlive it on purpose). */
function killAgentsOf(runtimeRoot: string): void {
  for (const env of [ENV_A, ENV_B, ENV_C]) {
    const file = path.join(runtimeRoot, env, "agent.pid");
    if (!existsSync(file)) continue;
    const { pid } = JSON.parse(readFileSync(file, "utf8")) as { pid: number };
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // gone
    }
  }
}

/** The edge connection of environment `id`'s agent, the `nth` one it made. */
function agentConnection(e: TestEdge, id: string, nth = 0, timeoutMs = 20_000): Promise<EdgeConnection> {
  return e.until(() => e.connections.filter((c) => c.request.url === `/v1/environments/${id}/connect`)[nth], timeoutMs, `agent connection ${nth} of ${id}`);
}

const unlessExited = <T>(h: HostProcess, work: Promise<T>): Promise<T> =>
  Promise.race([work, h.done.then((r) => Promise.reject(new Error(`the host exited (${r.code}):\n${r.stderr.slice(-4000)}`)))]);

describe("outpost-agent host: usage", () => {
  it("--help prints usage with flags, env vars, providers, examples and exit codes", async () => {
    const r = await runHost(["--help"]);
    expect(r.code).toBe(0);
    for (const text of [
      "Usage:",
      "outpost-agent host --url URL --token HOST_TOKEN",
      "--providers",
      "--provider-dir",
      "--capabilities",
      "--max-environments",
      "--root",
      "--state-file",
      "OUTPOST_URL",
      "OUTPOST_HOST_TOKEN",
      "local",
      "worktree",
      "Examples:",
      "Exit codes:",
    ]) {
      expect(r.stdout).toContain(text);
    }
  });

  it("the agent's own --help points at host mode", async () => {
    const child = spawn(process.execPath, [...tsxImport, cliSource, "--help"], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    await new Promise((r) => child.on("close", r));
    expect(out).toContain("outpost-agent host --help");
  });

  it.each([
    ["a missing token", ["--url", "http://127.0.0.1:1"], {}, /missing --token/],
    ["a missing url", [], { OUTPOST_HOST_TOKEN: HOST_TOKEN }, /missing --url/],
    ["an agent token", ["--url", "http://127.0.0.1:1", "--token", agentToken()], {}, /host token is malformed/],
    ["a token for another audience", ["--url", "http://127.0.0.1:1", "--token", hostToken({ sub: "box", org: "acme", aud: "outpost:api" })], {}, /host token is malformed/],
    ["an unknown provider", ["--url", "http://127.0.0.1:1", "--providers", "local,kubernetes"], { OUTPOST_HOST_TOKEN: HOST_TOKEN }, /unknown provider\(s\): kubernetes/],
    ["a provider the token does not allow", ["--url", "http://127.0.0.1:1", "--providers", "worktree"], { OUTPOST_HOST_TOKEN: hostToken({ sub: "box", org: "acme", providers: ["local"] }) }, /does not allow provider\(s\) worktree/],
    ["a bad capability", ["--url", "http://127.0.0.1:1", "--capabilities", "python,GPU"], { OUTPOST_HOST_TOKEN: HOST_TOKEN }, /capability 'GPU'/],
    ["a bad --max-environments", ["--url", "http://127.0.0.1:1", "--max-environments", "0"], { OUTPOST_HOST_TOKEN: HOST_TOKEN }, /--max-environments/],
    ["a broken provider directory", ["--url", "http://127.0.0.1:1", "--provider-dir", "/nonexistent/provider"], { OUTPOST_HOST_TOKEN: HOST_TOKEN }, /cannot load the providers:\n.*outpost-provider\.yaml: cannot read/],
    ["an unknown flag", ["--bogus"], {}, /bogus/],
  ])("exits 2 on %s, explaining on stderr", async (_name, args, env, message) => {
    const r = await runHost(args, env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it("exits 3 when the control plane refuses the host token", async () => {
    const reg = await registry({ token: "some-other-token" });
    const r = await runHost(["--url", reg.url, "--root", path.join(base.dir, "root")], { OUTPOST_HOST_TOKEN: HOST_TOKEN });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/refused the connection: HTTP 401 bad host token/);
  });

  it("exits 2 when another host process holds the state file", async () => {
    const reg = await registry();
    const stateFile = path.join(base.dir, "state", "host.json");
    const args = ["--url", reg.url, "--root", path.join(base.dir, "root"), "--state-file", stateFile];
    const first = startHost(args, { OUTPOST_HOST_TOKEN: HOST_TOKEN });
    await unlessExited(first, reg.hello(0));
    const second = await runHost(args, { OUTPOST_HOST_TOKEN: HOST_TOKEN });
    expect(second.code).toBe(2);
    expect(second.stderr).toMatch(/in use by another host process \(pid \d+\)/);
    first.child.kill("SIGTERM");
    expect((await first.done).code).toBe(0);
  });
});

describe("outpost-agent host against a registry", () => {
  it("creates, recovers and tears down environments on request, and reports its resources again after a restart", async () => {
    const reg = await registry({ heartbeatMs: 200 });
    const agents = await edge();
    const root = path.join(base.dir, "root");
    const stateFile = path.join(base.dir, "state", "host-box-1.json");
    const runtimeRoot = path.join(base.dir, "state", "host-box-1");
    closers.push(async () => killAgentsOf(runtimeRoot));
    const repository = gitRepo(path.join(base.dir, "repo"));
    const args = ["--url", reg.url, "--providers", "local,worktree", "--capabilities", "python,gpu", "--max-environments", "2", "--root", root, "--state-file", stateFile];
    const host = startHost(args, { OUTPOST_HOST_TOKEN: HOST_TOKEN });

    // hello: who, what, how much, and nothing managed yet.
    const hello = await unlessExited(host, reg.hello(0));
    expect(reg.connections[0]!.request.headers.authorization).toBe(`Bearer ${HOST_TOKEN}`);
    expect(hello).toMatchObject({
      v: 1,
      kind: "host.hello",
      protocol: "1.0",
      host: { name: "box-1", version: "0.1.0" },
      capabilities: ["git", "gpu", "python"],
      capacity: { maxEnvironments: 2 },
      resources: [],
    });
    const providers = hello.providers as Array<Record<string, unknown>>;
    expect(providers.map((p) => p.id)).toEqual(["local", "worktree"]);
    expect(providers[1]).toMatchObject({ name: "Git worktree", version: "0.1.0", category: "local", capabilities: ["git"], config: { repository: { type: "string", required: true } } });
    // Heartbeats: bare pings at the welcome's interval.
    await unlessExited(host, reg.until(() => reg.connections[0]!.pings >= 2, 5_000, "two pings"));

    // env.create (local): the agent dials the edge with its own token; host.status follows.
    const tokenA = agentToken({ sub: ENV_A, org: "acme", gen: 1 });
    const createA = await unlessExited(host, reg.request("env.create", { environmentId: ENV_A, provider: "local", config: {}, agentToken: tokenA, url: agents.url }));
    const dirA = path.join(root, ENV_A);
    expect(createA).toMatchObject({ kind: "host.reply", ok: true, result: { resourceId: dirA } });
    const connA = await agentConnection(agents, ENV_A);
    expect(connA.request.headers.authorization).toBe(`Bearer ${tokenA}`);
    await reg.until(() => reg.framesOf("host.status").length >= 1, 5_000, "host.status");
    expect(reg.framesOf("host.status")[0]).toEqual({ v: 1, kind: "host.status", environments: 1, resources: [{ environmentId: ENV_A, provider: "local", resourceId: dirA }] });
    // The agent's environment carries its own token, never the host's.
    const pidA = (JSON.parse(readFileSync(path.join(runtimeRoot, ENV_A, "agent.pid"), "utf8")) as { pid: number }).pid;
    const environ = readFileSync(`/proc/${pidA}/environ`, "utf8");
    expect(environ).toContain(`OUTPOST_AGENT_TOKEN=${tokenA}`);
    expect(environ).not.toContain(HOST_TOKEN);

    // The same request id again: the same reply, nothing done twice.
    const again = await reg.request("env.create", null, 60_000, { v: 1, kind: "host.request", id: createA.re, op: "env.create", params: { environmentId: ENV_A, provider: "local", config: {}, agentToken: tokenA, url: agents.url }, timeoutMs: 60_000 });
    expect(again).toEqual(createA);

    // env.create (worktree).
    const tokenB = agentToken({ sub: ENV_B, org: "acme", gen: 1 });
    const createB = await reg.request("env.create", { environmentId: ENV_B, provider: "worktree", config: { repository }, agentToken: tokenB, url: agents.url });
    const dirB = path.join(root, ENV_B);
    expect(createB).toMatchObject({ ok: true, result: { resourceId: dirB } });
    await agentConnection(agents, ENV_B);
    expect(git(repository, "worktree", "list", "--porcelain")).toContain(`worktree ${dirB}`);

    // Errors are structured, one reply each.
    const tokenC = agentToken({ sub: ENV_C, org: "acme", gen: 1 });
    const full = await reg.request("env.create", { environmentId: ENV_C, provider: "local", config: {}, agentToken: tokenC, url: agents.url });
    expect(full).toMatchObject({ ok: false, error: { code: "conflict", message: expect.stringMatching(/at capacity \(2 environments\)/), details: { maxEnvironments: 2, environments: 2 } } });
    const unknownProvider = await reg.request("env.create", { environmentId: ENV_C, provider: "docker", config: {}, agentToken: tokenC, url: agents.url });
    expect(unknownProvider).toMatchObject({ ok: false, error: { code: "not_found", message: expect.stringContaining("does not offer provider 'docker'") } });
    const badConfig = await reg.request("env.recover", { environmentId: ENV_B, provider: "worktree", config: { repository: 7 }, agentToken: tokenB, url: agents.url, resourceId: dirB });
    expect(badConfig).toMatchObject({ ok: false, error: { code: "bad_request", details: { errors: ["environment.repository: expected string, got number", "repository: required"] } } });
    // A bad request is no failed recovery: the environment is untouched.
    expect(existsSync(dirB)).toBe(true);
    const badParams = await reg.request("env.create", { environmentId: ENV_C, provider: "local" });
    expect(badParams).toMatchObject({ ok: false, error: { code: "bad_request", message: expect.stringMatching(/invalid params for env\.create: .*agentToken/) } });
    const badId = await reg.request("env.teardown", { environmentId: "../../etc", provider: "local", resourceId: "/etc" });
    expect(badId).toMatchObject({ ok: false, error: { code: "bad_request" } });
    const badOp = await reg.request("env.explode", {}, 5_000);
    expect(badOp).toMatchObject({ ok: false, error: { code: "bad_request", message: expect.stringContaining("malformed host.request") } });
    const notMine = await reg.request("env.recover", { environmentId: ENV_C, provider: "local", config: {}, agentToken: tokenC, url: agents.url, resourceId: "/etc" });
    expect(notMine).toMatchObject({ ok: true, result: { resourceId: "/etc", recovered: false } });
    expect(existsSync("/etc")).toBe(true);
    const nothing = await reg.request("env.teardown", { environmentId: ENV_C, provider: "local", resourceId: null });
    expect(nothing).toMatchObject({ ok: true, result: { removed: false } });

    // Stopping the host leaves the environments running.
    host.child.kill("SIGTERM");
    expect((await host.done).code).toBe(0);
    expect((await reg.connections[0]!.closed).code).toBe(1000);
    expect(pidAlive(pidA)).toBe(true);
    expect(connA.ws.readyState).toBe(connA.ws.OPEN);

    // Restarted on the same state file: its hello reports what it still manages.
    const host2 = startHost(args, { OUTPOST_HOST_TOKEN: HOST_TOKEN });
    const hello2 = await unlessExited(host2, reg.hello(1));
    expect(hello2.resources).toEqual([
      { environmentId: ENV_A, provider: "local", resourceId: dirA },
      { environmentId: ENV_B, provider: "worktree", resourceId: dirB },
    ]);
    expect(host2.stderr()).toMatch(new RegExp(`environment ${ENV_A} \\(local ${dirA}\\): running \\(agent pid ${pidA}\\)`));

    // The agent of A dies; env.recover brings it back, and it dials again.
    process.kill(-pidA, "SIGKILL");
    await waitFor(() => !pidAlive(pidA), 5_000, "agent A to die");
    const recoverA = await reg.request("env.recover", { environmentId: ENV_A, provider: "local", config: {}, agentToken: tokenA, url: agents.url, resourceId: dirA });
    expect(recoverA).toMatchObject({ ok: true, result: { resourceId: dirA, recovered: true } });
    await agentConnection(agents, ENV_A, 1);

    // The control plane says B is gone: worktree, branch, agent and runtime directory go.
    const statuses = reg.framesOf("host.status").length;
    const teardownB = await reg.request("env.teardown", { environmentId: ENV_B, provider: "worktree", resourceId: dirB });
    expect(teardownB).toMatchObject({ ok: true, result: { removed: true } });
    expect(existsSync(dirB)).toBe(false);
    expect(git(repository, "worktree", "list", "--porcelain")).not.toContain(dirB);
    expect(git(repository, "branch", "--list", `outpost/${ENV_B}`)).toBe("");
    expect(existsSync(path.join(runtimeRoot, ENV_B))).toBe(false);
    await reg.until(() => reg.framesOf("host.status").length > statuses, 5_000, "host.status after teardown");
    expect(reg.framesOf("host.status").at(-1)).toMatchObject({ environments: 1, resources: [{ environmentId: ENV_A }] });

    // Recovery that fails (the agent dies again and cannot start): the resource is cleaned up and the reply says so.
    const pidA2 = (JSON.parse(readFileSync(path.join(runtimeRoot, ENV_A, "agent.pid"), "utf8")) as { pid: number }).pid;
    process.kill(-pidA2, "SIGKILL");
    await waitFor(() => !pidAlive(pidA2), 5_000, "agent A to die again");
    const failing = await reg.request("env.recover", { environmentId: ENV_A, provider: "local", config: {}, agentToken: tokenA, url: "not a url", resourceId: dirA });
    expect(failing).toMatchObject({
      ok: false,
      error: { code: "internal", message: expect.stringMatching(/^recovery failed: the agent stopped at once/), details: { resourceId: dirA, cleanup: { outcome: "removed" } } },
    });
    expect(existsSync(dirA)).toBe(false);
    expect(existsSync(path.join(runtimeRoot, ENV_A))).toBe(false);
    expect(reg.framesOf("host.status").at(-1)).toMatchObject({ environments: 0, resources: [] });
    expect(JSON.parse(readFileSync(stateFile, "utf8"))).toEqual({ host: "box-1", resources: [] });
    expect(await processesIn(root)).toEqual([]);

    host2.child.kill("SIGTERM");
    expect((await host2.done).code).toBe(0);
    expect(existsSync(`${stateFile}.lock`)).toBe(false);
  }, 120_000);

  it("sends a reply finished while the link was down after the next welcome, and reconnects after a cut", async () => {
    const reg = await registry();
    const agents = await edge();
    const root = path.join(base.dir, "root");
    const stateFile = path.join(base.dir, "state", "host-box-1.json");
    closers.push(async () => killAgentsOf(path.join(base.dir, "state", "host-box-1")));
    const host = startHost(["--url", reg.url, "--providers", "local", "--root", root, "--state-file", stateFile], { OUTPOST_HOST_TOKEN: HOST_TOKEN });
    await unlessExited(host, reg.hello(0));
    const tokenA = agentToken({ sub: ENV_A, org: "acme", gen: 1 });
    // The create takes a second or two (the agent starts); cut the link while it runs.
    reg.connections[0]!.ws.send(JSON.stringify({ v: 1, kind: "host.request", id: "cut-1", op: "env.create", params: { environmentId: ENV_A, provider: "local", config: {}, agentToken: tokenA, url: agents.url }, timeoutMs: 60_000 }));
    await new Promise((r) => setTimeout(r, 100));
    reg.connections[0]!.ws.close(1011, "cut");
    const hello = await unlessExited(host, reg.hello(1));
    const reply = await reg.until(() => reg.connections[1]!.frames.find((f: Frame) => f.kind === "host.reply" && f.re === "cut-1"), 30_000, "the reply after reconnecting");
    expect(reply).toMatchObject({ ok: true, result: { resourceId: path.join(root, ENV_A) } });
    // The hello was sent before or after the create finished; either way the resource is known now.
    expect(Array.isArray(hello.resources)).toBe(true);
    const teardown = await reg.request("env.teardown", { environmentId: ENV_A, provider: "local", resourceId: path.join(root, ENV_A) });
    expect(teardown).toMatchObject({ ok: true, result: { removed: true } });
    host.child.kill("SIGTERM");
    expect((await host.done).code).toBe(0);
  }, 60_000);
});

describe("the standalone bundle", () => {
  it("runs host mode from one copied file, with the built-in manifests inside, and starts agents from itself", async () => {
    // Built into a folder with no node_modules anywhere above it: everything must be inside the file.
    const bundle = path.join(base.dir, "standalone", "outpost-agent.js");
    execFileSync(process.execPath, [path.join(repoRoot, "provider-agent/build.mjs"), "--outfile", bundle], { stdio: "pipe" });
    const reg = await registry();
    const agents = await edge();
    const root = path.join(base.dir, "root");
    const runtimeRoot = path.join(base.dir, "state", "host-box-1");
    closers.push(async () => killAgentsOf(runtimeRoot));
    const host = startHost(["--url", reg.url, "--providers", "local", "--root", root, "--state-file", `${runtimeRoot}.json`], { OUTPOST_HOST_TOKEN: HOST_TOKEN }, [bundle]);
    const hello = await unlessExited(host, reg.hello(0));
    expect((hello.providers as Array<Record<string, unknown>>).map((p) => p.name)).toEqual(["Local directory"]);
    const tokenA = agentToken({ sub: ENV_A, org: "acme", gen: 1 });
    const created = await reg.request("env.create", { environmentId: ENV_A, provider: "local", config: {}, agentToken: tokenA, url: agents.url });
    expect(created).toMatchObject({ ok: true, result: { resourceId: path.join(root, ENV_A) } });
    await agentConnection(agents, ENV_A);
    const pid = (JSON.parse(readFileSync(path.join(runtimeRoot, ENV_A, "agent.pid"), "utf8")) as { pid: number }).pid;
    expect(readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").slice(0, 3)).toEqual([process.execPath, bundle, "--url"]);
    expect(await reg.request("env.teardown", { environmentId: ENV_A, provider: "local", resourceId: path.join(root, ENV_A) })).toMatchObject({ ok: true, result: { removed: true } });
    expect(pidAlive(pid)).toBe(false);
    host.child.kill("SIGTERM");
    expect((await host.done).code).toBe(0);
  }, 60_000);
});
