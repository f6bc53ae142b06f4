/**
 * The `sandbox` provider with real bubblewrap: the agent runs inside the sandbox and dials the
 * stand-in edge; what it runs can write the workspace and nothing else on the host; teardown leaves
 * no directory, state or process. Skipped (saying why) where bwrap cannot create namespaces.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HostedProvider } from "../../provider-agent/src/host/hosted.js";
import { loadBuiltin } from "../../provider-agent/src/host/loader.js";
import { processesIn } from "../../provider-agent/src/host/processes.js";
import { HostError } from "../../provider-agent/src/host/provider.js";
import { bwrapArgs, pathsUnderTmp, SandboxProvider } from "../../provider-agent/src/host/providers/sandbox.js";
import { silentLogger } from "../../provider-agent/src/log.js";
import { agentToken, ENV_ID, tempDir, TestEdge, waitFor, type Frame } from "./helpers.js";
import { agentCommand, commandLineOf, repoRoot } from "./host-helpers.js";
import { pidAlive } from "../../scripts/lib/processes.js";

function bwrapProblem(): string | null {
  try {
    execFileSync("bwrap", ["--unshare-all", "--share-net", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--", "true"], { stdio: "pipe" });
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}
const problem = bwrapProblem();
if (problem) console.warn(`skipping the sandbox provider's tests: bwrap cannot create namespaces here (${problem})`);

let base: { dir: string; cleanup: () => Promise<void> };
let edge: TestEdge;

beforeEach(async () => {
  base = await tempDir("outpost-sandbox-");
  edge = await TestEdge.start();
});
afterEach(async () => {
  // A failed test may leave its sandbox running: bwrap works from the host's directory, not the workspace, so kill it by its pid file.
  const pidFile = path.join(base.dir, "state", "host-box-1", ENV_ID, "agent.pid");
  if (existsSync(pidFile)) {
    try {
      process.kill(-(JSON.parse(readFileSync(pidFile, "utf8")) as { pid: number }).pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  for (const pid of await processesIn(base.dir)) process.kill(pid, "SIGKILL");
  await edge.close();
  await base.cleanup();
});

function hosted(config: { agentCommand?: string[] } = {}): HostedProvider {
  const loaded = loadBuiltin("sandbox");
  if (!loaded.ok) throw new Error(loaded.errors.join("\n"));
  const { manifest } = loaded.providers[0]!;
  return new HostedProvider(manifest, new SandboxProvider(manifest, { agentCommand: config.agentCommand ?? agentCommand }), {
    root: path.join(base.dir, "root"),
    runtimeRoot: path.join(base.dir, "state", "host-box-1"),
    agentCommand,
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

async function exec(command: string[]): Promise<Frame> {
  const id = `x${edge.delivered.length}`;
  edge.sendReliable({ v: 1, kind: "request", id, op: "exec", params: { command }, timeoutMs: 10_000 });
  return edge.until(() => edge.deliveredOf("reply", id)[0], 15_000, `the reply to ${id}`);
}

describe.skipIf(problem !== null)("sandbox provider (bubblewrap)", () => {
  it("runs the agent in a sandbox that can write only its workspace, recovers it, and tears everything down", async () => {
    const sandbox = hosted();
    const created = await sandbox.create(request(), signal());
    const dir = path.join(base.dir, "root", ENV_ID);
    expect(created.resourceId).toBe(dir);

    // The agent dials the edge from inside the sandbox with the environment's token.
    const conn = await edge.connection(0, 20_000);
    expect(conn.request.headers.authorization).toBe(`Bearer ${token}`);
    expect(await edge.frame(0, (f) => f.kind === "hello", 20_000)).toMatchObject({ workspace: dir, resourceId: dir });

    // The recorded process is bwrap, with the workspace and runtime dir its only writable binds; no token on its command line.
    const pid = agentPid(sandbox);
    const argv = commandLineOf(pid);
    expect(path.basename(argv[0]!)).toBe("bwrap");
    expect(argv).not.toContain("--die-with-parent");
    expect(argv.join(" ")).not.toContain(token);
    const runtime = sandbox.runtimeDir(ENV_ID);
    const binds = argv.flatMap((a, i) => (a === "--bind" ? [argv[i + 1]] : []));
    expect(binds.sort()).toEqual([dir, runtime].sort());
    await waitFor(() => existsSync(path.join(runtime, "agent-state.json")), 5_000, "the agent's state file");

    // Inside: the workspace is writable, the rest of the file system is not, /tmp is private, pids are the sandbox's own.
    expect(await exec(["pwd"])).toMatchObject({ ok: true });
    expect(await exec(["touch", path.join(dir, "made-inside.txt")])).toMatchObject({ ok: true, result: { exitCode: 0 } });
    expect(existsSync(path.join(dir, "made-inside.txt"))).toBe(true);
    const etc = await exec(["touch", "/etc/outpost-sandbox-test"]);
    expect((etc.result as { exitCode: number }).exitCode).not.toBe(0);
    expect(existsSync("/etc/outpost-sandbox-test")).toBe(false);
    const outside = path.join(repoRoot, `outpost-sandbox-test-${process.pid}`);
    expect(((await exec(["touch", outside])).result as { exitCode: number }).exitCode).not.toBe(0);
    expect(existsSync(outside)).toBe(false);
    // Beside the workspace under /tmp: writable only in the sandbox's private /tmp, never on the host.
    const beside = path.join(base.dir, "beside.txt");
    await exec(["touch", beside]);
    expect(existsSync(beside)).toBe(false);
    const leak = `/tmp/outpost-sandbox-leak-${process.pid}`;
    expect(await exec(["touch", leak])).toMatchObject({ ok: true, result: { exitCode: 0 } });
    expect(existsSync(leak)).toBe(false);
    const ps = (await exec(["sh", "-c", "echo $$"])).result as { stdout: string };
    expect(Number(ps.stdout.trim())).toBeLessThan(100);

    const ref = { environmentId: ENV_ID, resourceId: dir, notes: created.notes ?? {} };
    expect(await sandbox.health(ref, signal())).toMatchObject({ state: "running" });

    // Killed: stopped until recovered, then the sandbox and its agent come back.
    process.kill(-pid, "SIGKILL");
    await waitFor(() => !pidAlive(pid), 5_000, "the sandbox to die");
    expect(await sandbox.health(ref, signal())).toMatchObject({ state: "stopped" });
    expect(await sandbox.recover(request(), ref, signal())).toMatchObject({ resourceId: dir, recovered: true });
    const pid2 = agentPid(sandbox);
    expect(pid2).not.toBe(pid);
    await edge.frame(1, (f) => f.kind === "hello", 20_000);
    expect(readFileSync(path.join(dir, "made-inside.txt"), "utf8")).toBe("");

    // A process left running inside the sandbox does not survive teardown.
    await exec(["sh", "-c", "setsid sleep 300 </dev/null >/dev/null 2>&1 &"]);
    expect(await sandbox.teardown(ref, signal())).toBe(true);
    expect(existsSync(dir)).toBe(false);
    expect(existsSync(runtime)).toBe(false);
    expect(pidAlive(pid2)).toBe(false);
    expect(await processesIn(base.dir)).toEqual([]);
    expect(await sandbox.health(ref, signal())).toEqual({ state: "gone" });
    expect(await sandbox.recover(request(), ref, signal())).toMatchObject({ recovered: false });
    expect(await sandbox.teardown(ref, signal())).toBe(false);
  }, 90_000);

  it("refuses an unusable bwrap with a structured error and leaves nothing behind", async () => {
    const sandbox = hosted();
    const missing = path.join(base.dir, "no-bwrap");
    const err = (await sandbox.create(request({ bwrap: missing }), signal()).catch((e: unknown) => e)) as HostError;
    expect(err).toBeInstanceOf(HostError);
    expect(err.code).toBe("internal");
    expect(err.message).toMatch(/bubblewrap .* cannot create a sandbox on this host/);
    expect(existsSync(path.join(base.dir, "root", ENV_ID))).toBe(false);
    expect(existsSync(sandbox.runtimeDir(ENV_ID))).toBe(false);
  });

  it("fails create when the agent cannot start inside, saying why and leaving nothing behind", async () => {
    await mkdir(path.join(base.dir, "root"), { recursive: true });
    await writeFile(path.join(base.dir, "root", "keep"), "");
    const sandbox = hosted({ agentCommand: [process.execPath, "-e", "console.error('agent says no'); process.exit(2)", "--"] });
    const err = (await sandbox.create(request(), signal()).catch((e: unknown) => e)) as HostError;
    expect(err).toBeInstanceOf(HostError);
    expect(err.message).toMatch(/the agent stopped at once .*agent says no/s);
    expect(existsSync(path.join(base.dir, "root", ENV_ID))).toBe(false);
    expect(existsSync(sandbox.runtimeDir(ENV_ID))).toBe(false);
  });
});

describe("sandbox mounts", () => {
  it("binds read-only the host paths under /tmp the agent's command needs, on top of the private /tmp and below the writable binds", () => {
    const command = [process.execPath, "--import", "file:///tmp/ci/repo/node_modules/tsx/dist/loader.mjs", "/tmp/ci/repo/src/cli.ts", "/opt/x.js"];
    expect(pathsUnderTmp(command, "/tmp/ci/repo")).toEqual(["/tmp/ci/repo"]);
    expect(pathsUnderTmp(["/usr/bin/node", "/tmp/b/cli.js"], "/tmp")).toEqual(["/tmp/b/cli.js"]);
    expect(pathsUnderTmp(["/usr/bin/node", "/srv/cli.js"], "/home/me")).toEqual([]);
    const args = bwrapArgs({ workspace: "/tmp/envs/e1", runtimeDir: "/var/lib/o/e1", visible: ["/tmp/ci/repo"] });
    const at = (flag: string, value: string) => args.findIndex((a, i) => a === flag && args[i + 1] === value);
    expect(at("--tmpfs", "/tmp")).toBeLessThan(at("--ro-bind", "/tmp/ci/repo"));
    expect(at("--ro-bind", "/tmp/ci/repo")).toBeLessThan(at("--bind", "/tmp/envs/e1"));
    expect(args).not.toContain("--die-with-parent");
    expect(args.at(-1)).toBe("--");
  });
});
