/**
 * The agent's own directories outside the workspace (its state directory, the shadow repository's
 * directory, the diff base, the spool) never leave it by their host path: error replies and a run's exit
 * message name them by a stand-in. Through the agent's own dispatch with a real, broken shadow
 * repository; and the rewriting itself.
 */
import { mkdir, realpath, writeFile } from "node:fs/promises";
import path from "node:path";
import type { AgentFrame, RunExit } from "@outpost/protocol";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Agent, type AgentOptions } from "../../provider-agent/src/agent.js";
import { confineFrame, privateDirs, scrubRoots } from "../../provider-agent/src/workspace-errors.js";
import { FrameRecorder, tempDir, waitFor } from "./helpers.js";

let base: { dir: string; cleanup: () => Promise<void> };
let ws: string;
let stateDir: string;
let snapshotDir: string;
beforeEach(async () => {
  base = await tempDir("outpost-private-");
  base.dir = await realpath(base.dir);
  ws = path.join(base.dir, "workspace");
  // The CLI's layout: the shadow repository's directory beside the state file.
  stateDir = path.join(base.dir, "state");
  snapshotDir = path.join(stateDir, "agent.snapshots");
  await mkdir(ws);
  await mkdir(snapshotDir, { recursive: true });
});
afterEach(async () => {
  await base.cleanup();
});

describe("the agent's private directories in what leaves it", () => {
  /** The error message of the agent's reply to one request it must refuse. */
  async function errorMessage(options: Partial<AgentOptions>, op: "snapshot.take" | "exec", params: unknown): Promise<string> {
    const out = new FrameRecorder();
    const agent = new Agent({ workspace: ws, out, snapshotDir, stateDir, ...options });
    try {
      agent.handle({ v: 1, kind: "request", id: "r1", op, params, timeoutMs: 30_000 });
      const reply = await waitFor(() => out.frames.find((f): f is Extract<AgentFrame, { kind: "reply" }> => f.kind === "reply" && f.re === "r1"), 30_000, "the reply");
      if (reply.ok) throw new Error(`${op} should have failed`);
      return reply.error.message;
    } finally {
      await agent.runs.shutdown();
      agent.runs.dispose();
    }
  }

  it("an error reply from a broken shadow repository names it by a stand-in, not its host path", async () => {
    // A shadow repository git cannot read: its message names the repository's path.
    await mkdir(path.join(snapshotDir, "shadow.git"));
    await writeFile(path.join(snapshotDir, "shadow.git", "HEAD"), "not a ref\n");
    const message = await errorMessage({ diffBaseDir: path.join(stateDir, "diff-base") }, "snapshot.take", { snapshotId: "snap_0123456789abcdefghij" });
    expect(message).toContain("(agent snapshots)/shadow.git");
    expect(message).not.toContain(base.dir);
  });

  it("the spool directory (--spool-dir) is named by a stand-in in an error reply too", async () => {
    const spoolDir = path.join(base.dir, "spool");
    await mkdir(spoolDir);
    const message = await errorMessage({ spoolDir }, "exec", { command: [path.join(spoolDir, "no-such-tool")] });
    expect(message).toContain("(agent spool)/no-such-tool");
    expect(message).not.toContain(base.dir);
  });

  it("the rewriting: longest first, so the workspace inside the state directory stays workspace-relative", () => {
    const inner = path.join(stateDir, "workspace");
    const hidden = privateDirs([
      { dir: snapshotDir, as: "(agent snapshots)" },
      { dir: stateDir, as: "(agent state)" },
    ]);
    const text = `cannot open ${snapshotDir}/shadow.git/index, ${stateDir}/agent.json or ${stateDir}; ${inner}/a.txt; ${stateDir}-old/x`;
    expect(scrubRoots(text, [inner], hidden)).toBe(`cannot open (agent snapshots)/shadow.git/index, (agent state)/agent.json or (agent state); a.txt; ${stateDir}-old/x`);
  });

  it("a run's exit message is scrubbed like an error reply; other frames pass as they are", () => {
    const hidden = privateDirs([{ dir: stateDir, as: "(agent state)" }]);
    const exit: RunExit = { v: 1, kind: "run.exit", seq: 1, runId: "run_1", exitCode: null, signal: null, durationMs: 5, error: `could not start ${ws}/bin/tool: see ${stateDir}/agent.json` };
    let scrubs = 0;
    const scrub = (text: string) => {
      scrubs++;
      return scrubRoots(text, [ws], hidden);
    };
    expect(confineFrame(exit, scrub).error).toBe("could not start bin/tool: see (agent state)/agent.json");
    const output: AgentFrame = { v: 1, kind: "run.output", seq: 2, runId: "run_1", n: 0, stream: "stdout", data: Buffer.from(ws).toString("base64") };
    expect(confineFrame(output, scrub)).toBe(output);
    // Output frames cost no path look-up (realpath) at all.
    expect(scrubs).toBe(1);
  });
});
