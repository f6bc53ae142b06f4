/**
 * Runs one command in its own process group so a timeout or a cancel can stop everything it
 * started. Argv by default; `/bin/sh -c` only when the caller asks for a shell. Output is either
 * captured up to a cap per stream (the rest drained and dropped so a chatty child never blocks on a
 * full pipe) or streamed to a sink as it comes, with the sink's pace applied to the child's pipes.
 */
import { spawn, type ChildProcessByStdio } from "node:child_process";
import { realpath, stat } from "node:fs/promises";
import { StringDecoder } from "node:string_decoder";
import type { Readable, Writable } from "node:stream";
import type { ExecParams, ExecResult } from "@outpost/protocol";
import type { Clock } from "../clock.js";
import { AgentError, errnoCode } from "../errors.js";
import { resolveInWorkspace } from "../jail.js";
import { forgetGroup, recordGroup } from "../process-groups.js";
import { OutputPump, type OutputSink } from "./output.js";

export const OUTPUT_CAP_BYTES = 256 * 1024;
export const KILL_GRACE_MS = 2_000;
/** Streamed exec output: how long a small write may wait for more to join its chunk. */
export const EXEC_COALESCE_MS = 20;
/** After the command exits, how long to wait for pipes held open by processes it left behind. */
const PIPE_LINGER_MS = 200;
/** Never handed to commands: the agent's own credential. */
const PRIVATE_ENV = ["OUTPOST_AGENT_TOKEN"];

export interface ExecOptions {
  workspace: string;
  clock: Clock;
  /**
   * Aborted with an AgentError: code `timeout` (the request's deadline) yields a timed-out result
   * like the command's own `timeoutMs` does, code `cancelled` a cancelled result; any other reason
   * rejects with that reason.
   */
  signal?: AbortSignal;
  /** Where streamed output goes (`params.stream`); it resolves when the link can take more. */
  onOutput?: OutputSink;
}

class Capture {
  text = "";
  bytes = 0;
  truncated = false;
  #decoder = new StringDecoder("utf8");

  attach(stream: Readable): void {
    stream.on("data", (buf: Buffer) => {
      const room = OUTPUT_CAP_BYTES - this.bytes;
      if (room <= 0) {
        this.truncated = true;
        return;
      }
      const take = buf.length > room ? buf.subarray(0, room) : buf;
      if (take.length < buf.length) this.truncated = true;
      this.bytes += take.length;
      // A character cut at the cap stays in the decoder and is dropped rather than mangled.
      this.text += this.#decoder.write(take);
    });
  }

  finish(): string {
    if (!this.truncated) this.text += this.#decoder.end();
    return this.text;
  }
}

export async function workingDirectory(workspace: string, cwd: string | undefined): Promise<string> {
  if (cwd === undefined || cwd === "" || cwd === ".") {
    return realpath(workspace).catch(() => {
      throw new AgentError("not_found", "the workspace directory does not exist");
    });
  }
  const r = await resolveInWorkspace(workspace, cwd);
  if (!r.ok) throw new AgentError(r.code, r.message);
  const info = await stat(r.path).catch(() => null);
  if (!info) throw new AgentError("not_found", `working directory '${cwd}' does not exist`);
  if (!info.isDirectory()) throw new AgentError("bad_request", `working directory '${cwd}' is not a directory`);
  return r.path;
}

export function childEnv(extra: Record<string, string> | undefined, inherit: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...inherit, ...extra };
  for (const name of PRIVATE_ENV) delete env[name];
  return env;
}

export function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

export function spawnFailure(file: string, err: Error): AgentError {
  const code = errnoCode(err);
  if (code === "ENOENT") return new AgentError("exec_failed", `command not found: ${file}`);
  if (code === "EACCES") return new AgentError("exec_failed", `permission denied: ${file}`);
  return new AgentError("exec_failed", `could not start ${file}: ${err.message}`);
}

type Child = ChildProcessByStdio<Writable, Readable, Readable>;

/** argv as given, or the one string of a shell command; never a shell otherwise. */
function argv(params: ExecParams): [string, string[]] {
  if (params.shell) {
    if (params.command.length !== 1) throw new AgentError("bad_request", "with shell: true, command must be exactly one string");
    return ["/bin/sh", ["-c", params.command[0] as string]];
  }
  const [file, ...args] = params.command as [string, ...string[]];
  return [file, args];
}

function decodeStdin(stdin: string | undefined): Buffer | null {
  if (stdin === undefined) return null;
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(stdin) || stdin.length % 4 === 1) throw new AgentError("bad_request", "stdin is not valid base64");
  return Buffer.from(stdin, "base64");
}

export async function runExec(params: ExecParams, options: ExecOptions): Promise<ExecResult> {
  const { clock, signal } = options;
  if (signal?.aborted) throw signal.reason;
  const [file, args] = argv(params);
  const input = decodeStdin(params.stdin);
  const cwd = await workingDirectory(options.workspace, params.cwd);
  const started = clock.now();
  let child: Child;
  try {
    child = spawn(file, args, {
      cwd,
      env: childEnv(params.env),
      detached: true,
      stdio: ["pipe", "pipe", "pipe"],
      shell: false,
    });
  } catch (err) {
    // Synchronous refusals, e.g. a NUL byte in an argument or an environment value.
    throw new AgentError("bad_request", err instanceof Error ? err.message : String(err));
  }
  recordGroup(child.pid);
  // Without `stdin` the command reads an empty input. One that does not read its input closes
  // the pipe early: that is not a failure.
  child.stdin.on("error", () => {});
  child.stdin.end(input ?? undefined);

  const streaming = params.stream === true && options.onOutput !== undefined;
  const stdout = new Capture();
  const stderr = new Capture();
  let sinkError: unknown = null;
  const pump = streaming
    ? new OutputPump({ clock, coalesceMs: EXEC_COALESCE_MS, sink: options.onOutput as OutputSink, onError: (err) => (sinkError = err) })
    : null;
  if (pump) {
    pump.attach(child.stdout, "stdout");
    pump.attach(child.stderr, "stderr");
  } else {
    stdout.attach(child.stdout);
    stderr.attach(child.stderr);
  }

  return new Promise<ExecResult>((resolve, reject) => {
    let stopped: "timeout" | "cancelled" | null = null;
    /** Why an abort other than a timeout or a cancel stopped the command; the promise rejects with it. */
    let failure: unknown = undefined;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    let settled = false;
    /** SIGTERM sent; SIGKILL follows after the grace. */
    let killing = false;
    const later = (ms: number, fn: () => void) => void clock.setTimeout(fn, ms);

    const stop = (why: "timeout" | "cancelled" | { error: unknown }) => {
      if (exit || stopped || failure !== undefined || child.pid === undefined) return;
      if (typeof why === "string") stopped = why;
      else failure = why.error;
      const pid = child.pid;
      killing = true;
      killGroup(pid, "SIGTERM");
      // Not cleared on exit: group members that ignore SIGTERM must still go. The group stays in
      // the ledger until then, so an agent killed within the grace leaves none of them behind.
      later(KILL_GRACE_MS, () => {
        killGroup(pid, "SIGKILL");
        forgetGroup(pid);
      });
    };
    const onAbort = () => {
      const reason: unknown = signal?.reason;
      // The edge has stopped listening to this stream: never block on it again.
      pump?.abandon();
      if (reason instanceof AgentError && (reason.code === "timeout" || reason.code === "cancelled")) stop(reason.code);
      else stop({ error: reason });
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    // An abort that came while the cwd was being checked has already fired.
    if (signal?.aborted) onAbort();
    const deadline = params.timeoutMs ? clock.setTimeout(() => stop("timeout"), params.timeoutMs) : null;

    const finish = async () => {
      if (settled) return;
      settled = true;
      // A stopped group is forgotten after its SIGKILL (see stop).
      if (!killing) forgetGroup(child.pid);
      signal?.removeEventListener("abort", onAbort);
      if (deadline) clock.clearTimeout(deadline);
      await pump?.finish();
      if (failure !== undefined) return reject(failure);
      if (sinkError !== null && !stopped) return reject(sinkError);
      const truncated = stdout.truncated || stderr.truncated;
      resolve({
        exitCode: stopped ? null : (exit?.code ?? null),
        signal: exit?.signal ?? (stopped ? "SIGTERM" : null),
        stdout: stdout.finish(),
        stderr: stderr.finish(),
        durationMs: Math.max(0, clock.now() - started),
        ...(stopped === "timeout" ? { timedOut: true } : {}),
        ...(stopped === "cancelled" ? { cancelled: true } : {}),
        ...(truncated ? { truncated: true } : {}),
      });
    };

    // Pipes held open by processes the command left behind are cut after a short linger; while the
    // link is applying backpressure the linger waits, so output already in the pipe is not lost.
    const linger = () =>
      later(PIPE_LINGER_MS, () => {
        if (pump?.paused) {
          void pump.whenFlowing().then(linger);
          return;
        }
        child.stdout.destroy();
        child.stderr.destroy();
        void finish();
      });

    child.on("error", (err) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      if (deadline) clock.clearTimeout(deadline);
      pump?.abandon();
      reject(spawnFailure(file, err));
    });
    child.on("exit", (code, sig) => {
      exit = { code, signal: sig };
      linger();
    });
    child.on("close", () => void finish());
  });
}
