/**
 * The one way the agent runs git (the shadow repository, the user's repository, the version
 * check, an import's tar): argv only, never a shell; stdin ignored unless the caller hands it
 * text; a time bound after which git gets SIGTERM (so it can remove its lock and temporary pack
 * files) and SIGKILL a little later; and an environment without the agent's token or any inherited
 * `GIT_*` variable, which could point git at another repository, config or program. Each caller
 * then sets the variables it means. git runs in a process group of its own with the helpers it
 * starts (upload-pack, pack-objects, index-pack): the signals go to the whole group, and a helper
 * still holding the pipes after git itself exited is stopped too, so nothing keeps a caller waiting.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { AgentError } from "../errors.js";
import { childEnv, killGroup } from "./exec.js";

/** `truncated`: stdout went past `maxBytes`, git was stopped and only the first `maxBytes` are kept. */
export type GitRun = { code: number | null; stdout: Buffer; stderr: string; truncated?: boolean };

/** Long enough for `git add` over a big workspace; a request's own deadline (its signal) usually comes first. */
export const GIT_TIMEOUT_MS = 10 * 60_000;
/** Between SIGTERM and SIGKILL when git outlives its bound or its caller's abort. */
const GIT_KILL_GRACE_MS = 2_000;
const STDERR_CAP = 8192;

export interface GitRunOptions {
  /** The program; default `git` (tests put a fake one first on PATH instead). */
  program?: string;
  cwd?: string;
  /** The environment git inherits from, before scrubbing; default the agent's own. */
  inherit?: NodeJS.ProcessEnv;
  /** Variables set on top of the scrubbed environment. */
  env?: Record<string, string>;
  /** Text for git's stdin; without it stdin is not connected. */
  input?: string;
  /** Where stdout goes, streamed with back-pressure; without it stdout is collected. */
  onStdout?: (data: Buffer) => Promise<void>;
  /** Collected stdout beyond this stops git (SIGTERM) and is dropped; the result says `truncated`. */
  maxBytes?: number;
  signal?: AbortSignal;
  timeoutMs?: number;
}

/** `inherit` without the agent's token and without any `GIT_*` variable, then `set` on top. */
export function gitEnv(inherit: NodeJS.ProcessEnv, set: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(inherit)) if (!k.startsWith("GIT_")) env[k] = v;
  return { ...childEnv(undefined, env), ...set };
}

/** Runs git once; resolves with its exit code, stdout and (capped) stderr whatever the code. */
export function runGit(args: string[], o: GitRunOptions = {}): Promise<GitRun> {
  const program = o.program ?? "git";
  const timeoutMs = o.timeoutMs ?? GIT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    if (o.signal?.aborted) return reject(o.signal.reason);
    const child = spawn(program, args, {
      cwd: o.cwd,
      env: gitEnv(o.inherit ?? process.env, o.env),
      stdio: [o.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      detached: true,
      shell: false,
    });
    // Both are pipes (stdio above).
    const stdoutPipe = child.stdout!;
    const stderrPipe = child.stderr!;
    const out: Buffer[] = [];
    let collected = 0;
    let truncated = false;
    let stderr = "";
    let failed: unknown = null;
    let timedOut = false;
    let killer: NodeJS.Timeout | null = null;
    let linger: NodeJS.Timeout | null = null;
    const signalGroup = (sig: NodeJS.Signals) => {
      if (child.pid !== undefined) killGroup(child.pid, sig);
    };
    const stop = () => {
      if (killer) return;
      signalGroup("SIGTERM");
      killer = setTimeout(() => signalGroup("SIGKILL"), GIT_KILL_GRACE_MS);
    };
    const bound = setTimeout(() => {
      timedOut = true;
      stop();
    }, timeoutMs);
    o.signal?.addEventListener("abort", stop, { once: true });

    let pending = Promise.resolve();
    stdoutPipe.on("data", (buf: Buffer) => {
      if (!o.onStdout) {
        if (truncated) return;
        out.push(buf);
        collected += buf.length;
        if (o.maxBytes !== undefined && collected > o.maxBytes) {
          truncated = true;
          stop();
        }
        return;
      }
      stdoutPipe.pause();
      pending = pending
        .then(() => o.onStdout!(buf))
        .then(
          () => void stdoutPipe.resume(),
          (err: unknown) => {
            failed = err;
            stop();
          },
        );
    });
    stderrPipe.on("data", (buf: Buffer) => {
      if (stderr.length < STDERR_CAP) stderr += buf.toString("utf8");
    });
    if (child.stdin) {
      // git may exit without reading all of it (a refused command): not a failure of ours.
      child.stdin.on("error", () => {});
      child.stdin.end(o.input);
    }
    const done = () => {
      clearTimeout(bound);
      if (killer) clearTimeout(killer);
      if (linger) clearTimeout(linger);
      o.signal?.removeEventListener("abort", stop);
    };
    // git exited, yet a helper of its group may hold stdout or stderr open: stop it after a grace
    // period and stop waiting for the pipes, so that "close" comes.
    child.on("exit", () => {
      linger = setTimeout(() => {
        signalGroup("SIGKILL");
        stdoutPipe.destroy();
        stderrPipe.destroy();
      }, GIT_KILL_GRACE_MS);
    });
    child.on("error", (err) => {
      done();
      reject(new AgentError("exec_failed", `could not run ${program}: ${err.message}`));
    });
    child.on("close", (code) => {
      done();
      void pending.then(() => {
        if (failed) return reject(failed);
        if (o.signal?.aborted) return reject(o.signal.reason);
        if (timedOut) return reject(new AgentError("timeout", `${program === "git" ? "git" : path.basename(program)} ${args.find((a) => !a.startsWith("-") && !a.includes("=")) ?? ""} took longer than ${timeoutMs} ms and was stopped`));
        const stdout = Buffer.concat(out);
        if (truncated) return resolve({ code, stdout: stdout.subarray(0, o.maxBytes), stderr: stderr.trim(), truncated });
        resolve({ code, stdout, stderr: stderr.trim() });
      });
    });
  });
}
