/**
 * Work relayed to the environment's agent: exec (whole or streamed as ndjson), file transfers in
 * both directions paced by credit, single-request file operations and the diff. Each is a request
 * frame, a pending entry waiting for the reply, and the chunks in between.
 */
import {
  base64ToBytes,
  bytesToBase64,
  CHUNK_BYTES,
  ExecResult,
  FileWriteResult,
  INITIAL_CREDIT,
  Ops,
  type Chunk,
  type ExecParams,
  type ExecStreamLine,
  type OpName,
  type OpResult,
} from "@outpost/protocol";
import type { EventLog } from "./events.js";
import { LineWriter } from "./lines.js";
import type { EdgeLink } from "./link.js";
import { fail, ok, type Outcome } from "./outcome.js";
import type { PendingRequests, ReplyOutcome } from "./pending.js";
import { drainBody } from "../worker/unread-body.js";

export const DEFAULT_EXEC_TIMEOUT_MS = 60_000;
export const TIMING = {
  /** How much longer than the command's own timeout the edge waits for the agent's answer. */
  execGraceMs: 5_000,
  /** File transfers time out when no chunk moved for this long. */
  transferIdleMs: 30_000,
};
export type Timing = typeof TIMING;

/** File operations that are a single request and a single reply. */
export type SimpleFileOp = "file.stat" | "file.list" | "file.mkdir" | "file.move" | "file.copy" | "file.delete";

/** What the relay needs from the environment's object. */
export interface RelayHost {
  /** The serving agent socket, or the reason there is none (not found, archived, no agent). */
  agent(): Outcome<WebSocket>;
  agentSocket(): WebSocket | null;
  readonly link: EdgeLink;
  readonly pending: PendingRequests;
  readonly events: EventLog;
  readonly timing: Timing;
}

export class Relay {
  /** The seq each streamed exec's request went out with, while it is in flight. */
  private readonly execSeqs = new Map<string, number>();

  constructor(private readonly h: RelayHost) {}

  async exec(params: ExecParams): Promise<Outcome<ExecResult>> {
    const timeoutMs = params.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
    const reply = await this.ask("exec", { ...params, stream: false, timeoutMs }, timeoutMs + this.h.timing.execGraceMs);
    if (!reply.ok) return reply;
    const parsed = ExecResult.safeParse(reply.value);
    if (!parsed.success) return fail("agent_error", "The agent sent a malformed exec result.");
    const result = parsed.data;
    this.logExec(params, result);
    if (result.timedOut) return fail("timeout", `The command did not finish within ${timeoutMs} ms and was killed.`, { ...result });
    return ok(result);
  }

  /**
   * Exec with output streamed as ndjson lines (ExecStreamLine): `started` with the execId at once,
   * then output as it comes, then `exit` or `error`. Output is paced by credit: the agent sends more
   * only as the HTTP reader takes it.
   */
  execStream(params: ExecParams): Outcome<ReadableStream<Uint8Array>> {
    const out = new LineWriter<ExecStreamLine>();
    const started = this.execLines(params, { line: (l) => out.write(l), end: () => out.close() });
    return started.ok ? ok(out.readable) : started;
  }

  /**
   * The lines of a streamed exec handed to `line` as objects, never encoded here, so a hop that
   * reshapes them (chaining.ts runHere) does not parse back what was just written. Credit follows
   * `line`'s promise: the agent sends more once the line is taken. `end` comes after the last line.
   */
  execLines(params: ExecParams, sink: { line(l: ExecStreamLine): Promise<void>; end(): Promise<void> }): Outcome<string> {
    const ready = this.h.agent();
    if (!ready.ok) return ready;
    const ws = ready.value;
    const timeoutMs = params.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
    const id = crypto.randomUUID();
    const decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };
    void sink.line({ type: "started", execId: id });
    const reply = this.h.pending.open(id, timeoutMs + this.h.timing.execGraceMs, () => this.h.link.send(ws, { v: 1, kind: "cancel", re: id }), (c) => {
      const stream = c.stream ?? "stdout";
      const text = decoders[stream].decode(base64ToBytes(c.data), { stream: true });
      // Credit is granted once the reader has taken the line: a slow reader slows the agent.
      void sink.line({ type: stream, data: text }).then(() => this.h.link.grantCredit(this.h.agentSocket(), id, c.n + INITIAL_CREDIT));
    });
    const seq = this.h.link.send(ws, { v: 1, kind: "request", id, op: "exec", params: { ...params, stream: true, timeoutMs }, timeoutMs });
    if (seq !== null) this.execSeqs.set(id, seq);
    void reply.then(async (r) => {
      this.h.link.endGrant(id);
      this.execSeqs.delete(id);
      const parsed = r.ok ? ExecResult.safeParse(r.result) : null;
      if (parsed?.success) {
        const x = parsed.data;
        this.logExec(params, x);
        await sink.line({ type: "exit", exitCode: x.exitCode, signal: x.signal ?? null, durationMs: x.durationMs, timedOut: x.timedOut, cancelled: x.cancelled });
      } else {
        const error = r.ok ? { code: "agent_error", message: "The agent sent a malformed exec result." } : r.error;
        await sink.line({ type: "error", code: error.code, message: error.message });
      }
      await sink.end();
    });
    return ok(id);
  }

  /** Cancels an exec in flight: the agent signals its whole process group. */
  cancelExec(execId: string): Outcome<{ cancelled: boolean }> {
    if (!this.h.pending.has(execId)) return fail("not_found", `No exec ${execId} is in flight in this environment.`);
    this.h.link.send(this.h.agentSocket(), { v: 1, kind: "cancel", re: execId });
    return ok({ cancelled: true });
  }

  /** Has the agent acknowledged a streamed exec's request (it has it, and will answer)? */
  execAcknowledged(execId: string): boolean {
    const seq = this.execSeqs.get(execId);
    return seq === undefined || this.h.link.delivered(seq);
  }

  /** Gives up on a streamed exec: its stream ends with `error`, and the agent is told to kill it. */
  abandonExec(execId: string, error: { code: string; message: string }): void {
    if (!this.h.pending.has(execId)) return;
    this.h.link.send(this.h.agentSocket(), { v: 1, kind: "cancel", re: execId });
    this.h.pending.finish(execId, { ok: false, error });
  }

  /** Streams a file out of the workspace. Resolves once the first bytes (or the answer) arrive. */
  readFile(path: string): Promise<Outcome<ReadableStream<Uint8Array>>> {
      // A byte pipe: chunks written before the caller starts reading are kept, in order.
      const pipe = new TransformStream<Uint8Array, Uint8Array>();
      const writer = pipe.writable.getWriter();
      const written: Promise<void>[] = [];
      let first!: (o: Outcome<ReadableStream<Uint8Array>>) => void;
      const started = new Promise<Outcome<ReadableStream<Uint8Array>>>((r) => (first = r));
      let streaming = false;
      let re = "";
      void this.ask("file.read", { path }, this.h.timing.transferIdleMs, (c: Chunk) => {
        re = c.re;
        // Credit follows the reader: memory here stays within INITIAL_CREDIT chunks.
        const w = writer.write(base64ToBytes(c.data)).then(() => this.h.link.grantCredit(this.h.agentSocket(), re, c.n + INITIAL_CREDIT));
        written.push(w.catch(() => undefined));
        if (!streaming) (streaming = true), first(ok(pipe.readable));
      }).then(async (reply) => {
        this.h.link.endGrant(re);
        if (reply.ok) {
          first(ok(pipe.readable));
          await Promise.all(written);
          await writer.close().catch(() => undefined);
        } else if (streaming) {
          await writer.abort(new Error(reply.error.message)).catch(() => undefined);
        } else {
          first(reply);
        }
      });
      return started;
  }

  /** Streams a body into a workspace file; the agent renames it into place only when all bytes arrived. */
  async writeFile(path: string, body: ReadableStream<Uint8Array>, size: number): Promise<Outcome<FileWriteResult>> {
      const ready = this.h.agent();
      if (!ready.ok) {
        await drainBody(body); // see worker/unread-body.ts
        return ready;
      }
      const ws = ready.value;
      const id = crypto.randomUUID();
      let settled = false;
      const done = this.h.pending
        .open(id, this.h.timing.transferIdleMs, () => this.h.link.send(ws, { v: 1, kind: "cancel", re: id }))
        .then((r) => ((settled = true), this.h.link.closeCredit(id), r));
      this.h.link.openCredit(id);
      this.h.link.send(ws, { v: 1, kind: "request", id, op: "file.write", params: { path, size }, timeoutMs: this.h.timing.transferIdleMs });
      let n = 0;
      const sendChunk = async (data: string, last: boolean) => {
        await this.h.link.waitCredit(id, n);
        if (settled) return;
        this.h.link.send(this.h.agentSocket(), { v: 1, kind: "chunk", re: id, n: n++, data, ...(last ? { last: true } : {}) });
      };
      for await (const piece of rechunk(body, CHUNK_BYTES)) {
        if (settled) break;
        await sendChunk(bytesToBase64(piece), false);
      }
      if (!settled) await sendChunk("", true);
      else await drainBody(body);
      const reply = toOutcome(await done);
      if (!reply.ok) return reply;
      const parsed = FileWriteResult.safeParse(reply.value);
      if (!parsed.success) return fail("agent_error", "The agent sent a malformed write result.");
      this.h.events.append("file.write", { path, size: parsed.data.size });
      return ok(parsed.data);
  }

  /** One-request file operations (stat, list, mkdir, move, copy, delete). */
  async fileOp<O extends SimpleFileOp>(op: O, params: unknown): Promise<Outcome<OpResult<O>>> {
      const reply = await this.ask(op, params, this.h.timing.transferIdleMs);
      if (!reply.ok) return reply;
      const parsed = Ops[op].result.safeParse(reply.value);
      if (!parsed.success) return fail("agent_error", `The agent sent a malformed ${op} result.`);
      if (op !== "file.stat" && op !== "file.list") this.h.events.append(op, summarize(params));
      return ok(parsed.data as OpResult<O>);
  }

  /** What changed in the workspace against its base (git HEAD, or the state when the agent started). */
  async diff(params: { maxFileBytes?: number }): Promise<Outcome<OpResult<"diff">>> {
      const reply = await this.ask("diff", params, this.h.timing.transferIdleMs);
      if (!reply.ok) return reply;
      const parsed = Ops.diff.result.safeParse(reply.value);
      return parsed.success ? ok(parsed.data) : fail("agent_error", "The agent sent a malformed diff.");
  }

  /** Sends a request to the connected agent and waits for its reply. */
  async ask(op: OpName, params: unknown, timeoutMs: number, onChunk?: (c: Chunk) => void): Promise<Outcome<unknown>> {
    const ready = this.h.agent();
    if (!ready.ok) return ready;
    const ws = ready.value;
    const id = crypto.randomUUID();
    const reply = this.h.pending.open(id, timeoutMs, () => this.h.link.send(this.h.agentSocket(), { v: 1, kind: "cancel", re: id }), onChunk);
    this.h.link.send(ws, { v: 1, kind: "request", id, op, params, timeoutMs });
    return toOutcome(await reply);
  }

  /** Arguments may hold secrets: the log keeps the program name and the argument count only. */
  private logExec(params: ExecParams, result: ExecResult): void {
    this.h.events.append("exec", { program: params.command[0], args: params.command.length - 1, exitCode: result.exitCode, durationMs: result.durationMs, timedOut: !!result.timedOut, cancelled: !!result.cancelled });
  }

}

/** What the event log keeps of a file operation: paths, never contents. */
function summarize(params: unknown): Record<string, unknown> {
  const p = (params ?? {}) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of ["path", "from", "to", "recursive", "overwrite"]) if (p[k] !== undefined) out[k] = p[k];
  return out;
}

function toOutcome(r: ReplyOutcome): Outcome<unknown> {
  return r.ok ? ok(r.result) : { ok: false, error: r.error };
}

/** Re-slices a byte stream into pieces of exactly `size` bytes (the last may be shorter). */
export async function* rechunk(body: ReadableStream<Uint8Array>, size: number): AsyncGenerator<Uint8Array> {
  let buf = new Uint8Array(size);
  let used = 0;
  for await (const part of body as unknown as AsyncIterable<Uint8Array>) {
    let offset = 0;
    while (offset < part.length) {
      const take = Math.min(size - used, part.length - offset);
      buf.set(part.subarray(offset, offset + take), used);
      used += take;
      offset += take;
      if (used === size) {
        yield buf;
        buf = new Uint8Array(size);
        used = 0;
      }
    }
  }
  if (used > 0) yield buf.subarray(0, used);
}
