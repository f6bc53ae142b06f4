/**
 * The provider-agent as a separate process: the built bundle, run exactly as a provider runs it
 * (`node provider-agent/bin/outpost-agent.js --url … --workspace …`, the token in its environment).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./dev-vars.js";
import { spawnGroup, type ProcessGroup } from "./process-group.js";

export const AGENT_LAUNCHER = join(ROOT, "provider-agent", "bin", "outpost-agent.js");
export const AGENT_BUNDLE = join(ROOT, "provider-agent", "dist", "cli.js");

/** The agent's exit codes, as `outpost-agent --help` documents them. */
export const AGENT_EXIT = { ok: 0, internal: 1, usage: 2, rejected: 3 } as const;

/** Builds the agent bundle with `npm run build:agent` when it is missing; true when it built. */
export async function ensureAgentBundle(o: { onLine?: (line: string) => void; timeoutMs?: number } = {}): Promise<boolean> {
  if (existsSync(AGENT_BUNDLE)) return false;
  const build = spawnGroup("npm", ["run", "build:agent"], { cwd: ROOT, onLine: o.onLine });
  const timer = setTimeout(() => build.kill(), o.timeoutMs ?? 120_000);
  const exit = await build.exited.finally(() => clearTimeout(timer));
  await build.stop("SIGKILL", 1_000).catch(() => undefined);
  if (exit.code !== 0 || !existsSync(AGENT_BUNDLE)) {
    throw new Error(`npm run build:agent failed (${exit.code ?? exit.signal}); ${AGENT_BUNDLE} is missing:\n${build.output()}`);
  }
  return true;
}

export interface AgentOptions {
  /** The control plane's base URL. */
  url: string;
  /** The environment's agent token. */
  token: string;
  workspace: string;
  /**
   * How the token reaches the agent: its environment (OUTPOST_AGENT_TOKEN, the default, not visible
   * in process listings) or the --token flag.
   */
  tokenVia?: "env" | "flag";
  logLevel?: "info" | "debug";
  /** More flags for the agent (e.g. --state-file PATH). */
  extraArgs?: string[];
  /** More environment variables for the agent process (e.g. NODE_OPTIONS). */
  env?: NodeJS.ProcessEnv;
  /** Each line the agent logs (it logs to stderr). */
  onLine?: (line: string) => void;
  /** A command that runs the agent (e.g. ["prlimit", "--fsize=N", "--"]); it must exec it in place. */
  wrapper?: string[];
}

/** A running agent; stop() sends SIGTERM (the agent's documented clean shutdown, exit code 0). */
export type AgentProcess = ProcessGroup;

export function spawnAgent(o: AgentOptions): AgentProcess {
  const args = [AGENT_LAUNCHER, "--url", o.url, "--workspace", o.workspace, "--log-level", o.logLevel ?? "info", ...(o.extraArgs ?? [])];
  const env: NodeJS.ProcessEnv = { ...process.env, ...o.env };
  delete env.OUTPOST_AGENT_TOKEN;
  delete env.OUTPOST_URL;
  delete env.OUTPOST_WORKSPACE;
  if (o.tokenVia === "flag") args.push("--token", o.token);
  else env.OUTPOST_AGENT_TOKEN = o.token;
  const [file, ...argv] = [...(o.wrapper ?? []), process.execPath, ...args] as [string, ...string[]];
  return spawnGroup(file, argv, { cwd: ROOT, env, onLine: o.onLine ? (line) => o.onLine?.(line) : undefined });
}
