/** What the chaining and federation e2e tests share: environments with real agents, and forward streams. */
import { realpathSync } from "node:fs";
import { expect } from "vitest";
import type { AgentProcess } from "../../scripts/lib/agent-process.js";
import { unlessExited, type Harness } from "./helpers.js";

export interface Started {
  id: string;
  /** The workspace, symlinks resolved (what `pwd -P` prints in it). */
  workspace: string;
  agent: AgentProcess;
}

/** Creates a `local` environment, starts a real agent for it and waits until it is running and connected. */
export async function startEnvironment(h: Harness, name: string, o: { gateway?: { allowFrom?: string[]; capabilities?: string[] } } = {}): Promise<Started> {
  const created = await h.admin.createEnvironment({ name, provider: "local" });
  const { workspace } = await h.workspace();
  const agent = h.agent({ token: created.agentToken, workspace });
  await h.admin.waitForEnvironment(name, (e) => e.state === "running" && e.connected, { timeoutMs: 30_000, failIf: unlessExited(agent) });
  if (o.gateway) {
    const gate = await h.admin.request("PUT", `/v1/environments/${name}/gateway`, { json: { accept: true, allowFrom: o.gateway.allowFrom ?? ["*"], capabilities: o.gateway.capabilities ?? [] } });
    expect(gate.status).toBe(200);
  }
  return { id: created.environment.id, workspace: realpathSync(workspace), agent };
}

/** A command that prints its pid, then sleeps in that same process (so the pid is the leaf's process). */
export const SLEEPER = ["sh", "-c", "echo $$; exec sleep 300"];

/**
 * Reads a forward stream until the leaf printed its pid (SLEEPER); returns it with the forwardId and
 * the reader, to read the rest.
 */
export async function readUntilPid(res: Response): Promise<{ pid: number; forwardId: string; reader: ReadableStreamDefaultReader<Uint8Array>; text: () => string; rest: () => Promise<string> }> {
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let forwardId = "";
  let pid = 0;
  while (!pid) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`stream ended early: ${text}`);
    text += decoder.decode(value, { stream: true });
    const complete = text.slice(0, text.lastIndexOf("\n") + 1);
    let stdout = "";
    for (const l of complete.split("\n").filter(Boolean).map((x) => JSON.parse(x) as Record<string, string>)) {
      if (l.type === "started") forwardId = l.forwardId!;
      if (l.type === "stdout") stdout += l.data!;
    }
    if (stdout.includes("\n")) pid = Number(stdout.slice(0, stdout.indexOf("\n")));
  }
  const rest = async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return text;
      text += decoder.decode(value, { stream: true });
    }
  };
  return { pid, forwardId, reader, text: () => text, rest };
}
