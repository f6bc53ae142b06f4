/**
 * A control plane for one bench section: the real Worker under `wrangler dev` on a free loopback
 * port, state in a fresh temp dir, a fresh signing key (never the developer's .dev.vars). Built on
 * the same helpers as `npm start` and the e2e tests (scripts/lib); everything it starts is stopped
 * by close(), and the temp dir removed.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AGENT_BUNDLE, ensureAgentBundle, spawnAgent, type AgentProcess } from "../../scripts/lib/agent-process.js";
import { OutpostClient } from "../../scripts/lib/api.js";
import { startControlPlane, type ControlPlane } from "../../scripts/lib/control-plane.js";
import { freePort } from "../../scripts/lib/ports.js";
import { signUserToken } from "../../scripts/lib/tokens.js";

export const BENCH_ORG = "bench";

/**
 * The benches measure latency and throughput, not the per-environment flood limit (100 requests a
 * second, bursts of 500: durable-objects/flood.ts), which a quiet machine's sequential loops exceed
 * against one environment; it is lifted for their control planes.
 */
const UNLIMITED = { OUTPOST_ENV_RATE: "1000000", OUTPOST_ENV_BURST: "1000000" };

export interface BenchControlPlane {
  /** Temp dir holding state, workspaces and agent state files. */
  dir: string;
  port: number;
  readonly cp: ControlPlane;
  readonly url: string;
  /** An admin of org `bench`. */
  admin: OutpostClient;
  /** A fresh directory under `dir`. */
  mkdir(name: string): string;
  /** A real provider-agent process (the built CLI), its state file inside `dir`. */
  agent(o: { token: string; workspace: string; onLine?: (line: string) => void }): AgentProcess;
  /** wrangler's recent output other than its per-request log lines: warnings, errors, reloads. */
  notable(): string[];
  /** Stops wrangler (agents keep running) and starts it again on the same port and state. */
  restart(o?: { beforeStart?: () => void }): Promise<{ stoppedMs: number; startedMs: number }>;
  stop(): Promise<void>;
  close(): Promise<void>;
}

export interface BenchControlPlaneOptions {
  label: string;
  /** A wrangler.toml to run instead of the repo's (see snapshot.ts). */
  config?: string;
  log?: (line: string) => void;
}

export async function startBenchControlPlane(o: BenchControlPlaneOptions): Promise<BenchControlPlane> {
  await ensureAgentBundle();
  const dir = mkdtempSync(join(tmpdir(), `outpost-bench-${o.label}-`));
  const persistTo = join(dir, "state");
  const secret = randomBytes(32).toString("base64url");
  const port = await freePort();
  const notable: string[] = [];
  const onLine = (line: string) => {
    if (!line.trim() || line.startsWith("[wrangler:info] GET") || line.startsWith("[wrangler:info] POST") || line.startsWith("[wrangler:info] PUT")) return;
    notable.push(`${new Date().toISOString()} ${line}`);
    if (notable.length > 100) notable.shift();
  };
  const start = (migrate: boolean) => startControlPlane({ port, persistTo, secret, migrate, readyTimeoutMs: 60_000, onLine, vars: UNLIMITED, ...(o.config ? { config: o.config } : {}) });
  let cp: ControlPlane;
  try {
    cp = await start(true);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const token = await signUserToken({ secret, org: BENCH_ORG, role: "admin", subject: "bench", ttl: 6 * 3600 });
  const agents: AgentProcess[] = [];
  let stopped = false;
  let dirs = 0;
  const h: BenchControlPlane = {
    dir,
    port,
    get cp() {
      return cp;
    },
    get url() {
      return cp.url;
    },
    admin: new OutpostClient(`http://127.0.0.1:${port}`, token),
    notable: () => [...notable],
    mkdir(name) {
      const path = join(dir, `${name}-${++dirs}`);
      mkdirSync(path, { recursive: true });
      return path;
    },
    agent(a) {
      const agent = spawnAgent({ url: cp.url, token: a.token, workspace: a.workspace, onLine: a.onLine, extraArgs: ["--state-file", join(dir, `agent-${agents.length + 1}.state.json`)] });
      agents.push(agent);
      return agent;
    },
    async restart(r = {}) {
      const t0 = performance.now();
      await cp.stop();
      const t1 = performance.now();
      r.beforeStart?.();
      cp = await start(false);
      return { stoppedMs: t1 - t0, startedMs: performance.now() - t1 };
    },
    async stop() {
      if (!stopped) await cp.stop();
      stopped = true;
    },
    async close() {
      try {
        await Promise.all(agents.map((a) => a.stop("SIGTERM", 3_000).catch(() => a.kill())));
        await h.stop();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  o.log?.(`control plane ${o.label} on ${cp.url} (state ${persistTo}; sources ${o.config ?? "the repo"}; agent bundle ${AGENT_BUNDLE})`);
  return h;
}
