/**
 * What the sections share: the options, a log, one control plane with one environment served by a
 * real provider-agent process (relay, streaming and footprint use it), and the raw relay baseline.
 * Each is started on first use and stopped by close().
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CreateEnvironmentInput } from "@outpost/protocol";
import type { AgentProcess } from "../../scripts/lib/agent-process.js";
import { startRawRelay, type RawRelay } from "../raw-relay/index.js";
import { startBenchControlPlane, type BenchControlPlane } from "./harness.js";
import { snapshotControlPlane, type SourceOf } from "../../scripts/lib/snapshot.js";

export interface Served {
  id: string;
  workspace: string;
  agent: AgentProcess;
}

export interface BenchContext {
  quick: boolean;
  /** Smaller still than quick, for the CI smoke test: a few samples, no profile. Implies quick. */
  smoke: boolean;
  /** Environments for the scale and reconnect benches, when not the default (1,000; 50 quick). */
  environments: number | undefined;
  log(line: string): void;
  /** A temp dir for this run (raw relay workspace, fleet specs), removed by close(). */
  dir: string;
  /** The copy of the control plane's sources every control plane of this run is started from. */
  config: string;
  /** A control plane of its own (the scale bench), started from the same sources. */
  startControlPlane(label: string): Promise<BenchControlPlane>;
  controlPlane(): Promise<BenchControlPlane>;
  /** An environment on controlPlane() with a real agent process connected and `running`. */
  served(): Promise<Served>;
  rawRelay(): Promise<RawRelay & { workspace: string }>;
  /** Stops the shared control plane (and its agents) when no section needs it any more. */
  releaseControlPlane(): Promise<void>;
  close(): Promise<void>;
}

export function createContext(o: { quick: boolean; smoke?: boolean; environments?: number | undefined; source: SourceOf; log: (line: string) => void }): BenchContext {
  const dir = mkdtempSync(join(tmpdir(), "outpost-bench-"));
  const config = snapshotControlPlane(join(dir, "sources"), o.source);
  let cp: Promise<BenchControlPlane> | null = null;
  let served: Promise<Served> | null = null;
  let raw: Promise<RawRelay & { workspace: string }> | null = null;
  const ctx: BenchContext = {
    quick: o.quick || (o.smoke ?? false),
    smoke: o.smoke ?? false,
    environments: o.environments,
    log: o.log,
    dir,
    config,
    startControlPlane: (label) => startBenchControlPlane({ label, config, log: o.log }),
    controlPlane: () => (cp ??= ctx.startControlPlane("shared")),
    served: () =>
      (served ??= (async () => {
        const h = await ctx.controlPlane();
        const { environment, agentToken } = await h.admin.createEnvironment({ name: "bench-relay", provider: "local" });
        const workspace = join(h.mkdir("relay"), "workspace");
        const agent = h.agent({ token: agentToken, workspace });
        await h.admin.waitForEnvironment(environment.id, (e) => e.state === "running" && e.connected, {
          timeoutMs: 30_000,
          failIf: () => (agent.exit ? `the agent exited (${agent.exit.code ?? agent.exit.signal}):\n${agent.output()}` : null),
        });
        return { id: environment.id, workspace, agent };
      })()),
    rawRelay: () =>
      (raw ??= (async () => {
        const workspace = join(dir, "raw-relay-workspace");
        return { ...(await startRawRelay(workspace)), workspace };
      })()),
    async releaseControlPlane() {
      const running = cp;
      cp = null;
      served = null;
      if (running) await running.then((h) => h.close()).catch(() => undefined);
    },
    async close() {
      const stops: Array<Promise<unknown>> = [];
      if (raw) stops.push(raw.then((r) => r.stop()).catch(() => undefined));
      if (cp) stops.push(cp.then((h) => h.close()).catch(() => undefined));
      await Promise.all(stops);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return ctx;
}

/** Creates an environment in the bench org; `lifecycle` fields left out take their defaults. */
export async function createEnvironment(h: BenchControlPlane, name: string, lifecycle?: CreateEnvironmentInput["lifecycle"]) {
  return h.admin.createEnvironment({ name, provider: "bench", ...(lifecycle ? { lifecycle } : {}) });
}
