/**
 * One Durable Object per environment: the environment's record, event log and timers live in its
 * SQLite storage, and the provider-agent's WebSocket is accepted with the hibernation API so that an
 * idle environment costs nothing (heartbeat pings are answered by the runtime's auto-response).
 * Every state change goes through `transition` (lifecycle.ts); this class applies, logs and schedules.
 */
import { DurableObject } from "cloudflare:workers";
import {
  CLOSE,
  ExecResult,
  FileWriteResult,
  HEARTBEAT_PING,
  HEARTBEAT_PONG,
  PROTOCOL_VERSION,
  WATCH_WINDOW,
  parseAgentFrame,
  protocolCompatible,
  type AgentFrame,
  type Environment,
  type EnvironmentEvent,
  type EnvironmentMetrics,
  type EnvironmentState,
  type ExecParams,
  type ForwardBody,
  type Gateway,
  type Hello,
  type OpParams,
  type OpResult,
  type Routing,
  type Run,
  type SnapshotBranchResult,
  type SnapshotImportResult,
  type SnapshotTaken,
  type SpawnClaim,
  type SpawnGrant,
  FINAL_RUN_STATES,
} from "@outpost/protocol";
import type { Env } from "../worker/env.js";
import { agentTokenCurrent, changeSpawnScope, currentAgentToken, renewOnConnect } from "./agent-token.js";
import { problemResponse } from "../worker/problem.js";
import { updateIndexedState, updateRunIndex } from "../worker/environment-index.js";
import type { HostRegistry } from "./host-registry.js";
import {
  AGENT_GEN_HEADER,
  AGENT_GRANT_HEADER,
  AGENT_TAG,
  agentAttachment,
  carriedMetrics,
  carryMetrics,
  closeQuietly,
  openSockets,
  readyAgent,
  SOCKET_KIND_HEADER,
  WATCH_TAG,
  type HealthReport,
} from "./agent-socket.js";
import { Chaining, type HopRequest } from "./chaining.js";
import { EventLog } from "./events.js";
import { Watchers } from "./watchers.js";
import { floodBucket, floodRefusal } from "./flood.js";
import { EdgeLink } from "./link.js";
import { transition, type LifecycleEvent } from "./lifecycle.js";
import { Metrics, type Entry } from "./metrics.js";
import { fail, ok, type Outcome } from "./outcome.js";
import { PendingRequests } from "./pending.js";
import { describe, restartDelay, settingsOf, type CreateInit, type Row } from "./record.js";
import { Runs, type NewRun } from "./runs.js";
import { Relay, TIMING, type RelayHost, type SimpleFileOp } from "./relay.js";
import { SnapshotRelay, type ExportedBundle } from "./snapshots.js";
import { recordSnapshot } from "../worker/snapshot-index.js";
import { Schedule } from "./schedule.js";
import { hasSchema, migrate } from "./schema.js";
import { sqlOf, type Sql } from "./sql.js";

export { AGENT_GEN_HEADER, AGENT_GRANT_HEADER, SOCKET_KIND_HEADER } from "./agent-socket.js";
export { DEFAULT_EXEC_TIMEOUT_MS, TIMING, type SimpleFileOp } from "./relay.js";
export type { CreateInit } from "./record.js";

/** Missed heartbeat intervals after which a link is half-open. */
const MISSED_HEARTBEATS = 3;
const LIFECYCLE_TIMER = "lifecycle";
/** A one-off link check (checkLink runs on every alarm; this timer only makes the alarm come). */
const LINK_CHECK_TIMER = "link.check";
/** Request ids of run control frames: replies to them arrive whenever the agent gets to them. */
const RUN_REQUEST = /^run:(.+):(start|cancel)$/;
type HostRegistryRpc = Pick<HostRegistry, "dispatch">;

type Refusal = { ok: false; error: { code: string; message: string; details?: Record<string, unknown> } };

export class EnvironmentObject extends DurableObject<Env> {
  /** Injectable for tests; everything time-dependent reads it. */
  now: () => number = () => Date.now();
  /** Injectable for tests, so timeouts are exercised in milliseconds. */
  timing = { ...TIMING };

  private readonly sql: Sql;
  private readonly pending = new PendingRequests();
  private readonly metrics: Metrics;
  private readonly schedule: Schedule;
  private readonly events: EventLog;
  private readonly watchers = new Watchers(this.ctx, () => this.events, () => this.now());
  private readonly link: EdgeLink;
  private readonly runs: Runs;
  private readonly relay: Relay;
  private readonly chaining: Chaining;
  private readonly snapshots: SnapshotRelay;
  private exists = false;
  /** Request floods into this environment (flood.ts): memory only, refilled by time. */
  private readonly flood = floodBucket(this.env);
  private stateWaiters: Array<() => void> = [];

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.metrics = new Metrics(() => this.now());
    this.metrics.wake();
    for (const carried of carriedMetrics(ctx)) this.metrics.adopt(carried);
    this.sql = sqlOf(ctx.storage.sql, (rows) => this.metrics.wrote(rows));
    this.schedule = new Schedule(this.sql, ctx.storage, () => this.metrics.alarmWritten());
    this.events = new EventLog(this.sql, () => this.now(), (event) => this.watchers.deliver(event));
    this.link = new EdgeLink(this.sql);
    this.runs = new Runs(this.sql, this.events, () => this.iso(), () => this.row()?.id ?? "");
    const self = this;
    const relayHost: RelayHost = {
      agent: () => this.readyOrRefuse(),
      agentSocket: () => readyAgent(this.ctx),
      link: this.link,
      pending: this.pending,
      events: this.events,
      get timing() {
        return self.timing;
      },
    };
    this.relay = new Relay(relayHost);
    this.snapshots = new SnapshotRelay(relayHost, () => this.now(), (op, p, t) => this.relay.ask(op, p, t));
    this.chaining = new Chaining({
      row: () => this.row(),
      ready: () => this.readyOrRefuse(),
      relay: this.relay,
      events: this.events,
      sql: this.sql,
      env,
      createRun: (run) => this.queueRun(run),
      iso: () => this.iso(),
      now: () => this.now(),
      agentSeenAt: () => ((ws) => (ws ? this.lastSeen(ws) : null))(readyAgent(this.ctx)),
      agentStaleMs: () => settingsOf(this.row()!).heartbeatMs * MISSED_HEARTBEATS,
    });
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(HEARTBEAT_PING, HEARTBEAT_PONG));
    void ctx.blockConcurrencyWhile(async () => {
      this.exists = migrate(ctx.storage.sql, this.sql, false);
      if (this.exists) await this.recover();
    });
  }

  // ---- RPC: the record and its lifecycle ------------------------------------------------

  async create(init: CreateInit): Promise<Outcome<Environment>> {
    return this.entry("rpc", async () => {
      if (this.row()) return fail("conflict", `Environment ${init.id} already exists.`);
      this.exists = migrate(this.ctx.storage.sql, this.sql, true);
      this.sql`INSERT INTO environment (id, org, name, provider, config, metadata, lifecycle, state, agent_gen, created_at, updated_at, host, control_url, secret_keys, spawn)
               VALUES (${init.id}, ${init.org}, ${init.name}, ${init.provider}, ${init.configJson}, ${init.metadataJson},
                       ${init.lifecycleJson}, 'created', 1, ${init.createdAt}, ${init.createdAt}, ${init.host ?? null}, ${init.controlUrl ?? null},
                       ${JSON.stringify(init.secretKeys ?? [])}, ${JSON.stringify(init.spawn ?? null)})`;
      this.events.append("environment.created", { name: init.name, provider: init.provider });
      if (init.spawn) this.events.append("spawn.granted", { maxChildren: init.spawn.maxChildren, maxDepth: init.spawn.maxDepth });
      return ok(this.describeRow(this.row()!));
    });
  }

  async describe(): Promise<Outcome<Environment>> {
    return this.entry("rpc", () => this.withRow((row) => ok(this.describeRow(row))));
  }

  /**
   * For an environment placed on a provider host: ask the host to create it (with an agent token of
   * the current generation and the URL to dial), and record the resource id it answers. A refusal
   * is a failure of the environment, with the host's reason as lastError.
   */
  async provision(): Promise<Outcome<Environment>> {
    return this.entry("rpc", () =>
      this.withRow(async (row) => {
        if (!row.host) return fail("invalid_state", "This environment has no provider host; start its agent yourself with its agent token.");
        await this.apply("start", `provisioning on host ${row.host}`);
        await this.provisionOnHost("env.create");
        return ok(this.describeRow(this.row()!));
      }),
    );
  }

  /** The environment's host came back: recover the resource unless the agent is already here. */
  async hostReturned(host: string): Promise<void> {
    return this.entry("rpc", async () => {
      const row = this.row();
      if (!row || row.host !== host || row.state === "archived" || row.state === "stopped" || readyAgent(this.ctx)) return;
      this.events.append("provider.host_returned", { host });
      await this.provisionOnHost(row.resource_id ? "env.recover" : "env.create");
    }, false); // the org's host registry calls this: never refused as a flood
  }

  /** Logs something the provider side did to this environment (kept even when archived). */
  async noteProviderEvent(type: string, data: Record<string, string | number | boolean>): Promise<void> {
    return this.entry("rpc", () => {
      if (this.row()) this.events.append(type, data);
    }, false);
  }

  async start(): Promise<Outcome<Environment>> {
    return this.entry("rpc", () => this.action("start"));
  }

  async restart(): Promise<Outcome<Environment>> {
    return this.entry("rpc", () => this.action("restart"));
  }

  /** Asks the agent to tear down and waits (up to the stop timeout) until the environment is stopped. */
  async stop(): Promise<Outcome<Environment>> {
    return this.entry("rpc", async () => {
      const acted = await this.action("stop");
      if (!acted.ok) return acted;
      await this.waitForState((s) => s !== "stopping", settingsOf(this.row()!).stopTimeoutMs + 1_000);
      return ok(this.describeRow(this.row()!));
    });
  }

  /** DELETE: keeps a tombstone and the event log; revokes the agent token; drops config and timers. */
  async archive(): Promise<Outcome<Environment>> {
    return this.entry("rpc", () =>
      this.withRow(async (row) => {
        if (row.state === "archived") return ok(this.describeRow(row));
        const t = transition(row.state, "archive");
        if (!t.ok) return this.refuse(row, "archive", t.reason);
        const at = this.iso();
        this.sql`UPDATE environment SET state = 'archived', agent_gen = agent_gen + 1, config = '{}', agent = NULL, updated_at = ${at}`;
        this.schedule.clearAll();
        this.pending.failAll({ code: "invalid_state", message: "the environment was archived" });
        this.events.append("state.changed", { from: row.state, to: "archived", event: "archive" });
        this.events.append("agent.token_revoked", { gen: row.agent_gen + 1, why: "archived" });
        for (const ws of this.ctx.getWebSockets()) closeQuietly(ws, CLOSE.archived, "environment archived");
        await this.ctx.storage.deleteAlarm();
        await updateIndexedState(this.env.DB, row.org, row.id, "archived", at);
        if (row.host) this.ctx.waitUntil(this.provisionOnHost("env.teardown"));
        this.notifyStateWaiters();
        return ok(this.describeRow(this.row()!));
      }),
    );
  }

  /** Bumps the agent-token generation: older tokens are refused and a connected agent is cut off. */
  async rotateAgentToken(): Promise<Outcome<{ gen: number; org: string }>> {
    return this.entry("rpc", () =>
      this.withRow((row) => {
        if (row.state === "archived") return this.refuse(row, "rotate the agent token of", "the environment is archived");
        const gen = row.agent_gen + 1;
        this.sql`UPDATE environment SET agent_gen = ${gen}, updated_at = ${this.iso()}`;
        this.events.append("agent.token_rotated", { gen });
        for (const ws of openSockets(this.ctx, AGENT_TAG)) closeQuietly(ws, CLOSE.unauthorized, "agent token revoked");
        return ok({ gen, org: row.org });
      }),
    );
  }

  /** Whether an agent token of generation `gen` is still valid (the Worker asks before an agent spawns). */
  async checkAgentToken(gen: number): Promise<Outcome<void>> {
    return this.entry("rpc", () => this.withRow((row) => agentTokenCurrent(row, gen)));
  }

  /** Grants, changes or withdraws the spawn scope (agent-token.ts): index, log, and a new agent token sent to the agent. */
  async changeSpawnScope(grant: SpawnGrant | null): Promise<Outcome<{ spawn: SpawnClaim | null; agentToken: string; delivered: boolean }>> {
    return this.entry("rpc", () => this.withRow((row) => changeSpawnScope(this.env, this.sql, row, grant, (op, p, t) => this.relay.ask(op, p, t), this.events)));
  }

  async listEvents(after: number, limit: number): Promise<Outcome<{ events: EnvironmentEvent[]; next: number }>> {
    return this.entry("rpc", () => this.withRow(() => ok(this.events.page(after, limit))));
  }

  async getMetrics(): Promise<Outcome<EnvironmentMetrics>> {
    return this.entry("rpc", () => this.withRow(() => ok(this.metrics.snapshot(this.sql))));
  }

  // ---- RPC: work in the environment (relay.ts) --------------------------------------------

  async exec(params: ExecParams): Promise<Outcome<ExecResult>> {
    return this.entry("rpc", () => this.relay.exec(params));
  }

  /** Exec with output streamed as ndjson lines, paced by credit (see Relay.execStream). */
  async execStream(params: ExecParams): Promise<Outcome<ReadableStream<Uint8Array>>> {
    return this.entry("rpc", () => this.relay.execStream(params));
  }

  /** Cancels an exec in flight: the agent signals its whole process group. */
  async cancelExec(execId: string): Promise<Outcome<{ cancelled: boolean }>> {
    return this.entry("rpc", () => this.withRow(() => this.relay.cancelExec(execId)));
  }

  /** Streams a file out of the workspace. Resolves once the first bytes (or the answer) arrive. */
  async readFile(path: string): Promise<Outcome<ReadableStream<Uint8Array>>> {
    return this.entry("rpc", () => this.relay.readFile(path));
  }

  /** Streams a body into a workspace file; the agent renames it into place only when all bytes arrived. */
  async writeFile(path: string, body: ReadableStream<Uint8Array>, size: number): Promise<Outcome<FileWriteResult>> {
    return this.entry("rpc", () => this.relay.writeFile(path, body, size));
  }

  /** One-request file operations (stat, list, mkdir, move, copy, delete). */
  async fileOp<O extends SimpleFileOp>(op: O, params: unknown): Promise<Outcome<OpResult<O>>> {
    return this.entry("rpc", () => this.relay.fileOp(op, params));
  }

  /** What changed in the workspace against its base (git HEAD, or the state when the agent started). */
  async diff(params: { maxFileBytes?: number }): Promise<Outcome<OpResult<"diff">>> {
    return this.entry("rpc", () => this.relay.diff(params));
  }

  // ---- RPC: snapshots (snapshots.ts) ------------------------------------------------------

  async takeSnapshot(params: OpParams<"snapshot.take">): Promise<Outcome<SnapshotTaken>> {
    return this.entry("rpc", () => this.snapshots.take(params));
  }

  /** The agent bundles the snapshot; resolves with its size and sha256 and the bytes still flowing. */
  async exportSnapshot(params: OpParams<"snapshot.bundle">): Promise<Outcome<ExportedBundle>> {
    return this.entry("rpc", () => this.snapshots.exportBundle(params));
  }

  async importSnapshot(params: OpParams<"snapshot.import">, body: ReadableStream<Uint8Array>): Promise<Outcome<SnapshotImportResult>> {
    return this.entry("rpc", () => this.snapshots.importBundle(params, body));
  }

  async branchSnapshot(params: OpParams<"snapshot.branch">): Promise<Outcome<SnapshotBranchResult>> {
    return this.entry("rpc", () => this.snapshots.branch(params));
  }

  async diffSnapshots(params: OpParams<"snapshot.diff">): Promise<Outcome<ReadableStream<Uint8Array>>> {
    return this.entry("rpc", () => this.snapshots.diff(params));
  }

  // ---- RPC: agent runs -------------------------------------------------------------------

  /** Queues a run; its start request is kept durably until the agent takes it. */
  async createRun(run: NewRun & { env?: Record<string, string>; message?: string }): Promise<Outcome<Run>> {
    return this.entry("rpc", () => this.queueRun(run));
  }

  // ---- RPC: execution chaining (chaining.ts) -----------------------------------------------

  async getChaining(): Promise<Outcome<{ gateway: Gateway; routing: Routing }>> {
    return this.entry("rpc", () => this.withRow(() => ok(this.chaining.config())));
  }

  async setGateway(gateway: Gateway): Promise<Outcome<Gateway>> {
    return this.entry("rpc", () => this.withRow(async (row) => (row.state === "archived" ? this.refuse(row, "change the gateway of", "the environment is archived") : ok(await this.chaining.setGateway(row, gateway)))));
  }

  async setRouting(routing: Routing): Promise<Outcome<Routing>> {
    return this.entry("rpc", () => this.withRow((row) => (row.state === "archived" ? this.refuse(row, "change the routes of", "the environment is archived") : ok(this.chaining.setRouting(routing)))));
  }

  /** Work that starts here; `agentGen` when this environment's own agent asks (its token's generation). */
  async forward(body: ForwardBody, forwardId: string, agentGen?: number): Promise<Outcome<ReadableStream<Uint8Array>>> {
    return this.entry("rpc", () =>
      this.withRow((row) => {
        if (row.state === "archived") return this.refuse(row, "forward from", "the environment is archived");
        if (agentGen !== undefined && agentGen !== row.agent_gen) return fail("unauthorized", "The agent token was revoked (rotated); this agent may not forward.");
        return this.chaining.originate(row, body, forwardId);
      }),
    );
  }

  /** Work another environment forwarded here (DO RPC from its object). */
  async forwardHop(req: HopRequest): Promise<Outcome<ReadableStream<Uint8Array>>> {
    return this.entry("rpc", () => this.withRow((row) => this.chaining.receive(row, req)));
  }

  /** Cancels a forwarded request here and at every hop after this one. */
  async cancelForward(forwardId: string): Promise<Outcome<{ cancelled: number }>> {
    return this.entry("rpc", () => this.withRow(async () => ok({ cancelled: await this.chaining.cancel(forwardId) })));
  }

  private async queueRun(run: NewRun & { env?: Record<string, string>; message?: string }): Promise<Outcome<Run>> {
    return this.withRow(async (row) => {
      if (row.state === "archived") return this.refuse(row, "start a run in", "the environment is archived");
      const created = this.runs.create(run);
      const params = { runId: run.id, command: run.command, env: run.env, message: run.message, threadId: run.threadId, objectiveId: run.objectiveId };
      this.link.send(readyAgent(this.ctx), { v: 1, kind: "request", id: `run:${run.id}:start`, op: "run.start", params, timeoutMs: 60_000 }, run.id);
      return ok(created);
    });
  }

  async getRun(id: string): Promise<Outcome<Run>> {
    return this.entry("rpc", () => this.withRow(() => {
      const run = this.runs.get(id);
      return run ? ok(run) : fail("not_found", `No run ${id} in this environment.`);
    }));
  }

  async listRuns(limit: number): Promise<Outcome<Run[]>> {
    return this.entry("rpc", () => this.withRow(() => ok(this.runs.list(limit))));
  }

  async cancelRun(id: string): Promise<Outcome<Run>> {
    return this.entry("rpc", () =>
      this.withRow(() => {
        const run = this.runs.get(id);
        if (!run) return fail("not_found", `No run ${id} in this environment.`);
        if (run.state !== "queued" && run.state !== "running") return fail("invalid_state", `Run ${id} is already ${run.state}.`, { state: run.state });
        this.link.send(readyAgent(this.ctx), { v: 1, kind: "request", id: `run:${id}:cancel`, op: "run.cancel", params: { runId: id }, timeoutMs: 60_000 }, id);
        this.events.append("run.cancel_requested", { runId: id });
        return ok(run);
      }),
    );
  }

  // ---- Sockets: the agent link and event watchers ------------------------------------------

  /** The Worker forwards upgrades here after verifying the token; the header says whose socket it is. */
  override async fetch(request: Request): Promise<Response> {
    return this.entry("fetch", () => {
      if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        return problemResponse(426, "upgrade_required", "Expected a WebSocket upgrade.", {}, { upgrade: "websocket" });
      }
      const row = this.row();
      if (!row) return problemResponse(404, "not_found", "No such environment.");
      return request.headers.get(SOCKET_KIND_HEADER) === "watch" ? this.acceptWatcher(request) : this.acceptAgent(request, row);
    });
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    return this.entry("webSocketMessage", async () => {
      const meta = agentAttachment(ws);
      // Watchers only ack (watchers.ts); anything else is closed at once so a flood cannot keep the object awake.
      if (!meta) return this.watchers.message(ws, message);
      if (typeof message !== "string") {
        this.link.send(ws, { v: 1, kind: "error", error: { code: "bad_request", message: "binary frames are not part of the protocol; send JSON text" } });
        return;
      }
      const parsed = parseAgentFrame(message);
      if (!parsed.ok) {
        this.link.send(ws, { v: 1, kind: "error", error: { code: "bad_request", message: parsed.error } });
        return;
      }
      const frame = parsed.frame;
      if (frame.kind === "hello") return this.onHello(ws, frame);
      if (!meta.helloed) {
        this.link.send(ws, { v: 1, kind: "error", error: { code: "bad_request", message: "send hello before anything else" } });
        return;
      }
      for (const f of this.link.receive(ws, frame)) await this.onAgentFrame(ws, f);
    });
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    return this.entry("webSocketClose", async () => {
      closeQuietly(ws, code, reason);
      await this.onAgentGone(ws, `closed (${code}${reason ? `: ${reason}` : ""})`);
    });
  }

  override async webSocketError(ws: WebSocket, error: unknown): Promise<void> {
    return this.entry("webSocketError", () => this.onAgentGone(ws, `errored (${error instanceof Error ? error.message : String(error)})`));
  }

  // ---- Timers ----------------------------------------------------------------------------

  override async alarm(): Promise<void> {
    return this.entry("alarm", async () => {
      if (!this.row()) return;
      const now = this.now();
      for (const due of this.schedule.takeDue(now)) if (due.key !== LINK_CHECK_TIMER) await this.apply(due.event as LifecycleEvent, "timer");
      await this.checkLink(now);
      this.events.prune();
      await this.arm();
    });
  }

  // ---- Behaviour -------------------------------------------------------------------------

  private acceptAgent(request: Request, row: Row): Response {
    const gen = Number(request.headers.get(AGENT_GEN_HEADER));
    if (gen !== row.agent_gen) {
      return problemResponse(401, "unauthorized", "This agent token has been revoked; rotate it and use the new one.", {}, { "www-authenticate": 'Bearer error="invalid_token"' });
    }
    if (row.state === "archived") return problemResponse(409, "invalid_state", "The environment is archived.");
    const pair = new WebSocketPair();
    this.ctx.acceptWebSocket(pair[1], [AGENT_TAG]);
    pair[1].serializeAttachment({ role: "agent", gen, grant: request.headers.get(AGENT_GRANT_HEADER) || null, connectedAt: this.now(), helloed: false, recv: row.agent_recv });
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  /** Sends every retained event after the cursor, then live ones: no gap, no duplicate (paced by acks, watchers.ts). */
  private acceptWatcher(request: Request): Response {
    const params = new URL(request.url).searchParams;
    const after = Math.max(0, Number(params.get("after") ?? 0) || 0, this.events.tailCursor(params.get("tail")));
    const window = Number(params.get("window"));
    return this.watchers.accept(after, Number.isInteger(window) && window > 0 ? Math.min(window, WATCH_WINDOW.events) : null);
  }

  private async onAgentFrame(ws: WebSocket, frame: Exclude<AgentFrame, Hello>): Promise<void> {
    switch (frame.kind) {
      case "reply": {
        const run = RUN_REQUEST.exec(frame.re);
        if (!run) return void this.pending.reply(frame);
        if (run[2] === "start") {
          const pid = frame.ok ? (frame.result as { pid?: number } | undefined)?.pid : undefined;
          const moved = frame.ok ? this.runs.started(run[1]!, pid ?? 0) : this.runs.failedToStart(run[1]!, frame.error.message);
          await this.settledRun(ws, moved);
        }
        return;
      }
      case "chunk":
        return void this.pending.chunk(frame);
      case "credit":
        this.pending.touch(frame.re);
        return this.link.grant(frame.re, frame.n);
      case "run.output":
        if (this.runs.output(frame)) this.persistRecv(ws);
        return;
      case "run.exit": {
        const row = this.row();
        if (frame.snapshot && row && this.runs.get(frame.runId) && !FINAL_RUN_STATES.has(this.runs.get(frame.runId)!.state)) {
          this.events.append("snapshot.taken", { snapshotId: frame.snapshot.snapshotId, commit: frame.snapshot.commit, runId: frame.runId });
          await recordSnapshot(this.env.DB, row.org, row.id, frame.snapshot, this.iso());
        }
        return this.settledRun(ws, this.runs.exited(frame));
      }
      case "health": {
        const meta = agentAttachment(ws);
        const { at, cpu, memory, disk, processes } = frame;
        if (meta) ws.serializeAttachment({ ...meta, health: { at, cpu, memory, disk, processes } satisfies HealthReport });
        return;
      }
      case "error":
        if (frame.re) this.pending.finish(frame.re, { ok: false, error: frame.error });
        else if (frame.error.code === "fatal") await this.apply("failure", frame.error.message);
        return;
      case "ack":
        return;
    }
  }

  /** A run changed state because of a frame: store the frame's seq with it, and tell the index. */
  private async settledRun(ws: WebSocket | null, run: Run | null): Promise<void> {
    if (ws) this.persistRecv(ws);
    if (!run) return;
    const row = this.row();
    if (row) await updateRunIndex(this.env.DB, row.org, run.id, run.state, this.iso());
  }

  private persistRecv(ws: WebSocket): void {
    this.sql`UPDATE environment SET agent_recv = ${this.link.recvOf(ws)}`;
  }

  private async onHello(ws: WebSocket, hello: Hello): Promise<void> {
    const row = this.row();
    const meta = agentAttachment(ws);
    if (!row || !meta) return closeQuietly(ws, CLOSE.archived, "environment no longer exists");
    if (!protocolCompatible(hello.protocol)) {
      return closeQuietly(ws, CLOSE.versionMismatch, `protocol ${hello.protocol} is not compatible with ${PROTOCOL_VERSION}`);
    }
    const t = transition(row.state, "agent.connected");
    if (!t.ok) return closeQuietly(ws, row.state === "archived" ? CLOSE.archived : CLOSE.stopped, `environment is ${row.state}; start it first`);
    // One agent per environment: the newest connection wins, older ones are told why they lost.
    for (const other of openSockets(this.ctx, AGENT_TAG, ws)) closeQuietly(other, CLOSE.replaced, "replaced by a newer agent connection");
    ws.serializeAttachment({ ...meta, helloed: true, resume: hello.resume ?? 0 });
    this.link.reset();
    this.chaining.agentBack();
    const agent = {
      version: hello.agent.version,
      hostname: hello.agent.hostname,
      platform: hello.agent.platform,
      capabilities: hello.capabilities,
      connectedAt: new Date(meta.connectedAt).toISOString(),
      pid: hello.agent.pid,
    };
    this.sql`UPDATE environment SET agent = ${JSON.stringify(agent)}, resource_id = COALESCE(${hello.resourceId ?? null}, resource_id)`;
    this.events.append("agent.connected", { version: agent.version, hostname: agent.hostname });
    await this.chaining.agentConnected(this.row()!);
    this.link.send(ws, { v: 1, kind: "welcome", protocol: PROTOCOL_VERSION, environmentId: row.id, heartbeatMs: settingsOf(row).heartbeatMs });
    const resent = this.link.replay(ws, hello.ack ?? 0);
    // The spawn scope changed while this agent was away: it gets the token that carries the current one.
    this.ctx.waitUntil(renewOnConnect(this.env, this.sql, row, meta.grant ?? null, (op, p, t) => this.relay.ask(op, p, t), this.events));
    // Another agent process: requests the old one took but never answered will not be answered.
    const before = row.agent ? (JSON.parse(row.agent) as { pid?: number; hostname?: string }) : null;
    if (before && (before.pid !== hello.agent.pid || before.hostname !== hello.agent.hostname)) {
      this.pending.failWhere((id) => !resent.has(id), { code: "agent_error", message: "the agent restarted before answering" });
    }
    await this.apply("agent.connected");
    // Back after a control plane restart: the link check recover() set is moot; dropping it saves each environment a wake.
    if (this.schedule.clear(LINK_CHECK_TIMER)) await this.arm();
    // Runs this agent does not know, whose start it already had (or never will get): lost.
    const known = new Set((hello.runs ?? []).map((r) => r.runId));
    for (const run of this.runs.open()) {
      if (known.has(run.id) || (run.state === "queued" && this.link.hasPending(run.id))) continue;
      await this.settledRun(null, this.runs.lost(run.id, "the agent came back without it (restarted)"));
    }
  }

  private async onAgentGone(ws: WebSocket, how: string): Promise<void> {
    const meta = agentAttachment(ws);
    if (!meta?.helloed || readyAgent(this.ctx)) return; // never served, or a newer agent took over
    // Requests in flight are kept: they are resent when the agent returns, or end by their own
    // timeout, or fail when the environment leaves for good (stopped, unconnectable, archived).
    if (!this.row()) return;
    this.sql`UPDATE environment SET last_seen_at = ${this.iso(this.lastSeen(ws))}, agent_recv = ${this.link.recvOf(ws)}`;
    this.events.append("agent.disconnected", { how });
    this.chaining.agentGone();
    await this.apply("agent.lost", how);
  }

  /** Half-open detection: a running environment whose agent has gone quiet is disconnected. */
  private async checkLink(now: number): Promise<void> {
    const row = this.row();
    if (!row || row.state !== "running") return;
    this.metrics.healthChecked(this.iso(now));
    const ws = readyAgent(this.ctx);
    // After a restart the agent has until the link check to come back (see recover).
    if (!ws && this.schedule.get(LINK_CHECK_TIMER)) return;
    const limit = settingsOf(row).heartbeatMs * MISSED_HEARTBEATS;
    if (ws && now - this.lastSeen(ws) <= limit) return;
    if (ws) {
      closeQuietly(ws, CLOSE.heartbeatTimeout, `no heartbeat for ${MISSED_HEARTBEATS} intervals`);
      await this.onAgentGone(ws, "half-open: no heartbeat");
    } else {
      await this.apply("agent.lost", "no agent socket");
    }
  }

  /**
   * Runs on every wake. After a restart of the control plane the agent's socket is gone without a
   * close event; the first wake (an API call, a reconnecting agent, or the persisted alarm) notices.
   * The agent is usually dialling back already (often it is what woke us), so rather than flap
   * running → disconnected → running (two index writes and two events before its hello), a link
   * check is scheduled as far out as half-open detection allows: it declares the agent lost only if
   * it has not returned by then. This is why no start-up scan over all environments is needed.
   */
  private async recover(): Promise<void> {
    const row = this.row();
    if (!row || row.state === "archived") return;
    if (row.state === "running" && openSockets(this.ctx, AGENT_TAG).length === 0 && !this.schedule.get(LINK_CHECK_TIMER)) {
      this.schedule.set(LINK_CHECK_TIMER, this.now() + settingsOf(row).heartbeatMs * MISSED_HEARTBEATS, "link.check");
    }
    await this.arm();
  }

  /** Applies a lifecycle event: refusal, or the new state with its timers, log entry and index update. */
  private async apply(event: LifecycleEvent, why?: string): Promise<{ ok: true } | { ok: false; reason: string }> {
    const row = this.row();
    if (!row) return { ok: false, reason: "no such environment" };
    const t = transition(row.state, event);
    if (!t.ok) return t;
    if (t.to !== row.state) await this.enter(row, t.to, event, why);
    return { ok: true };
  }

  private async enter(row: Row, to: EnvironmentState, event: LifecycleEvent, why?: string): Promise<void> {
    const now = this.now();
    const at = this.iso(now);
    const s = settingsOf(row);
    this.sql`UPDATE environment SET state = ${to}, updated_at = ${at} WHERE id = ${row.id}`;
    switch (to) {
      case "running":
        this.sql`UPDATE environment SET started_at = ${at}, restart_attempts = 0`;
        this.schedule.clear(LIFECYCLE_TIMER);
        this.metrics.healthChecked(at);
        break;
      case "starting":
        this.schedule.set(LIFECYCLE_TIMER, now + s.startTimeoutMs, "start.expired");
        break;
      case "restarting":
        this.sql`UPDATE environment SET restart_count = restart_count + 1, restart_attempts = restart_attempts + 1`;
        this.schedule.set(LIFECYCLE_TIMER, now + s.startTimeoutMs, "start.expired");
        for (const ws of openSockets(this.ctx, AGENT_TAG)) closeQuietly(ws, CLOSE.reconnect, "restart requested");
        // A provider host brings the environment back from its resource id (or anew).
        if (row.host) this.ctx.waitUntil(this.provisionOnHost(row.resource_id ? "env.recover" : "env.create"));
        break;
      case "disconnected":
        this.schedule.set(LIFECYCLE_TIMER, now + s.graceMs, "grace.expired");
        break;
      case "error":
      case "unconnectable":
        if (to === "unconnectable") {
          for (const run of this.runs.open()) await this.settledRun(null, this.runs.lost(run.id, "the agent did not come back within the grace period"));
        }
        if (to === "error") this.sql`UPDATE environment SET error_count = error_count + 1, last_error = ${why ?? "unknown error"}`;
        if (s.restart.policy === "on-failure" && row.restart_attempts < s.restart.maxRestarts) {
          this.schedule.set(LIFECYCLE_TIMER, now + restartDelay(s, row.restart_attempts), "restart.due");
        } else {
          this.schedule.clear(LIFECYCLE_TIMER);
        }
        break;
      case "stopping":
        this.schedule.set(LIFECYCLE_TIMER, now + s.stopTimeoutMs, "stop.done");
        break;
      case "stopped":
        this.schedule.clear(LIFECYCLE_TIMER);
        for (const ws of openSockets(this.ctx, AGENT_TAG)) closeQuietly(ws, CLOSE.stopped, "environment stopped");
        break;
      default:
        this.schedule.clear(LIFECYCLE_TIMER);
    }
    if (to === "stopped" || to === "unconnectable") this.pending.failAll({ code: "agent_not_connected", message: `the environment became ${to} before the agent answered` });
    this.events.append("state.changed", { from: row.state, to, event, ...(why ? { reason: why } : {}) });
    await updateIndexedState(this.env.DB, row.org, row.id, to, at);
    this.notifyStateWaiters();
    if (to === "stopping") await this.shutdownAgent();
    await this.arm();
  }

  /** Asks the environment's host to create, recover or tear down its resource. */
  private async provisionOnHost(op: "env.create" | "env.recover" | "env.teardown"): Promise<void> {
    const row = this.row();
    if (!row?.host) return;
    const registry = this.env.HOSTS.get(this.env.HOSTS.idFromName(row.org)) as unknown as HostRegistryRpc;
    const config = JSON.parse(row.config) as Record<string, unknown>;
    let params: Record<string, unknown>;
    if (op === "env.teardown") params = { environmentId: row.id, provider: row.provider, resourceId: row.resource_id };
    else {
      const agentToken = await currentAgentToken(this.env, this.sql, row);
      params = { environmentId: row.id, provider: row.provider, config, agentToken, url: row.control_url ?? "" };
      if (op === "env.recover") params.resourceId = row.resource_id ?? "";
    }
    const r = await registry.dispatch(row.host, op, params, 120_000);
    if (r.ok) {
      const result = r.value as { resourceId?: string; recovered?: boolean };
      if (result.resourceId) this.sql`UPDATE environment SET resource_id = ${result.resourceId}`;
      this.events.append(`provider.${op.slice(4)}`, { host: row.host, resourceId: result.resourceId ?? row.resource_id, ...(result.recovered !== undefined ? { recovered: result.recovered } : {}) });
      // A resource that could not be recovered is created anew.
      if (op === "env.recover" && result.recovered === false) await this.provisionOnHost("env.create");
    } else if (op === "env.teardown") {
      this.events.append("provider.teardown_failed", { host: row.host, reason: r.error.message });
    } else {
      await this.apply("failure", `host ${row.host} could not ${op.slice(4)} the environment: ${r.error.message}`);
    }
  }

  /** Stop: ask the agent to tear down; with no agent there is nothing to wait for. */
  private async shutdownAgent(): Promise<void> {
    const ws = readyAgent(this.ctx);
    if (!ws) {
      await this.apply("stop.done", "no agent connected");
      return;
    }
    const id = crypto.randomUUID();
    void this.pending.open(id, settingsOf(this.row()!).stopTimeoutMs, () => undefined);
    this.link.send(ws, { v: 1, kind: "request", id, op: "shutdown", params: { reason: "environment stopped" }, timeoutMs: settingsOf(this.row()!).stopTimeoutMs });
  }

  /** Sets the one alarm to the earliest timer, or the next link check while running. */
  private async arm(): Promise<void> {
    const row = this.row();
    if (!row || row.state === "archived") return;
    let recurring: number | null = null;
    if (row.state === "running") {
      const last = this.metrics.snapshot(this.sql).lastHealthCheckAt;
      recurring = (last ? Date.parse(last) : this.now()) + settingsOf(row).idleCheckMs;
    }
    await this.schedule.arm(recurring);
  }

  private async action(event: "start" | "stop" | "restart"): Promise<Outcome<Environment>> {
    return this.withRow(async (row) => {
      const t = transition(row.state, event);
      if (!t.ok) return this.refuse(row, event, t.reason);
      await this.apply(event, "requested");
      return ok(this.describeRow(this.row()!));
    });
  }

  private refuse(row: Row, action: string, reason: string): Refusal {
    return fail("invalid_state", `Cannot ${action} environment '${row.name}': ${reason}.`, { state: row.state });
  }

  private waitForState(done: (s: EnvironmentState) => boolean, timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(finish, timeoutMs);
      const check = () => {
        const row = this.row();
        if (!row || done(row.state)) finish();
        else this.stateWaiters.push(check);
      };
      function finish() {
        clearTimeout(timer);
        resolve();
      }
      check();
    });
  }

  private notifyStateWaiters(): void {
    const waiters = this.stateWaiters;
    this.stateWaiters = [];
    for (const w of waiters) w();
  }

  private readyOrRefuse(): Outcome<WebSocket> {
    // A serving agent socket implies the record (sockets are accepted for it, and closed when it is
    // archived): the record is read only to say why there is none, not on every relayed request.
    const ws = readyAgent(this.ctx);
    if (ws && this.exists) return ok(ws);
    const row = this.row();
    if (!row) return notFound();
    if (ws) return ok(ws);
    if (row.state === "archived") return this.refuse(row, "use", "the environment is archived");
    return fail("agent_not_connected", `No agent is connected to environment '${row.name}' (state: ${row.state}); start one with outpost-agent and its agent token.`, { state: row.state });
  }

  /** Every entry point: counted, and the counts written once at the end. */
  private async entry<T>(name: Entry, fn: () => T | Promise<T>, limited = name === "rpc"): Promise<T> {
    this.metrics.enter(name);
    try {
      const refused = limited ? floodRefusal(this.flood, this.now()) : null;
      if (refused) return refused as T; // every limited RPC answers an Outcome
      return await fn();
    } finally {
      this.metrics.flush(this.ctx.storage.sql, this.sql, this.exists, (pending) => carryMetrics(this.ctx, pending), this.pending.size > 0);
    }
  }

  private async withRow<T>(fn: (row: Row) => Outcome<T> | Promise<Outcome<T>>): Promise<Outcome<T>> {
    const row = this.row();
    return row ? fn(row) : notFound();
  }

  private row(): Row | null {
    if (!this.exists && !(this.exists = hasSchema(this.sql))) return null;
    return this.sql<Row>`SELECT * FROM environment LIMIT 1`[0] ?? null;
  }

  private describeRow(row: Row): Environment {
    const ws = readyAgent(this.ctx);
    return describe(row, {
      connected: ws !== null,
      health: ws ? (agentAttachment(ws)?.health ?? null) : null,
      lastSeenMs: ws ? this.lastSeen(ws) : null,
      lastHealthCheckAt: this.metrics.snapshot(this.sql).lastHealthCheckAt,
    });
  }

  /** The later of the last heartbeat answered by auto-response and the moment the socket connected. */
  private lastSeen(ws: WebSocket): number {
    const pong = this.ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? 0;
    return Math.max(pong, agentAttachment(ws)?.connectedAt ?? 0);
  }

  private iso(ms = this.now()): string {
    return new Date(ms).toISOString();
  }
}

const notFound = (): Refusal => fail("not_found", "No such environment.");

