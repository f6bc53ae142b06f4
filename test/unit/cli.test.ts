import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { agentToken, ENV_ID, tempDir, TestEdge } from "./helpers.js";

const repo = fileURLToPath(new URL("../..", import.meta.url));
// The bundle `npm test` builds first (npm run build:agent): the artifact users run, and it starts in a
// fraction of the time tsx needs to compile the sources, so concurrent cases stay quick on a busy machine.
const cliBundle = path.join(repo, "provider-agent/dist/cli.js");
if (!existsSync(cliBundle)) throw new Error(`${cliBundle} is missing: run npm run build:agent first`);

type Outcome = { code: number | null; stdout: string; stderr: string };

/** Runs the agent's CLI the way `npx outpost-agent` does: node on the built bundle. */
// The agent keeps a state file under XDG_STATE_HOME: a fresh one per run, never the real home's.
const stateHome = mkdtempSync(path.join(tmpdir(), "outpost-unit-state-"));
afterAll(() => rmSync(stateHome, { recursive: true, force: true }));

function startCli(args: string[], env: Record<string, string> = {}): { child: ChildProcess; done: Promise<Outcome> } {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("OUTPOST_")));
  const child = spawn(process.execPath, [cliBundle, ...args], {
    cwd: repo,
    env: { ...base, XDG_STATE_HOME: stateHome, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Outcome>((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
  return { child, done };
}
const runCli = (args: string[], env: Record<string, string> = {}) => startCli(args, env).done;

describe.concurrent("outpost-agent CLI usage", () => {
  it("--help prints usage with flags, env vars, examples and exit codes", async () => {
    const r = await runCli(["--help"]);
    expect(r.code).toBe(0);
    for (const text of ["Usage:", "--url", "--token", "--workspace", "--heartbeat-ms", "--log-level", "OUTPOST_URL", "OUTPOST_AGENT_TOKEN", "OUTPOST_WORKSPACE", "Examples:", "Exit codes:"]) {
      expect(r.stdout).toContain(text);
    }
  });

  it("--version prints the package version", async () => {
    const r = await runCli(["--version"]);
    expect(r).toMatchObject({ code: 0, stdout: "0.1.0\n" });
  });

  it.each([
    ["a missing token", ["--url", "http://127.0.0.1:1", "--workspace", "ws"], {}, /missing --token/],
    ["a missing url", ["--token", agentToken(), "--workspace", "ws"], {}, /missing --url/],
    ["a malformed token", ["--url", "http://127.0.0.1:1", "--workspace", "ws", "--token", "abc.def.ghi"], {}, /token is malformed/],
    ["an unknown flag", ["--bogus"], {}, /bogus/],
    ["a bad heartbeat", ["--heartbeat-ms", "soon"], { OUTPOST_URL: "http://127.0.0.1:1", OUTPOST_AGENT_TOKEN: agentToken(), OUTPOST_WORKSPACE: "ws" }, /heartbeat-ms/],
  ])("exits 2 on %s, explaining on stderr", async (_name, args, env, message) => {
    const r = await runCli(args, env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe("");
  });
});

describe.concurrent("outpost-agent exec usage", () => {
  const endpoint = { OUTPOST_FORWARD_URL: "http://127.0.0.1:9", OUTPOST_FORWARD_SECRET: "s" };

  it.each([
    ["--cwd", ["--cwd", "sub"], /--cwd apply to a command after --, not to --payload/],
    ["--timeout-ms", ["--timeout-ms", "5000"], /--timeout-ms apply to a command after --, not to --payload/],
    ["both", ["--cwd", "sub", "--timeout-ms", "5000"], /--cwd and --timeout-ms apply to a command/],
  ])("refuses %s with --payload (the handler's own cwd and timeout apply): exit 2, nothing sent", async (_name, extra, message) => {
    const r = await runCli(["exec", "--target", "gpu", "--type", "inference:generate", "--payload", '{"prompt":"hi"}', ...extra], endpoint);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toContain("Run 'outpost-agent exec --help' for usage.");
    expect(r.stdout).toBe("");
  });

  it("--help says --cwd and --timeout-ms are the command's, not the payload's", async () => {
    const r = await runCli(["exec", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/--payload JSON[\s\S]*so --cwd and\s+--timeout-ms are refused with it/);
  });
});

describe("outpost-agent CLI against a local edge", () => {
  let base: { dir: string; cleanup: () => Promise<void> };
  let edge: TestEdge | null = null;
  const children: ChildProcess[] = [];
  beforeEach(async () => {
    base = await tempDir();
  });
  afterEach(async () => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    await edge?.close();
    edge = null;
    await base.cleanup();
  });

  it("connects from env vars, creates the workspace, serves a request, and exits 0 on SIGTERM with close 1000", async () => {
    edge = await TestEdge.start();
    const token = agentToken();
    const workspace = path.join(base.dir, "new", "workspace");
    const { child, done } = startCli(["--log-level", "debug"], { OUTPOST_URL: edge.url, OUTPOST_AGENT_TOKEN: token, OUTPOST_WORKSPACE: workspace });
    children.push(child);
    const hello = await edge.frame(0, (f) => f.kind === "hello", 15_000);
    expect(hello).toMatchObject({ workspace, agent: { pid: child.pid } });
    expect(edge.connections[0]!.request.url).toBe(`/v1/environments/${ENV_ID}/connect`);
    expect(existsSync(workspace)).toBe(true);
    edge.send(0, { v: 1, kind: "request", id: "r1", op: "exec", params: { command: ["sh", "-c", 'echo "[${OUTPOST_AGENT_TOKEN-unset}]"; pwd'] }, timeoutMs: 10_000 });
    const reply = await edge.frame(0, (f) => f.kind === "reply" && f.re === "r1", 10_000);
    expect(reply).toMatchObject({ ok: true, result: { exitCode: 0, stdout: `[unset]\n${workspace}\n` } });
    child.kill("SIGTERM");
    const r = await done;
    expect(r.code).toBe(0);
    expect((await edge.connections[0]!.closed).code).toBe(1000);
    expect(r.stderr).not.toContain(token);
    const lines = r.stderr.trim().split("\n");
    expect(lines.length).toBeGreaterThan(2);
    for (const line of lines) expect(line).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (info|warn|error|debug) /);
  });

  it("answers a shutdown request, closes with 1000 and exits 0", async () => {
    edge = await TestEdge.start();
    const { child, done } = startCli(["--url", edge.url, "--workspace", path.join(base.dir, "ws")], { OUTPOST_AGENT_TOKEN: agentToken() });
    children.push(child);
    await edge.frame(0, (f) => f.kind === "hello", 15_000);
    edge.send(0, { v: 1, kind: "request", id: "bye", op: "shutdown", params: { reason: "environment stopped" }, timeoutMs: 5_000 });
    expect(await edge.frame(0, (f) => f.kind === "reply" && f.re === "bye")).toMatchObject({ ok: true, result: {} });
    expect((await edge.connections[0]!.closed).code).toBe(1000);
    expect((await done).code).toBe(0);
  });

  it("exits 3 when the control plane closes the link with 4001", async () => {
    edge = await TestEdge.start();
    const token = agentToken();
    const { child, done } = startCli(["--url", edge.url, "--token", token, "--workspace", path.join(base.dir, "ws")]);
    children.push(child);
    await edge.frame(0, (f) => f.kind === "hello", 15_000);
    edge.connections[0]!.ws.close(4001, "agent token revoked");
    const r = await done;
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("4001 agent token revoked");
    expect(r.stderr).not.toContain(token);
    expect(edge.connections).toHaveLength(1);
  });
});
