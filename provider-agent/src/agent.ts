/**
 * The agent proper: takes frames from the link, runs each request on the right service, and
 * answers every request id exactly once. Services know nothing of frames; this file translates.
 */
import { createHash } from "node:crypto";
import os from "node:os";
import {
  MAX_FRAME_BYTES,
  Ops,
  PROTOCOL_VERSION,
  type AgentFrame,
  type Chunk,
  type EdgeFrame,
  type ExecResult,
  type Hello,
  type OpName,
  type Reply,
  type Request,
  type RunReport,
  timeOrderedId,
} from "@outpost/protocol";
import * as z from "zod";
import { realClock, type Clock, type TimerHandle } from "./clock.js";
import { CreditGrants } from "./credit.js";
import { AgentError, toErrorInfo } from "./errors.js";
import { silentLogger, type Logger } from "./log.js";
import { defaultDiffBaseDir, DiffService } from "./services/diff.js";
import { runExec } from "./services/exec.js";
import { deleteFile, FileWrite, readFile } from "./services/files.js";
import { copyPath, deleteRecursive, listDirectory, makeDirectory, movePath, statPath } from "./services/fs-ops.js";
import { RunManager } from "./services/runs.js";
import { diffSnapshots, readBundle, receiveImport } from "./services/snapshot-ops.js";
import { branchForPullRequest } from "./services/snapshot-branch.js";
import { defaultSnapshotDir, SnapshotService } from "./services/snapshots.js";
import { confineError, confineFrame, privateDirs, scrubRoots, workspaceRoots, type PrivateDir } from "./workspace-errors.js";

export const CAPABILITIES = ["exec", "files", "runs", "diff", "stream", "snapshots"];

/** What the agent needs from the link. */
export interface Outbound {
  /** Replies and other frames that must not wait; reliable frames are never dropped while the link lives. */
  send(frame: AgentFrame): boolean;
  /**
   * Frames from producers that can wait (chunks, run output): resolves once the frame is accepted,
   * after the edge's credit (chunks) and room in the outbox; rejects when `signal` aborts.
   */
  sendPaced(frame: AgentFrame, signal?: AbortSignal): Promise<void>;
  /** The chunk stream of request `re` is over: a producer still waiting for credit is failed. */
  endStream?(re: string): void;
}

export interface AgentOptions {
  workspace: string;
  out: Outbound;
  clock?: Clock;
  log?: Logger;
  /** Called after the reply to a `shutdown` request has been sent: the agent should exit. */
  onShutdown?: (reason: string) => void;
  /** Called with a token the control plane renewed (token.renew): use it from now on. */
  onToken?: (token: string) => void;
  /** Bytes per file.read chunk (default CHUNK_BYTES); tests make it tiny to get many chunks. */
  chunkBytes?: number;
  /** Where the diff base of a workspace without git is kept (outside the workspace). */
  diffBaseDir?: string;
  /** Where the workspace's shadow repository and bundles in transit live (outside the workspace). */
  snapshotDir?: string;
  /** The directory of the agent's state file: like the two above, never named by its host path in what leaves the agent. */
  stateDir?: string;
  /** Where the link spills unacknowledged frames (--spool-dir), hidden likewise. */
  spoolDir?: string;
}

type InFlight = {
  controller: AbortController;
  /** Where an upload's chunks go (file.write, snapshot.import). */
  write: { push(n: number, data: Buffer, last: boolean): void } | null;
  /** Pushes the request's deadline back (transfers only count idle time). */
  progress: () => void;
  /** Runs once the reply has been sent. */
  afterReply: (() => void) | null;
  /** Uploads: sends the current credit grant again (after a reconnect). */
  regrant: (() => void) | null;
};

/** The hello frame; the link sets its `ack`. `extra` carries the resource id (and run reports). */
export function helloFrame(version: string, workspace: string, extra: Pick<Hello, "resourceId" | "runs"> = {}): Hello {
  return {
    v: 1,
    kind: "hello",
    protocol: PROTOCOL_VERSION,
    agent: {
      version,
      hostname: os.hostname().slice(0, 255),
      platform: process.platform,
      arch: process.arch,
      node: process.version,
      pid: process.pid,
    },
    capabilities: CAPABILITIES,
    workspace,
    ...(extra.resourceId ? { resourceId: extra.resourceId } : {}),
    ...(extra.runs ? { runs: extra.runs } : {}),
  };
}

export class Agent {
  readonly #inflight = new Map<string, InFlight>();
  readonly #clock: Clock;
  readonly #log: Logger;
  /** Set by shutdown(): new requests are refused. */
  #closing = false;
  #idleWaiters: Array<() => void> = [];

  constructor(private readonly options: AgentOptions) {
    this.#clock = options.clock ?? realClock();
    this.#log = options.log ?? silentLogger;
  }

  get inflight(): number {
    return this.#inflight.size;
  }

  #runs: RunManager | null = null;
  #diffs: DiffService | null = null;

  /** The runs this agent started; they outlive link drops and are reported in each hello. */
  get runs(): RunManager {
    return (this.#runs ??= new RunManager({
      workspace: this.options.workspace,
      // A run's exit may carry an error message: host paths leave it as they leave error replies.
      out: { sendPaced: (frame) => this.options.out.sendPaced(confineFrame(frame, (text) => scrubRoots(text, workspaceRoots(this.options.workspace), this.#privateDirs()))) },
      clock: this.#clock,
      log: this.#log,
      // The CLI always names a snapshot directory; embedders that do not get no end-of-run snapshots.
      snapshotOnExit: this.options.snapshotDir === undefined ? undefined : (run) => this.snapshots.take({ snapshotId: timeOrderedId("snap"), runId: run.runId, threadId: run.threadId, objectiveId: run.objectiveId, message: `the workspace when run ${run.runId} ended` }),
    }));
  }

  #snapshots: SnapshotService | null = null;

  /** The workspace's shadow repository (snapshots), created on first use. */
  get snapshots(): SnapshotService {
    return (this.#snapshots ??= new SnapshotService({ workspace: this.options.workspace, dir: this.#snapshotDir, log: this.#log }));
  }

  /** The diff service; call `diffs.prepare()` when the agent starts so a workspace without git gets its base. */
  get diffs(): DiffService {
    return (this.#diffs ??= new DiffService({ workspace: this.options.workspace, baseDir: this.#diffBaseDir, log: this.#log }));
  }

  /** The shadow repository's directory: as configured, or the default for this workspace. */
  get #snapshotDir(): string {
    return this.options.snapshotDir ?? defaultSnapshotDir(workspaceKey(this.options.workspace));
  }

  /** The diff base's directory: as configured, or the default for this workspace. */
  get #diffBaseDir(): string {
    return this.options.diffBaseDir ?? defaultDiffBaseDir(workspaceKey(this.options.workspace));
  }

  /** The agent's own directories, named by a stand-in in messages that leave it. */
  #privateDirs(): PrivateDir[] {
    const { stateDir, spoolDir } = this.options;
    return privateDirs([
      { dir: this.#snapshotDir, as: "(agent snapshots)" },
      { dir: this.#diffBaseDir, as: "(agent diff base)" },
      { dir: stateDir, as: "(agent state)" },
      { dir: spoolDir, as: "(agent spool)" },
    ]);
  }

  /** Resolves once no request is in flight (every reply has been handed to the link). */
  idle(): Promise<void> {
    if (this.#inflight.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  handle(frame: EdgeFrame): void {
    switch (frame.kind) {
      case "request":
        return this.#onRequest(frame);
      case "cancel":
        this.#inflight.get(frame.re)?.controller.abort(new AgentError("cancelled", "cancelled by the control plane"));
        return;
      case "chunk":
        return this.#onChunk(frame);
      case "error":
        this.#log.warn(`the edge reported ${frame.error.code}${frame.re ? ` for ${frame.re}` : ""}: ${frame.error.message}`);
        return;
      case "welcome":
        // A new connection: credit grants are not resent by the link, so grant again.
        for (const entry of this.#inflight.values()) entry.regrant?.();
        return;
    }
  }

  /**
   * Refuses new requests and stops everything in flight (processes included); each request still
   * gets its reply. Resolves once the runs have stopped and their run.exit is handed to the link.
   */
  shutdown(): Promise<void> {
    this.#closing = true;
    for (const entry of this.#inflight.values()) entry.controller.abort(new AgentError("cancelled", "the agent is shutting down"));
    return this.#runs?.shutdown() ?? Promise.resolve();
  }

  /** The runs this process started, for hello (without starting a run manager). */
  runReports(): RunReport[] {
    return this.#runs?.reports() ?? [];
  }

  #onRequest(req: Request): void {
    if (this.#closing) {
      this.#reply(req, { ok: false, err: new AgentError("agent_error", "the agent is shutting down") });
      return;
    }
    if (this.#inflight.has(req.id)) {
      this.options.out.send({ v: 1, kind: "error", re: req.id, error: { code: "conflict", message: `request ${req.id} is already in progress` } });
      return;
    }
    // For exec, timeoutMs is a deadline. For transfers it is an idle limit, as the edge uses it:
    // every chunk that moves pushes it back, so a large file that keeps flowing is never cut.
    let deadline: TimerHandle | null = null;
    const entry: InFlight = {
      controller: new AbortController(),
      write: null,
      afterReply: null,
      regrant: null,
      progress: () => {
        if (deadline) this.#clock.clearTimeout(deadline);
        deadline = this.#clock.setTimeout(() => {
          const what = req.op === "exec" ? "did not finish" : "made no progress";
          entry.controller.abort(new AgentError("timeout", `${req.op} ${what} within ${req.timeoutMs} ms`));
        }, req.timeoutMs);
      },
    };
    entry.progress();
    this.#inflight.set(req.id, entry);
    this.#log.debug(`request ${req.id} ${req.op}`);
    // A producer waiting for credit must not hold the reply up once the request is over.
    entry.controller.signal.addEventListener("abort", () => this.options.out.endStream?.(req.id), { once: true });
    // #run registers a file.write synchronously, so chunks that follow the request find it.
    this.#run(req, entry)
      .then(
        (result) => {
          this.#reply(req, { ok: true, result });
          entry.afterReply?.();
        },
        (err: unknown) => this.#reply(req, { ok: false, err }),
      )
      .finally(() => {
        if (deadline) this.#clock.clearTimeout(deadline);
        this.#inflight.delete(req.id);
        this.options.out.endStream?.(req.id);
        if (this.#inflight.size === 0) for (const wake of this.#idleWaiters.splice(0)) wake();
      });
  }

  async #run(req: Request, entry: InFlight): Promise<unknown> {
    const { workspace } = this.options;
    const signal = entry.controller.signal;
    switch (req.op) {
      case "exec": {
        const p = params("exec", Ops["exec"].params, req.params);
        let n = 0;
        const onOutput = async (stream: "stdout" | "stderr", data: Buffer) => {
          // Once aborted, the reply is on its way: no chunk may follow it.
          if (signal.aborted) throw signal.reason;
          await this.options.out.sendPaced({ v: 1, kind: "chunk", re: req.id, n: n++, stream, data: data.toString("base64") }, signal);
        };
        // Exec answers its own timeout and a cancel with a result (timedOut / cancelled) rather than an error.
        return runExec(p, { workspace, clock: this.#clock, signal, onOutput });
      }
      case "file.read": {
        const p = params("file.read", Ops["file.read"].params, req.params);
        const emit = async ({ n, data, last }: { n: number; data: Buffer; last: boolean }) => {
          // Once aborted, the reply has gone out: no chunk may follow it.
          if (signal.aborted) throw signal.reason;
          await this.options.out.sendPaced(chunkFrame(req.id, n, data, last), signal);
          entry.progress();
        };
        return untilAborted(readFile(workspace, p.path, emit, signal, this.options.chunkBytes), signal);
      }
      case "file.write": {
        const p = params("file.write", Ops["file.write"].params, req.params);
        // Grant the edge credit as chunks reach the disk, so an upload never piles up in memory.
        const grants = new CreditGrants(req.id, (frame) => void this.options.out.send(frame));
        const write = new FileWrite(workspace, p.path, p.size, { onWritten: (n) => grants.written(n) });
        entry.write = write;
        entry.regrant = () => grants.resend();
        signal.addEventListener("abort", () => write.abort(signal.reason), { once: true });
        return write.done;
      }
      case "file.delete": {
        const p = params("file.delete", Ops["file.delete"].params, req.params);
        return untilAborted(p.recursive ? deleteRecursive(workspace, p.path) : deleteFile(workspace, p.path), signal);
      }
      case "file.stat":
        return untilAborted(statPath(workspace, params("file.stat", Ops["file.stat"].params, req.params).path), signal);
      case "file.list": {
        const p = params("file.list", Ops["file.list"].params, req.params);
        return untilAborted(listDirectory(workspace, p.path, { recursive: p.recursive, maxEntries: p.maxEntries, signal }), signal);
      }
      case "file.mkdir": {
        const p = params("file.mkdir", Ops["file.mkdir"].params, req.params);
        return untilAborted(makeDirectory(workspace, p.path, p.recursive), signal);
      }
      case "file.move": {
        const p = params("file.move", Ops["file.move"].params, req.params);
        return untilAborted(movePath(workspace, p.from, p.to, p.overwrite), signal);
      }
      case "file.copy": {
        const p = params("file.copy", Ops["file.copy"].params, req.params);
        return untilAborted(copyPath(workspace, p.from, p.to, p.overwrite), signal);
      }
      case "diff":
        return untilAborted(this.diffs.diff(params("diff", Ops.diff.params, req.params), signal), signal);
      case "snapshot.take":
        return untilAborted(this.snapshots.take(params("snapshot.take", Ops["snapshot.take"].params, req.params)), signal);
      case "snapshot.bundle": {
        const { bundleId, size, sha256 } = await untilAborted(this.snapshots.bundle(params("snapshot.bundle", Ops["snapshot.bundle"].params, req.params)), signal);
        return { bundleId, size, sha256 };
      }
      case "snapshot.branch":
        return untilAborted(branchForPullRequest(this.snapshots, params("snapshot.branch", Ops["snapshot.branch"].params, req.params), signal), signal);
      case "snapshot.read":
      case "snapshot.diff": {
        const emit = async ({ n, data, last }: { n: number; data: Buffer; last: boolean }) => {
          if (signal.aborted) throw signal.reason;
          await this.options.out.sendPaced(chunkFrame(req.id, n, data, last), signal);
          entry.progress();
        };
        if (req.op === "snapshot.read") return readBundle(this.snapshots, params("snapshot.read", Ops["snapshot.read"].params, req.params).bundleId, emit, signal, this.options.chunkBytes);
        return diffSnapshots(this.snapshots, params("snapshot.diff", Ops["snapshot.diff"].params, req.params), emit, signal);
      }
      case "snapshot.import": {
        const p = params("snapshot.import", Ops["snapshot.import"].params, req.params);
        const grants = new CreditGrants(req.id, (frame) => void this.options.out.send(frame));
        const incoming = receiveImport(this.snapshots, p, (n) => grants.written(n));
        entry.write = incoming;
        entry.regrant = () => grants.resend();
        signal.addEventListener("abort", () => incoming.abort(signal.reason), { once: true });
        return untilAborted(incoming.finish(), signal);
      }
      case "run.start":
        return this.runs.start(params("run.start", Ops["run.start"].params, req.params));
      case "run.cancel":
        return this.runs.cancel(params("run.cancel", Ops["run.cancel"].params, req.params).runId);
      case "shutdown": {
        const { reason } = params("shutdown", Ops.shutdown.params, req.params);
        this.#log.info(`shutdown requested: ${reason}`);
        for (const [id, other] of this.#inflight) {
          if (id !== req.id) other.controller.abort(new AgentError("cancelled", `the environment is stopping: ${reason}`));
        }
        entry.afterReply = () => this.options.onShutdown?.(reason);
        // Runs stop with the environment; their run.exit frames go out before this reply.
        if (this.#runs) await this.#runs.shutdown();
        return {};
      }
      case "token.renew": {
        const { token } = params("token.renew", Ops["token.renew"].params, req.params);
        if (!this.options.onToken) throw new AgentError("bad_request", "this agent does not take renewed tokens");
        this.options.onToken(token);
        this.#log.info("the control plane renewed the agent token (spawn scope changed)");
        return {};
      }
      default:
        // An operation newer than this agent: say so instead of guessing.
        throw new AgentError("bad_request", `this agent (protocol ${PROTOCOL_VERSION}) does not support ${String(req.op)}`);
    }
  }

  #onChunk(chunk: Chunk): void {
    const entry = this.#inflight.get(chunk.re);
    const write = entry?.write;
    if (!entry || !write) {
      this.#log.debug(`chunk ${chunk.n} for ${chunk.re}, which is not a write in progress; ignored`);
      return;
    }
    entry.progress();
    write.push(chunk.n, Buffer.from(chunk.data, "base64"), chunk.last ?? false);
  }

  #reply(req: Request, outcome: { ok: true; result: unknown } | { ok: false; err: unknown }): void {
    let frame: Reply;
    if (outcome.ok) {
      const result = req.op === "exec" ? fitExecResult(req.id, outcome.result as ExecResult) : outcome.result;
      frame = { v: 1, kind: "reply", re: req.id, ok: true, result };
    } else {
      // Paths in errors are the workspace-relative ones the edge sent, never the host's absolute ones.
      const error = toErrorInfo(confineError(outcome.err, workspaceRoots(this.options.workspace), this.#privateDirs()));
      // The local log keeps the full message: it stays on this machine.
      if (error.code === "agent_error") this.#log.error(`${req.op} ${req.id} failed unexpectedly: ${toErrorInfo(outcome.err).message}`);
      frame = { v: 1, kind: "reply", re: req.id, ok: false, error };
    }
    try {
      this.options.out.send(frame);
    } catch (err) {
      this.options.out.send({ v: 1, kind: "reply", re: req.id, ok: false, error: toErrorInfo(err) });
    }
  }
}

/** A short, stable name for a workspace's state directories. */
function workspaceKey(workspace: string): string {
  return `ws-${createHash("sha256").update(workspace).digest("hex").slice(0, 16)}`;
}

function params<T>(op: OpName, schema: z.ZodType<T>, raw: unknown): T {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new AgentError("bad_request", `invalid ${op} params: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

function chunkFrame(re: string, n: number, data: Buffer, last: boolean): Chunk {
  return { v: 1, kind: "chunk", re, n, data: data.toString("base64"), ...(last ? { last: true } : {}) };
}

/** Settles with `work`, or rejects with the abort reason as soon as the signal fires. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * Output is capped in bytes, but JSON escaping can still grow it (control characters, invalid
 * UTF-8): trim the longer stream until the reply fits in one frame.
 */
export function fitExecResult(re: string, result: ExecResult): ExecResult {
  const size = (r: ExecResult) => Buffer.byteLength(JSON.stringify({ v: 1, kind: "reply", re, ok: true, result: r }));
  let fitted = result;
  while (size(fitted) > MAX_FRAME_BYTES && (fitted.stdout || fitted.stderr)) {
    const key = fitted.stdout.length >= fitted.stderr.length ? "stdout" : "stderr";
    fitted = { ...fitted, [key]: fitted[key].slice(0, Math.floor(fitted[key].length / 2)), truncated: true };
  }
  return fitted;
}
