/**
 * One real control plane per test file: `wrangler dev` on a free loopback port, state in a fresh
 * temp dir, a per-file signing key (never the developer's .dev.vars), and real provider-agent
 * processes. Everything started here is stopped by `close()`, which then proves nothing is left.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
import type { Role } from "@outpost/protocol";
import { AGENT_BUNDLE, spawnAgent, type AgentOptions, type AgentProcess } from "../../scripts/lib/agent-process.js";
import { OutpostClient } from "../../scripts/lib/api.js";
import { applyMigrations, startControlPlane, type ControlPlane } from "../../scripts/lib/control-plane.js";
import { snapshotControlPlane } from "../../scripts/lib/snapshot.js";
import { freePort, LOOPBACK, portFree, waitPortFree } from "../../scripts/lib/ports.js";
import type { Exit, ProcessGroup } from "../../scripts/lib/process-group.js";
import { signUserToken } from "../../scripts/lib/tokens.js";
import { killLeftovers, processesMentioning } from "../../scripts/lib/processes.js";
import { waitFor } from "../../scripts/lib/wait.js";

export { killLeftovers, processesMentioning, waitFor };

export interface Harness {
  /** The temp dir holding this file's state: persist dir, workspaces, the copy of the sources. */
  dir: string;
  /** The wrangler.toml the control plane runs from: in this file's copy of the sources, never the repo's. */
  config: string;
  port: number;
  secret: string;
  cp: ControlPlane;
  /** An admin of org `e2e`. */
  admin: OutpostClient;
  client(role: Role, org?: string): Promise<OutpostClient>;
  /** A fresh workspace path (not created: the agent creates it) inside its own parent dir. */
  workspace(): Promise<{ parent: string; workspace: string }>;
  /** An agent process (by default dialing the control plane directly), stopped by close() if the test does not stop it. */
  agent(o: Omit<AgentOptions, "url"> & { url?: string }): AgentProcess;
  /**
   * Stops the control plane (agents keep running) and starts it again on the same port and state;
   * with `crash`, SIGKILL instead of a clean stop (what a machine failure leaves behind).
   */
  restart(o?: { crash?: boolean }): Promise<void>;
  close(): Promise<void>;
}

export const ORG = "e2e";

export interface HarnessOptions {
  /**
   * Another wrangler.toml (e.g. with other rate limits), made from the copy's: given the copy's
   * wrangler.toml, returns the path of the variant (best written next to it, so that its relative
   * paths still hold).
   */
  config?: (snapshotConfig: string) => string;
  /** Worker variables over wrangler.toml's [vars]. */
  vars?: Record<string, string>;
}

/**
 * The bound on startHarness, below every beforeAll's hookTimeout (e2e 90 s, chaos 120 s): a start that
 * outlived its hook would hand a running wrangler dev to a hook that had already failed, and no
 * afterAll would ever stop it. Past the bound the harness stops what it started and throws.
 */
const START_TIMEOUT_MS = 80_000;

export async function startHarness(o: HarnessOptions = {}): Promise<Harness> {
  if (!existsSync(AGENT_BUNDLE)) throw new Error(`${AGENT_BUNDLE} is missing: run \`npm run build:agent\` first`);
  const dir = await mkdtemp(join(tmpdir(), "outpost-e2e-"));
  const persistTo = join(dir, "state");
  const secret = randomBytes(32).toString("base64url");
  const port = await freePort();
  // The Worker runs from a copy of the sources: wrangler dev restarts it on any change to them
  // (dropping every socket, failing requests in flight with its own 503), and the repo's sources change
  // under a long run (a rebase, a landing on main, npm ci). scripts/lib/snapshot.ts says more.
  let config = "";
  let cp: ControlPlane;
  let reloads = 0;
  const url = `http://${LOOPBACK}:${port}`;
  const client = async (role: Role, org = ORG) => new OutpostClient(url, await signUserToken({ secret, org, role, subject: `e2e:${role}`, ttl: 3600 }));
  // Signed first, so that nothing can fail once the control plane runs.
  const admin = await client("admin");
  const deadline = Date.now() + START_TIMEOUT_MS;
  const left = () => Math.max(deadline - Date.now(), 1_000);
  try {
    const snapshot = snapshotControlPlane(join(dir, "sources"));
    config = o.config ? o.config(snapshot) : snapshot;
    // Each step bounded by what is left; each stops what it started when it fails (startControlPlane stops wrangler).
    await applyMigrations(persistTo, { config, timeoutMs: left() });
    cp = await startControlPlane({ port, persistTo, secret, migrate: false, readyTimeoutMs: Math.min(45_000, left()), config, vars: o.vars });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const agents: AgentProcess[] = [];
  let workspaces = 0;

  const harness: Harness = {
    dir,
    config,
    port,
    secret,
    get cp() {
      return cp;
    },
    admin,
    client,
    async workspace() {
      const parent = join(dir, `w${++workspaces}`);
      await mkdir(parent);
      return { parent, workspace: join(parent, "workspace") };
    },
    agent(o) {
      // Each agent's state file lives in this file's temp dir, never in the developer's home.
      const stateFile = o.extraArgs?.includes("--state-file") ? [] : ["--state-file", join(dir, `agent-${agents.length + 1}.state.json`)];
      const agent = spawnAgent({ url: cp.url, ...o, extraArgs: [...(o.extraArgs ?? []), ...stateFile] });
      agents.push(agent);
      return agent;
    },
    async restart(how = {}) {
      reloads += cp.reloads();
      if (how.crash) {
        cp.kill();
        await cp.exited;
        if (!(await waitPortFree(port, 10_000))) throw new Error(`port ${port} still in use after the crash`);
      } else await cp.stop();
      cp = await startControlPlane({ port, persistTo, secret, migrate: false, readyTimeoutMs: 45_000, config, vars: o.vars });
    },
    async close() {
      try {
        await Promise.all(agents.map((a) => a.stop("SIGTERM", 3_000).catch(() => a.kill())));
        await cp.stop();
        // A restart of the Worker under the tests would fail them with wrangler's 503 or a dropped socket, far from the cause.
        expect(reloads + cp.reloads(), "wrangler dev rebuilt and restarted the Worker mid-file: something changed its copy of the sources").toBe(0);
        expect(agents.filter((a) => a.alive()).map((a) => a.pid), "agent process groups left running").toEqual([]);
        expect(await portFree(port), `port ${port} is free after stop`).toBe(true);
        expect(killLeftovers(dir), "processes still mentioning the test dir").toEqual([]);
      } finally {
        killLeftovers(dir);
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
  return harness;
}

/** For waits that must give up as soon as an agent exits. */
export const unlessExited = (agent: AgentProcess) => () =>
  agent.exit ? `the agent exited (${agent.exit.code ?? agent.exit.signal}):\n${agent.output()}` : null;

/** Waits for a process (an agent, npm) to exit, bounded. */
export async function exitWithin(p: ProcessGroup, timeoutMs = 15_000): Promise<Exit> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`process ${p.pid} did not exit within ${timeoutMs} ms:\n${p.output()}`)), timeoutMs);
  });
  try {
    return await Promise.race([p.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Asserts an application/problem+json error response and returns its body. */
export async function expectProblem(res: Response, status: number | ((s: number) => boolean), code?: string): Promise<{ code: string; detail: string }> {
  const text = await res.text();
  const statusOk = typeof status === "number" ? res.status === status : status(res.status);
  expect(statusOk, `unexpected status ${res.status}: ${text}`).toBe(true);
  expect(res.headers.get("content-type") ?? "").toMatch(/^application\/problem\+json/);
  const body = JSON.parse(text) as { code: string; detail: string; status: number };
  expect(body.status).toBe(res.status);
  if (code) expect(body.code, body.detail).toBe(code);
  return body;
}

/** A JWT with its payload edited and the original signature kept: what a forger would try. */
export function withClaims(token: string, edit: (claims: Record<string, unknown>) => Record<string, unknown>): string {
  const [header, payload, signature] = token.split(".");
  const claims = JSON.parse(Buffer.from(payload ?? "", "base64url").toString("utf8")) as Record<string, unknown>;
  return `${header}.${Buffer.from(JSON.stringify(edit(claims))).toString("base64url")}.${signature}`;
}
