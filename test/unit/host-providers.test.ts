/**
 * The built-in providers driven directly (no host link): real directories, real git worktrees and a
 * real agent process that dials the stand-in edge. Create → the agent serves the workspace → recover
 * after killing it → teardown, then proof that nothing is left.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AgentProcess } from "../../provider-agent/src/host/agent-process.js";
import { HostedProvider } from "../../provider-agent/src/host/hosted.js";
import { loadBuiltin } from "../../provider-agent/src/host/loader.js";
import { processesIn } from "../../provider-agent/src/host/processes.js";
import { HostError } from "../../provider-agent/src/host/provider.js";
import { silentLogger } from "../../provider-agent/src/log.js";
import { agentToken, ENV_ID, tempDir, TestEdge, waitFor, type Frame } from "./helpers.js";
import { agentCommand, commandLineOf, git, gitRepo } from "./host-helpers.js";
import { pidAlive } from "../../scripts/lib/processes.js";

let base: { dir: string; cleanup: () => Promise<void> };
let edge: TestEdge;
const strays: number[] = [];

beforeEach(async () => {
  base = await tempDir("outpost-host-");
  edge = await TestEdge.start();
});
afterEach(async () => {
  for (const pid of strays.splice(0)) if (pidAlive(pid)) process.kill(pid, "SIGKILL");
  // Whatever a failed test left running.
  for (const pid of await processesIn(base.dir)) process.kill(pid, "SIGKILL");
  await edge.close();
  await base.cleanup();
});

function hosted(id: string, command: string[] = agentCommand): HostedProvider {
  const loaded = loadBuiltin(id);
  if (!loaded.ok) throw new Error(loaded.errors.join("\n"));
  const { manifest, impl } = loaded.providers[0]!;
  return new HostedProvider(manifest, impl, {
    root: path.join(base.dir, "root"),
    runtimeRoot: path.join(base.dir, "state", "host-box-1"),
    agentCommand: command,
    log: silentLogger,
    agentStopGraceMs: 5_000,
  });
}

const signal = () => AbortSignal.timeout(60_000);
const token = agentToken();
const request = (config: Record<string, unknown> = {}) => ({ environmentId: ENV_ID, config, url: edge.url, agentToken: token });

function agentPid(provider: HostedProvider): number {
  return (JSON.parse(readFileSync(path.join(provider.runtimeDir(ENV_ID), "agent.pid"), "utf8")) as { pid: number }).pid;
}

/** Runs `command` through the edge in the agent that connection `index` belongs to. */
async function exec(index: number, command: string[]): Promise<Frame> {
  const id = `x${edge.delivered.length}-${index}`;
  edge.sendReliable({ v: 1, kind: "request", id, op: "exec", params: { command }, timeoutMs: 10_000 });
  return edge.until(() => edge.deliveredOf("reply", id)[0], 15_000, `the reply to ${id}`);
}

/** A process started in `dir` that nobody told to stop: teardown must not leave it. */
function stray(dir: string): number {
  const child = spawn("sleep", ["300"], { cwd: dir, detached: true, stdio: "ignore" });
  child.unref();
  strays.push(child.pid!);
  return child.pid!;
}

async function expectAgentServing(index: number, workspace: string): Promise<Frame> {
  const conn = await edge.connection(index, 20_000);
  const hello = await edge.frame(index, (f) => f.kind === "hello", 20_000);
  expect(conn.request.headers.authorization).toBe(`Bearer ${token}`);
  expect(conn.request.url).toBe(`/v1/environments/${ENV_ID}/connect`);
  expect(hello).toMatchObject({ workspace, resourceId: workspace });
  return hello;
}

describe("local provider", () => {
  it("creates a directory with an agent in it, recovers the agent after it is killed, and tears everything down", async () => {
    const local = hosted("local");
    const created = await local.create(request(), signal());
    const dir = path.join(base.dir, "root", ENV_ID);
    expect(created.resourceId).toBe(dir);
    await expectAgentServing(0, dir);
    expect(await exec(0, ["pwd"])).toMatchObject({ ok: true, result: { stdout: `${dir}\n` } });

    // The token is in the agent's environment, never on its command line; its state lives outside the workspace.
    const pid = agentPid(local);
    const argv = commandLineOf(pid);
    expect(argv).toContain(dir);
    expect(argv.join(" ")).not.toContain(token);
    const runtime = local.runtimeDir(ENV_ID);
    expect(argv).toContain(path.join(runtime, "agent-state.json"));
    await waitFor(() => existsSync(path.join(runtime, "agent-state.json")), 5_000, "the agent's state file");
    expect(readFileSync(path.join(runtime, "agent.log"), "utf8")).toContain(`serving ${dir}`);
    const ref = { environmentId: ENV_ID, resourceId: dir, notes: created.notes ?? {} };
    expect(await local.health(ref, signal())).toMatchObject({ state: "running" });

    // Recover while it runs: nothing to do.
    expect(await local.recover(request(), ref, signal())).toEqual({ resourceId: dir, recovered: true, notes: {} });
    expect(agentPid(local)).toBe(pid);

    // Killed: it is stopped until recovered, then it dials again.
    process.kill(pid, "SIGKILL");
    await waitFor(() => !pidAlive(pid), 5_000, "the agent to die");
    expect(await local.health(ref, signal())).toMatchObject({ state: "stopped" });
    expect(await local.recover(request(), ref, signal())).toMatchObject({ resourceId: dir, recovered: true });
    const pid2 = agentPid(local);
    expect(pid2).not.toBe(pid);
    expect(pidAlive(pid2)).toBe(true);
    await expectAgentServing(1, dir);

    // Teardown: the agent, a stray process in the workspace, the directory and the agent's state all go.
    await writeFile(path.join(dir, "work.txt"), "made in the environment");
    const strayPid = stray(dir);
    expect(await local.teardown(ref, signal())).toBe(true);
    expect(existsSync(dir)).toBe(false);
    expect(existsSync(runtime)).toBe(false);
    expect(pidAlive(pid2)).toBe(false);
    expect(pidAlive(strayPid)).toBe(false);
    expect(await processesIn(path.join(base.dir, "root"))).toEqual([]);
    expect(await local.health(ref, signal())).toEqual({ state: "gone" });
    // Gone for good: recovering reports it, tearing down again removes nothing.
    expect(await local.recover(request(), ref, signal())).toMatchObject({ recovered: false });
    expect(await local.teardown(ref, signal())).toBe(false);
  }, 90_000);

  it("honours config.root and refuses a relative root or an unknown key before touching anything", async () => {
    const local = hosted("local");
    const elsewhere = path.join(base.dir, "elsewhere");
    const created = await local.create(request({ root: elsewhere }), signal());
    expect(created.resourceId).toBe(path.join(elsewhere, ENV_ID));
    await expectAgentServing(0, created.resourceId);
    await local.teardown({ environmentId: ENV_ID, resourceId: created.resourceId, notes: {} }, signal());
    expect(existsSync(created.resourceId)).toBe(false);

    for (const config of [{ root: "relative/dir" }, { rooot: "/tmp" }, { root: 3 }]) {
      const err = await local.create(request(config), signal()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(HostError);
      expect((err as HostError).code).toBe("bad_request");
    }
    expect(existsSync(path.join(base.dir, "root", ENV_ID))).toBe(false);
    expect(existsSync(local.runtimeDir(ENV_ID))).toBe(false);
  }, 60_000);

  it("fails create when the agent cannot start, saying why and leaving nothing behind", async () => {
    const local = hosted("local", [process.execPath, "-e", "console.error('agent says no'); process.exit(2)", "--"]);
    const err = (await local.create(request(), signal()).catch((e: unknown) => e)) as HostError;
    expect(err).toBeInstanceOf(HostError);
    expect(err.code).toBe("internal");
    expect(err.message).toMatch(/the agent stopped at once \(exit code 2\): .*agent says no/);
    expect(existsSync(path.join(base.dir, "root", ENV_ID))).toBe(false);
    expect(existsSync(local.runtimeDir(ENV_ID))).toBe(false);
  });

  it("stops an agent that ignores SIGTERM with SIGKILL after the grace period", async () => {
    const runtimeDir = path.join(base.dir, "rt");
    const workspace = path.join(base.dir, "ws");
    await mkdir(workspace);
    const stubborn = `process.on("SIGTERM", () => {}); console.error("x serving y"); setInterval(() => {}, 1000);`;
    const agent = new AgentProcess({
      runtimeDir,
      command: [process.execPath, "-e", stubborn, "--"],
      credentials: { url: edge.url, token },
      log: silentLogger,
      stopGraceMs: 300,
    });
    const pid = await agent.start({ workspace, resourceId: workspace });
    expect(await agent.running()).toBe(pid);
    const started = Date.now();
    expect(await agent.stop()).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(pidAlive(pid)).toBe(false);
    expect(await agent.running()).toBeNull();
    expect(await agent.stop()).toBe(false);
  });
});

describe("worktree provider", () => {
  it("creates a worktree on its own branch with an agent in it, recovers it, and removes worktree, branch and processes", async () => {
    const repository = gitRepo(path.join(base.dir, "repo"));
    const worktree = hosted("worktree");
    const created = await worktree.create(request({ repository }), signal());
    const dir = path.join(base.dir, "root", ENV_ID);
    const branch = `outpost/${ENV_ID}`;
    expect(created).toEqual({ resourceId: dir, notes: { repository, branch } });
    await expectAgentServing(0, dir);
    expect(git(repository, "worktree", "list", "--porcelain")).toContain(`worktree ${dir}\n`);
    expect(await exec(0, ["git", "rev-parse", "--abbrev-ref", "HEAD"])).toMatchObject({ ok: true, result: { stdout: `${branch}\n` } });
    expect(await exec(0, ["cat", "README.md"])).toMatchObject({ ok: true, result: { stdout: "hello\n" } });
    // The agent's state is not in the worktree (git status stays clean of it).
    expect(git(dir, "status", "--porcelain")).toBe("");

    const ref = { environmentId: ENV_ID, resourceId: dir, notes: created.notes ?? {} };
    const pid = agentPid(worktree);
    process.kill(pid, "SIGKILL");
    await waitFor(() => !pidAlive(pid), 5_000, "the agent to die");
    expect(await worktree.recover(request({ repository }), ref, signal())).toMatchObject({ resourceId: dir, recovered: true });
    await expectAgentServing(1, dir);
    const pid2 = agentPid(worktree);

    // Uncommitted work and a stray process do not keep anything alive.
    await writeFile(path.join(dir, "README.md"), "changed\n");
    await writeFile(path.join(dir, "new.txt"), "untracked\n");
    const strayPid = stray(dir);
    expect(await worktree.teardown(ref, signal())).toBe(true);
    expect(existsSync(dir)).toBe(false);
    expect(git(repository, "worktree", "list", "--porcelain")).not.toContain(dir);
    expect(git(repository, "branch", "--list", branch)).toBe("");
    expect(existsSync(path.join(repository, ".git", "worktrees", ENV_ID))).toBe(false);
    expect(pidAlive(pid2)).toBe(false);
    expect(pidAlive(strayPid)).toBe(false);
    expect(existsSync(worktree.runtimeDir(ENV_ID))).toBe(false);
    // The repository itself is untouched.
    expect(git(repository, "status", "--porcelain")).toBe("");
    expect(git(repository, "branch", "--format=%(refname:short)")).toBe("main");
  }, 90_000);

  it("starts from baseRef with a custom branch prefix, and keeps its worktree when create is repeated", async () => {
    const repository = gitRepo(path.join(base.dir, "repo"));
    const first = git(repository, "rev-parse", "HEAD");
    await writeFile(path.join(repository, "second.txt"), "2\n");
    git(repository, "add", "second.txt");
    git(repository, "commit", "-q", "-m", "second");
    const worktree = hosted("worktree");
    const config = { repository, baseRef: first, branchPrefix: "agents/" };
    const created = await worktree.create(request(config), signal());
    expect(created.notes).toEqual({ repository, branch: `agents/${ENV_ID}` });
    expect(git(created.resourceId, "rev-parse", "HEAD")).toBe(first);
    expect(existsSync(path.join(created.resourceId, "second.txt"))).toBe(false);
    await expectAgentServing(0, created.resourceId);
    await writeFile(path.join(created.resourceId, "keep.txt"), "work in progress\n");

    // The same create again (its reply lost): same worktree, work kept.
    const again = await worktree.create(request(config), signal());
    expect(again.resourceId).toBe(created.resourceId);
    expect(readFileSync(path.join(created.resourceId, "keep.txt"), "utf8")).toBe("work in progress\n");

    await worktree.teardown({ environmentId: ENV_ID, resourceId: created.resourceId, notes: created.notes ?? {} }, signal());
    expect(git(repository, "branch", "--format=%(refname:short)")).toBe("main");
    expect(existsSync(created.resourceId)).toBe(false);
  }, 90_000);

  it("refuses a missing repository, a directory that is not one, a bad baseRef and a bad branch prefix, naming the field", async () => {
    const repository = gitRepo(path.join(base.dir, "repo"));
    const plain = path.join(base.dir, "plain");
    await mkdir(plain);
    const worktree = hosted("worktree");
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{}, /repository: required/],
      [{ repository: "repo" }, /config\.repository must be an absolute path/],
      [{ repository: plain }, /config\.repository: .* is not a git repository/],
      [{ repository, baseRef: "no-such-ref" }, /config\.baseRef: 'no-such-ref' is not a commit/],
      [{ repository, baseRef: "--output=/tmp/x" }, /config\.baseRef/],
      [{ repository, branchPrefix: "bad..prefix/" }, /config\.branchPrefix/],
    ];
    for (const [config, message] of cases) {
      const err = (await worktree.create(request(config), signal()).catch((e: unknown) => e)) as HostError;
      expect(err, JSON.stringify(config)).toBeInstanceOf(HostError);
      expect(err.code).toBe("bad_request");
      expect(err.message).toMatch(message);
    }
    expect(git(repository, "worktree", "list", "--porcelain").match(/^worktree /gm)).toHaveLength(1);
    expect(existsSync(path.join(base.dir, "root", ENV_ID))).toBe(false);
    expect(edge.connections).toHaveLength(0);
  });

  it("recovering a worktree removed behind the host's back reports it gone; cleanup still removes the branch", async () => {
    const repository = gitRepo(path.join(base.dir, "repo"));
    const worktree = hosted("worktree");
    const created = await worktree.create(request({ repository }), signal());
    await expectAgentServing(0, created.resourceId);
    const ref = { environmentId: ENV_ID, resourceId: created.resourceId, notes: created.notes ?? {} };
    process.kill(agentPid(worktree), "SIGKILL");
    git(repository, "worktree", "remove", "--force", created.resourceId);
    expect(await worktree.recover(request({ repository }), ref, signal())).toMatchObject({ recovered: false });
    expect(git(repository, "branch", "--list", `outpost/${ENV_ID}`)).not.toBe("");
    await worktree.cleanup(ref, signal());
    expect(git(repository, "branch", "--list", `outpost/${ENV_ID}`)).toBe("");
    expect(existsSync(worktree.runtimeDir(ENV_ID))).toBe(false);
  }, 60_000);
});
