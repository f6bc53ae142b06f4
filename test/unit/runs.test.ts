import { existsSync, readFileSync } from "node:fs";
import { mkdir, realpath, writeFile } from "node:fs/promises";
import path from "node:path";
import { parseAgentFrame, type AgentFrame, type RunExit, type RunOutput } from "@outpost/protocol";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { RunManager } from "../../provider-agent/src/services/runs.js";
import { pidAlive } from "../../scripts/lib/processes.js";
import { sleep, tempDir, waitFor } from "./helpers.js";

/** A stand-in link: while "disconnected", sendPaced waits, as the reliable link does when its outbox is full. */
class GatedOutbound {
  frames: AgentFrame[] = [];
  connected = true;
  waiting = 0;
  #wake: Array<() => void> = [];

  send(frame: AgentFrame): boolean {
    if (!this.connected) return false;
    this.#record(frame);
    return true;
  }

  async sendPaced(frame: AgentFrame): Promise<void> {
    while (!this.connected) {
      this.waiting++;
      await new Promise<void>((resolve) => this.#wake.push(resolve));
      this.waiting--;
    }
    this.#record(frame);
  }

  disconnect(): void {
    this.connected = false;
  }

  reconnect(): void {
    this.connected = true;
    for (const wake of this.#wake.splice(0)) wake();
  }

  #record(frame: AgentFrame): void {
    const parsed = parseAgentFrame(JSON.stringify(frame));
    if (!parsed.ok) throw new Error(`invalid frame: ${parsed.error}`);
    this.frames.push(parsed.frame);
  }

  output(runId: string): RunOutput[] {
    return this.frames.filter((f): f is RunOutput => f.kind === "run.output" && f.runId === runId);
  }

  text(runId: string, stream: "stdout" | "stderr"): string {
    return Buffer.concat(this.output(runId).filter((f) => f.stream === stream).map((f) => Buffer.from(f.data, "base64"))).toString();
  }

  exit(runId: string): RunExit | undefined {
    return this.frames.find((f): f is RunExit => f.kind === "run.exit" && f.runId === runId);
  }
}

let base: { dir: string; cleanup: () => Promise<void> };
let ws: string;
let out: GatedOutbound;
let manager: RunManager;

beforeEach(async () => {
  base = await tempDir();
  ws = path.join(base.dir, "ws");
  await mkdir(ws);
  out = new GatedOutbound();
  manager = new RunManager({ workspace: ws, out, killGraceMs: 500 });
});
afterEach(async () => {
  out.reconnect();
  await manager.shutdown();
  manager.dispose();
  await base.cleanup();
});

const exitOf = (runId: string) => waitFor(() => out.exit(runId), 10_000, `run.exit of ${runId}`);

describe("runs", () => {
  it("streams output as run.output frames in order, then run.exit with the exit code", async () => {
    const { pid } = await manager.start({ runId: "r1", command: ["sh", "-c", "echo one; echo two >&2; echo three; exit 3"] });
    expect(pid).toBeGreaterThan(0);
    const exit = await exitOf("r1");
    expect(exit).toMatchObject({ exitCode: 3, signal: null });
    expect(exit.cancelled).toBeUndefined();
    expect(exit.durationMs).toBeGreaterThanOrEqual(0);
    const frames = out.output("r1");
    expect(frames.map((f) => f.n)).toEqual([...frames.keys()]);
    expect(out.text("r1", "stdout")).toBe("one\nthree\n");
    expect(out.text("r1", "stderr")).toBe("two\n");
    expect(out.frames.at(-1)).toBe(exit);
  });

  it("runs in the workspace with the run's env and message (stdin, then closed), never the agent token", async () => {
    process.env.OUTPOST_AGENT_TOKEN = "secret-token";
    try {
      const script = 'printf "%s|%s|%s|%s|" "$OUTPOST_RUN_ID" "$OUTPOST_RUN_MESSAGE" "$EXTRA" "${OUTPOST_AGENT_TOKEN-unset}"; pwd; cat';
      await manager.start({ runId: "env", command: ["sh", "-c", script], env: { EXTRA: "x" }, message: "do the thing" });
    } finally {
      delete process.env.OUTPOST_AGENT_TOKEN;
    }
    expect(await exitOf("env")).toMatchObject({ exitCode: 0 });
    expect(out.text("env", "stdout")).toBe(`env|do the thing|x|unset|${await realpath(ws)}\ndo the thing`);
  });

  it("reports a crash by its signal, and a command that cannot start as exec_failed", async () => {
    await manager.start({ runId: "crash", command: ["sh", "-c", "echo dying; kill -SEGV $$"] });
    expect(await exitOf("crash")).toMatchObject({ exitCode: null, signal: "SIGSEGV" });
    expect(out.text("crash", "stdout")).toBe("dying\n");
    await expect(manager.start({ runId: "missing", command: ["outpost-no-such-program-xyz"] })).rejects.toMatchObject({ code: "exec_failed" });
    expect(manager.reports().map((r) => r.runId)).toEqual(["crash"]);
  });

  it("a second start of the same run id answers with the same pid and starts nothing", async () => {
    const counter = path.join(base.dir, "starts");
    const command = ["sh", "-c", `echo x >> ${counter}; sleep 30`];
    const [a, b] = await Promise.all([manager.start({ runId: "once", command }), manager.start({ runId: "once", command })]);
    expect(b.pid).toBe(a.pid);
    expect((await manager.start({ runId: "once", command })).pid).toBe(a.pid);
    await waitFor(() => existsSync(counter));
    await sleep(100);
    expect(readFileSync(counter, "utf8")).toBe("x\n");
  });

  it("cancel stops the whole process group and run.exit says cancelled", async () => {
    const pidFile = path.join(base.dir, "pids");
    const { pid } = await manager.start({ runId: "long", command: ["sh", "-c", `sleep 30 & echo $! > ${pidFile}; sleep 30`] });
    const child = await waitFor(() => existsSync(pidFile) && Number(readFileSync(pidFile, "utf8").trim()), 5_000, "the pid file");
    expect(manager.reports()).toEqual([{ runId: "long", state: "running", pid }]);
    expect(manager.cancel("long")).toEqual({ cancelled: true });
    expect(await exitOf("long")).toMatchObject({ cancelled: true, exitCode: null, signal: "SIGTERM" });
    for (const p of [pid, child]) await waitFor(() => !pidAlive(p), 5_000, `process ${p} to be gone`);
    expect(manager.cancel("long")).toEqual({ cancelled: false });
    expect(manager.cancel("unknown")).toEqual({ cancelled: false });
    expect(manager.reports()).toEqual([{ runId: "long", state: "exited", pid }]);
  });

  it("keeps running while the link is down, then delivers everything in order", async () => {
    const marker = path.join(base.dir, "second-half");
    const script = `echo first; while [ ! -f ${marker} ]; do sleep 0.02; done; for i in 1 2 3; do echo "later $i"; done; echo oops >&2; exit 5`;
    const { pid } = await manager.start({ runId: "survivor", command: ["sh", "-c", script] });
    await waitFor(() => out.text("survivor", "stdout") === "first\n", 5_000, "the first line");
    out.disconnect();
    // The run goes on without the link: it reaches its end while nothing can be delivered.
    await writeFile(marker, "");
    await waitFor(() => !pidAlive(pid), 5_000, "the run to finish");
    await waitFor(() => out.waiting > 0, 5_000, "a frame waiting for the link");
    expect(out.exit("survivor")).toBeUndefined();
    expect(manager.reports()).toEqual([{ runId: "survivor", state: expect.stringMatching(/running|exited/), pid }]);
    out.reconnect();
    expect(await exitOf("survivor")).toMatchObject({ exitCode: 5 });
    expect(out.text("survivor", "stdout")).toBe("first\nlater 1\nlater 2\nlater 3\n");
    expect(out.text("survivor", "stderr")).toBe("oops\n");
    const frames = out.output("survivor");
    expect(frames.map((f) => f.n)).toEqual([...frames.keys()]);
    expect(manager.reports()).toEqual([{ runId: "survivor", state: "exited", pid }]);
  });

  it("shutdown cancels every run and waits for their run.exit", async () => {
    await manager.start({ runId: "a", command: ["sleep", "30"] });
    await manager.start({ runId: "b", command: ["sh", "-c", "trap '' TERM; echo ready; sleep 30"] });
    await waitFor(() => out.text("b", "stdout") === "ready\n", 5_000, "b to ignore SIGTERM");
    await manager.shutdown();
    expect(out.exit("a")).toMatchObject({ cancelled: true, signal: "SIGTERM" });
    // b ignores SIGTERM: it goes at the end of the grace period.
    expect(out.exit("b")).toMatchObject({ cancelled: true, signal: "SIGKILL" });
    expect(manager.reports().map((r) => r.state)).toEqual(["exited", "exited"]);
  });
});
