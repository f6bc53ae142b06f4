/**
 * Runs: long-lived processes (a remote agent loop) that outlive the request that started them and
 * any number of link drops. Output and the exit travel as reliable `run.output` / `run.exit`
 * frames; while the link is down `sendPaced` waits, the pump stops reading, and the run blocks on
 * its own pipe instead of the agent buffering without bound. A run ends on its own, by run.cancel,
 * by shutdown, or when the agent process exits.
 */
import { spawn, type ChildProcessByStdio } from "node:child_process";
import type { Readable, Writable } from "node:stream";
import type { AgentFrame, OpParams, RunReport, SnapshotTaken } from "@outpost/protocol";
import { realClock, type Clock, type TimerHandle } from "../clock.js";
import { AgentError } from "../errors.js";
import { silentLogger, type Logger } from "../log.js";
import { forgetGroup, recordGroup } from "../process-groups.js";
import { childEnv, KILL_GRACE_MS, killGroup, spawnFailure, workingDirectory } from "./exec.js";
import { OutputPump, type StreamName } from "./output.js";

export const RUN_COALESCE_MS = 50;
/** Finished runs still reported in hello; the oldest are forgotten first. */
export const MAX_EXITED_KEPT = 100;
/** Linux refuses a single environment string above 128 KiB; a longer message goes by stdin only. */
const MAX_ENV_MESSAGE_BYTES = 96 * 1024;
/** After the run's process exits, how long to wait for pipes held open by processes it left behind. */
const PIPE_LINGER_MS = 200;

type RunStart = OpParams<"run.start">;
type Child = ChildProcessByStdio<Writable, Readable, Readable>;

type Run = {
  runId: string;
  pid: number;
  child: Child;
  startedAt: number;
  state: "running" | "exited";
  cancelled: boolean;
  /** Next run.output ordinal. */
  n: number;
  exited: Promise<void>;
  threadId?: string;
  objectiveId?: string;
};

export interface RunManagerOptions {
  workspace: string;
  out: { sendPaced(frame: AgentFrame): Promise<void> };
  clock?: Clock;
  log?: Logger;
  killGraceMs?: number;
  /** Takes the workspace's snapshot when a run ends; it travels in the run's run.exit. */
  snapshotOnExit?: (run: { runId: string; threadId?: string; objectiveId?: string }) => Promise<SnapshotTaken>;
}

/** Every manager with live runs; one exit hook kills what they still hold when the agent exits. */
const managers = new Set<RunManager>();
let exitHooked = false;
function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.on("exit", () => {
    for (const m of managers) m.killAll();
  });
}

export class RunManager {
  readonly #runs = new Map<string, Run>();
  readonly #starting = new Map<string, Promise<{ pid: number }>>();
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #grace: number;

  constructor(private readonly options: RunManagerOptions) {
    this.#clock = options.clock ?? realClock();
    this.#log = options.log ?? silentLogger;
    this.#grace = options.killGraceMs ?? KILL_GRACE_MS;
    managers.add(this);
    hookExit();
  }

  /** Starts a run, or answers with the pid of the run already started under this id. */
  start(params: RunStart): Promise<{ pid: number }> {
    const known = this.#runs.get(params.runId);
    if (known) return Promise.resolve({ pid: known.pid });
    let pending = this.#starting.get(params.runId);
    if (!pending) {
      pending = this.#spawn(params).finally(() => this.#starting.delete(params.runId));
      this.#starting.set(params.runId, pending);
    }
    return pending;
  }

  /** SIGTERM to the run's process group, SIGKILL after the grace; false when the run is unknown or over. */
  cancel(runId: string): { cancelled: boolean } {
    const run = this.#runs.get(runId);
    if (!run || run.state !== "running") return { cancelled: false };
    if (!run.cancelled) {
      run.cancelled = true;
      this.#log.info(`run ${runId}: cancelling (pid ${run.pid})`);
      killGroup(run.pid, "SIGTERM");
      // Not cleared on exit: group members that ignore SIGTERM must still go. The group stays in
      // the ledger until then, so an agent killed within the grace leaves none of them behind.
      this.#clock.setTimeout(() => {
        killGroup(run.pid, "SIGKILL");
        forgetGroup(run.pid);
      }, this.#grace);
    }
    return { cancelled: true };
  }

  /** The runs this process started that are running or have exited (most recent last), for hello (at most 1000). */
  reports(): RunReport[] {
    return [...this.#runs.values()].slice(-1000).map((r) => ({ runId: r.runId, state: r.state, pid: r.pid }));
  }

  /**
   * Cancels every running run and waits for them to exit and their run.exit to be handed to the
   * link, at most `waitMs` (a link that takes nothing must not hold a shutdown up forever).
   */
  async shutdown(waitMs = this.#grace + 3_000): Promise<void> {
    const running = [...this.#runs.values()].filter((r) => r.state === "running");
    if (running.length === 0) return;
    for (const r of running) this.cancel(r.runId);
    let timer: TimerHandle | null = null;
    await Promise.race([
      Promise.all(running.map((r) => r.exited)),
      new Promise<void>((resolve) => (timer = this.#clock.setTimeout(resolve, waitMs))),
    ]);
    if (timer) this.#clock.clearTimeout(timer);
  }

  /** Last resort when the agent process exits: no time for a grace period. */
  killAll(): void {
    for (const r of this.#runs.values()) if (r.state === "running") killGroup(r.pid, "SIGKILL");
  }

  /** Stops tracking this manager in the exit hook (tests; a manager that is thrown away). */
  dispose(): void {
    managers.delete(this);
  }

  async #spawn(params: RunStart): Promise<{ pid: number }> {
    const cwd = await workingDirectory(this.options.workspace, undefined);
    const [file, ...args] = params.command as [string, ...string[]];
    const env: Record<string, string> = { ...params.env, OUTPOST_RUN_ID: params.runId };
    if (params.message !== undefined) {
      if (Buffer.byteLength(params.message) <= MAX_ENV_MESSAGE_BYTES) env.OUTPOST_RUN_MESSAGE = params.message;
      else this.#log.warn(`run ${params.runId}: the message is too long for OUTPOST_RUN_MESSAGE; it is on stdin only`);
    }
    let child: Child;
    try {
      child = spawn(file, args, { cwd, env: childEnv(env), detached: true, stdio: ["pipe", "pipe", "pipe"], shell: false });
    } catch (err) {
      throw new AgentError("bad_request", err instanceof Error ? err.message : String(err));
    }
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", resolve);
      child.once("error", (err) => reject(spawnFailure(file, err)));
    });
    const pid = child.pid as number;
    recordGroup(pid);
    child.on("error", (err) => this.#log.warn(`run ${params.runId}: ${err.message}`));
    child.stdin.on("error", () => {});
    child.stdin.end(params.message ?? "");
    const run: Run = { runId: params.runId, pid, child, startedAt: this.#clock.now(), state: "running", cancelled: false, n: 0, exited: Promise.resolve(), threadId: params.threadId, objectiveId: params.objectiveId };
    this.#runs.set(run.runId, run);
    this.#log.info(`run ${run.runId}: started ${file} (pid ${pid})`);
    run.exited = this.#follow(run);
    return { pid };
  }

  /** Streams the run's output, then reports its exit once everything it printed is handed over. */
  #follow(run: Run): Promise<void> {
    const { child } = run;
    const pump = new OutputPump({ clock: this.#clock, coalesceMs: RUN_COALESCE_MS, sink: (stream, data) => this.#output(run, stream, data) });
    pump.attach(child.stdout, "stdout");
    pump.attach(child.stderr, "stderr");
    return new Promise<void>((resolve) => {
      let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
      let closed = false;
      const later = (ms: number, fn: () => void) => void this.#clock.setTimeout(fn, ms);
      // Leftover processes holding the pipes are cut loose after a linger (not counted while paused).
      const linger = () =>
        later(PIPE_LINGER_MS, () => {
          if (pump.paused) return void pump.whenFlowing().then(linger);
          child.stdout.destroy();
          child.stderr.destroy();
        });
      child.on("exit", (code, signal) => {
        exit = { code, signal };
        linger();
      });
      child.on("close", async (code, signal) => {
        if (closed) return;
        closed = true;
        // A cancelled run's group is forgotten after its SIGKILL (see cancel).
        if (!run.cancelled) forgetGroup(run.pid);
        await pump.finish();
        const ended = exit ?? { code, signal };
        run.state = "exited";
        this.#forgetOldRuns();
        const durationMs = Math.max(0, this.#clock.now() - run.startedAt);
        this.#log.info(`run ${run.runId}: exited (${ended.signal ?? `code ${ended.code}`}${run.cancelled ? ", cancelled" : ""})`);
        const snapshot = await this.#snapshot(run);
        await this.#send({
          v: 1,
          kind: "run.exit",
          runId: run.runId,
          exitCode: ended.code,
          signal: ended.signal,
          durationMs,
          ...(run.cancelled ? { cancelled: true } : {}),
          ...(snapshot ? { snapshot } : {}),
        });
        resolve();
      });
    });
  }

  /** The end-of-run snapshot; a failure is logged, never holds the run's exit back. */
  async #snapshot(run: Run): Promise<SnapshotTaken | null> {
    if (!this.options.snapshotOnExit) return null;
    try {
      return await this.options.snapshotOnExit({ runId: run.runId, threadId: run.threadId, objectiveId: run.objectiveId });
    } catch (err) {
      this.#log.warn(`run ${run.runId}: no snapshot at its end: ${err instanceof Error ? err.message : String(err)}`);
      return null;
    }
  }

  #output(run: Run, stream: StreamName, data: Buffer): Promise<void> {
    return this.#send({ v: 1, kind: "run.output", runId: run.runId, n: run.n++, stream, data: data.toString("base64") });
  }

  /** A frame the link refuses is logged and skipped (a gap in n shows it); the run itself goes on. */
  async #send(frame: AgentFrame): Promise<void> {
    try {
      await this.options.out.sendPaced(frame);
    } catch (err) {
      this.#log.warn(`could not send ${frame.kind}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  #forgetOldRuns(): void {
    const exited = [...this.#runs.values()].filter((r) => r.state === "exited");
    for (const r of exited.slice(0, Math.max(0, exited.length - MAX_EXITED_KEPT))) this.#runs.delete(r.runId);
  }
}
