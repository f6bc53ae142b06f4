/**
 * The environment's resource use, sent as a `health` frame at a low rate. Best effort: a reading
 * that fails is reported as 0 rather than holding the frame back; frames are not reliable and a
 * missed one is simply replaced by the next.
 */
import { readdir, statfs } from "node:fs/promises";
import os from "node:os";
import { DEFAULT_IDLE_CHECK_MS, type AgentFrame, type HealthFrame } from "@outpost/protocol";
import { realClock, type Clock, type TimerHandle } from "../clock.js";
import { silentLogger, type Logger } from "../log.js";

/**
 * Every report wakes the environment's hibernated object, so reports go at the control plane's
 * default link-check interval (idleCheckMs, 5 min): an idle environment wakes 24 times an hour
 * (12 reports, 12 link checks) rather than 72 at the former 60 s.
 */
export const DEFAULT_HEALTH_INTERVAL_MS = DEFAULT_IDLE_CHECK_MS;

/** Processes visible to the agent: /proc/<pid> entries on Linux, 0 where there is no /proc. */
async function processCount(): Promise<number> {
  if (process.platform !== "linux") return 0;
  try {
    return (await readdir("/proc")).filter((name) => /^[0-9]+$/.test(name)).length;
  } catch {
    return 0;
  }
}

async function disk(workspace: string): Promise<HealthFrame["disk"]> {
  try {
    const s = await statfs(workspace);
    return { totalBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize };
  } catch {
    return { totalBytes: 0, freeBytes: 0 };
  }
}

export async function readHealth(workspace: string, now: () => number = Date.now): Promise<HealthFrame> {
  const [diskInfo, processes] = await Promise.all([disk(workspace), processCount()]);
  return {
    v: 1,
    kind: "health",
    at: new Date(now()).toISOString(),
    cpu: { load1: os.loadavg()[0] ?? 0, cores: os.availableParallelism() },
    memory: { totalBytes: os.totalmem(), freeBytes: os.freemem(), agentRssBytes: process.memoryUsage.rss() },
    disk: diskInfo,
    processes,
  };
}

export interface HealthOptions {
  workspace: string;
  out: { send(frame: AgentFrame): boolean };
  intervalMs?: number;
  clock?: Clock;
  log?: Logger;
}

/** Sends one health frame every `intervalMs` (the first one interval after start) until stopped. */
export function startHealthReports(options: HealthOptions): { stop(): void } {
  const clock = options.clock ?? realClock();
  const log = options.log ?? silentLogger;
  const interval = options.intervalMs ?? DEFAULT_HEALTH_INTERVAL_MS;
  let timer: TimerHandle | null = null;
  let stopped = false;
  const tick = async () => {
    try {
      const frame = await readHealth(options.workspace, () => clock.now());
      if (!stopped) options.out.send(frame);
    } catch (err) {
      log.debug(`health report failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    arm();
  };
  const arm = () => {
    if (!stopped) timer = clock.setTimeout(() => void tick(), interval);
  };
  arm();
  return {
    stop() {
      stopped = true;
      if (timer) clock.clearTimeout(timer);
      timer = null;
    },
  };
}
