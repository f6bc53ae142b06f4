/**
 * The commands a developer types: `npm run -s token` and `npm start`, run as child processes
 * exactly as typed. npm start keeps its state in a temp OUTPOST_HOME on a free port; its signing
 * key is the repository's .dev.vars (created when missing), as for `npm run -s token`.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AUDIENCE, TOKEN_ISSUER } from "@outpost/protocol";
import { OutpostClient } from "../../scripts/lib/api.js";
import { DEV_VARS, readDevVars, ROOT } from "../../scripts/lib/dev-vars.js";
import { freePort, portFree } from "../../scripts/lib/ports.js";
import { spawnGroup, type Exit, type ProcessGroup } from "../../scripts/lib/process-group.js";
import { exitWithin, killLeftovers, processesMentioning, waitFor, withClaims } from "./helpers.js";

const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** Runs a command to completion (bounded); stdout kept apart from stderr. */
async function run(command: string, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 30_000): Promise<{ exit: Exit; stdout: string[]; output: string }> {
  const stdout: string[] = [];
  const p = spawnGroup(command, args, { cwd: ROOT, env: { ...process.env, ...env }, onLine: (line, stream) => stream === "stdout" && stdout.push(line) });
  return { exit: await bounded(p, timeoutMs), stdout, output: p.output() };
}

/** The exit of `p` within `timeoutMs`; past that it is killed and the test fails. */
function bounded(p: ProcessGroup, timeoutMs: number): Promise<Exit> {
  return exitWithin(p, timeoutMs).catch(async (err: unknown) => {
    await p.stop("SIGKILL").catch(() => undefined);
    throw err;
  });
}

describe("npx wrangler deploy --dry-run", () => {
  it("bundles the Worker with its Durable Object, D1 and R2 bindings", async () => {
    const outdir = await mkdtemp(join(tmpdir(), "outpost-dry-"));
    try {
      const { exit, output } = await run("npx", ["wrangler", "deploy", "--dry-run", "--outdir", outdir], { WRANGLER_SEND_METRICS: "false" }, 90_000);
      expect(exit.code, output).toBe(0);
      for (const binding of ["env.ENVIRONMENTS (EnvironmentObject)", "env.DB (outpost)", "env.BUNDLES (outpost-bundles)"]) expect(output).toContain(binding);
      expect(existsSync(join(outdir, "index.js"))).toBe(true);
    } finally {
      await rm(outdir, { recursive: true, force: true });
    }
  });
});

describe("npm run -s token", () => {
  it("prints exactly one JWT line on stdout, with the claims asked for, signed with .dev.vars", async () => {
    const { exit, stdout, output } = await run("npm", ["run", "-s", "token", "--", "--org", "x", "--role", "viewer"]);
    expect(exit.code, output).toBe(0);
    expect(stdout).toHaveLength(1);
    expect(stdout[0]).toMatch(JWT);
    const secret = readDevVars(DEV_VARS).OUTPOST_JWT_SECRET ?? "";
    const { payload } = await jwtVerify(stdout[0] ?? "", new TextEncoder().encode(secret), { issuer: TOKEN_ISSUER, audience: AUDIENCE.api });
    expect(payload).toMatchObject({ org: "x", role: "viewer" });
    expect((payload.exp ?? 0) * 1000).toBeGreaterThan(Date.now());
  });

  it("refuses an unknown role with exit code 2 and nothing on stdout", async () => {
    const { exit, stdout } = await run("npm", ["run", "-s", "token", "--", "--role", "root"]);
    expect(exit.code).toBe(2);
    expect(stdout).toEqual([]);
  });
});

describe("npm start", () => {
  let home = "";
  let port = 0;
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), "outpost-start-"));
    port = await freePort();
  });
  afterAll(async () => {
    try {
      expect(killLeftovers(home), "processes left behind by npm start").toEqual([]);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });

  /** Starts `npm start` in its own process group (as a terminal would) and waits for its banner. */
  async function start(): Promise<{ p: ProcessGroup; url: string; token: string; stdout: string[] }> {
    const stdout: string[] = [];
    const p = spawnGroup("npm", ["start"], {
      cwd: ROOT,
      env: { ...process.env, PORT: String(port), OUTPOST_HOME: home },
      onLine: (line, stream) => stream === "stdout" && stdout.push(line),
      keepLines: 500,
    });
    try {
      await waitFor(() => stdout.includes("Press Ctrl-C to stop."), {
        timeoutMs: 60_000,
        what: "npm start to print its banner",
        failIf: () => (p.exit ? `npm start exited (${p.exit.code ?? p.exit.signal}):\n${p.output()}` : null),
      });
    } catch (err) {
      await p.stop("SIGINT", 10_000).catch(() => p.kill());
      throw err;
    }
    const text = stdout.join("\n");
    const url = /Outpost is ready at (\S+)/.exec(text)?.[1] ?? "";
    const token = /export TOKEN=(\S+)/.exec(text)?.[1] ?? "";
    return { p, url, token, stdout };
  }

  async function expectAllStopped(p: ProcessGroup): Promise<void> {
    expect(p.output()).toContain("outpost: stopped.");
    expect(await portFree(port), `port ${port} is free`).toBe(true);
    expect(p.alive()).toBe(false);
    expect(processesMentioning(home), "wrangler or the agent left running").toEqual([]);
    expect(existsSync(join(home, ".outpost", "start.json"))).toBe(false);
  }

  it("--help prints usage and exits 0", async () => {
    const { exit, stdout } = await run("npm", ["start", "--", "--help"]);
    expect(exit.code).toBe(0);
    expect(stdout.join("\n")).toMatch(/Usage: npm start/);
  });

  let environmentId = "";

  it("comes up with a running 'local' environment, prints a working token, and stops on SIGINT with exit 0", async () => {
    const { p, url, token } = await start();
    expect(url).toBe(`http://127.0.0.1:${port}`);
    expect(token).toMatch(JWT);

    const client = new OutpostClient(url, token);
    const local = await client.getEnvironment("local");
    expect(local).toMatchObject({ name: "local", provider: "local", state: "running", connected: true });
    environmentId = local.id;
    expect(p.output()).toContain(local.id);
    expect(await client.exec("local", { command: ["echo", "hello from npm start"] })).toMatchObject({ exitCode: 0, stdout: "hello from npm start\n" });
    expect(statSync(join(home, ".outpost", "local", "workspace")).isDirectory()).toBe(true);

    // `npm run -s token` signs with the same key: its tokens work against this control plane.
    const viewer = await run("npm", ["run", "-s", "token", "--", "--org", "local", "--role", "viewer"]);
    expect((await new OutpostClient(url, viewer.stdout[0] ?? "").getEnvironment("local")).id).toBe(local.id);

    // The profile and the agent token are private files.
    const profilePath = join(home, ".outpost", "profile.json");
    expect(JSON.parse(readFileSync(profilePath, "utf8"))).toEqual({ url, token, environment: local.id });
    expect(statSync(profilePath).mode & 0o777).toBe(0o600);
    expect(statSync(join(home, ".outpost", "local", "agent-token")).mode & 0o777).toBe(0o600);

    // The outpost CLI works from that profile alone: no flags, no OUTPOST_URL/OUTPOST_TOKEN.
    const cli = await run("npx", ["outpost", "env", "get", "local", "--json"], { OUTPOST_PROFILE: profilePath, OUTPOST_URL: "", OUTPOST_TOKEN: "" });
    expect(cli.exit.code, cli.output).toBe(0);
    expect((JSON.parse(cli.stdout.join("\n")) as { environment: { id: string } }).environment.id).toBe(local.id);

    // SIGINT to npm start's own process (`kill -INT <pid>`): it stops the agent and wrangler, exits 0.
    const { pid } = JSON.parse(readFileSync(join(home, ".outpost", "start.json"), "utf8")) as { pid: number };
    process.kill(pid, "SIGINT");
    const exit = await bounded(p, 20_000);
    expect(exit, p.output()).toEqual({ code: 0, signal: null });
    await expectAllStopped(p);
  });

  it("starts again on the same state, replaces a stored agent token the server refuses, and stops on a terminal's Ctrl-C", async () => {
    // A token for the right environment that the control plane will refuse (its signature no longer matches).
    const tokenFile = join(home, ".outpost", "local", "agent-token");
    writeFileSync(tokenFile, withClaims(readFileSync(tokenFile, "utf8").trim(), (c) => ({ ...c, gen: 1_000 })));

    const { p, url, token, stdout } = await start();
    expect(stdout.join("\n")).toMatch(/stored agent token was refused; rotated it/);
    const client = new OutpostClient(url, token);
    expect((await client.getEnvironment("local")).id).toBe(environmentId);
    expect((await client.exec("local", { command: ["echo", "again"] })).stdout).toBe("again\n");

    // Ctrl-C in a terminal signals the whole foreground process group: npm, its shell, tsx and us.
    p.signal("SIGINT");
    const exit = await bounded(p, 20_000);
    // start.ts exits 0 ("stopped."), but npm's `sh -c` (dash) dies of that SIGINT once its child
    // is done, and npm then re-raises SIGINT on itself: a shell shows 130. With bash as sh, 0.
    expect(exit.code === 0 || exit.signal === "SIGINT", `${JSON.stringify(exit)}\n${p.output()}`).toBe(true);
    await expectAllStopped(p);
  });
});
