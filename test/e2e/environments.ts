/**
 * Environments with real agents for the e2e and chaos tests: create one, start its agent, wait until
 * it is running and connected. One copy of what nearly every test file did by hand.
 */
import { mkdirSync, realpathSync } from "node:fs";
import type { CreateEnvironmentInput, Environment } from "@outpost/protocol";
import type { AgentOptions, AgentProcess } from "../../scripts/lib/agent-process.js";
import { unlessExited, type Harness } from "./helpers.js";

/** Agent options beyond its token and workspace (url through a proxy, extraArgs, env, …). */
export type AgentExtras = Partial<Omit<AgentOptions, "token" | "workspace">>;

/** Starts an agent for an environment that exists and waits until it is running and connected. */
export async function connectAgent(h: Harness, idOrName: string, token: string, workspace: string, o: { agent?: AgentExtras; timeoutMs?: number } = {}): Promise<{ agent: AgentProcess; environment: Environment }> {
  const agent = h.agent({ ...o.agent, token, workspace });
  const environment = await h.admin.waitForEnvironment(idOrName, (e) => e.state === "running" && e.connected, { timeoutMs: o.timeoutMs ?? 30_000, failIf: unlessExited(agent) });
  return { agent, environment };
}

export interface StartOptions {
  /** More of the create body (lifecycle, config, metadata); provider defaults to `local`. */
  create?: Omit<Partial<CreateEnvironmentInput>, "name">;
  /** Runs on the workspace (created first) before the agent starts in it. */
  prepare?: (workspace: string) => void;
  agent?: AgentExtras;
  /** Open the environment's gateway (allowFrom default `*`). */
  gateway?: { allowFrom?: string[]; capabilities?: string[] };
  timeoutMs?: number;
}

export interface Started {
  id: string;
  name: string;
  /** The workspace, symlinks resolved (what `pwd -P` prints in it). */
  workspace: string;
  /** The workspace's own parent dir (nothing else in it). */
  parent: string;
  agent: AgentProcess;
  agentToken: string;
}

/** Creates an environment (provider `local` unless said), starts a real agent for it and waits until it is running and connected. */
export async function startEnvironment(h: Harness, name: string, o: StartOptions = {}): Promise<Started> {
  const created = await h.admin.createEnvironment({ provider: "local", ...o.create, name });
  const { workspace, parent } = await h.workspace();
  if (o.prepare) {
    mkdirSync(workspace, { recursive: true });
    o.prepare(workspace);
  }
  const { agent } = await connectAgent(h, created.environment.id, created.agentToken, workspace, o);
  if (o.gateway) await h.admin.setGateway(name, { accept: true, allowFrom: o.gateway.allowFrom ?? ["*"], capabilities: o.gateway.capabilities ?? [] });
  return { id: created.environment.id, name, workspace: realpathSync(workspace), parent, agent, agentToken: created.agentToken };
}
