/**
 * The typed client of the Outpost HTTP API. Method names are the OpenAPI operationIds
 * (worker/openapi/routes.ts); every JSON answer is parsed with the protocol's zod schema, so a
 * drift between the Worker and its schemas fails loudly here instead of deep inside a caller.
 */
import * as z from "zod";
import {
  CreateEnvironmentResponse,
  Deleted,
  DiffResult,
  Environment,
  EnvironmentMetrics,
  EventsPage,
  ExecCancelResponse,
  ExecResponse,
  ExecStreamLine,
  FileCopyResult,
  FileDeleteResult,
  FileListResponse,
  FileMkdirResult,
  FileMoveResult,
  FileStat,
  FileWriteResult,
  ForwardLine,
  Gateway,
  Health,
  HostList,
  HostTokenResponse,
  InstalledProviderResponse,
  ListEnvironmentsResponse,
  ProviderList,
  RotatedAgentToken,
  Routing,
  RunList,
  RunResponse,
  Snapshot,
  SnapshotBranchResult,
  SnapshotExport,
  SnapshotImportResult,
  type CreateEnvironmentInput,
  type CreateRunBody,
  type EnvironmentState,
  type ExecBody,
  type ForwardBody,
  type CreateSnapshotBody,
  type ExportSnapshotBody,
  type ImportSnapshotBody,
  type SnapshotBranchBody,
  type HostTokenInput,
  type InstallProviderInput,
  WATCH_WINDOW,
} from "@outpost/protocol";
import {
  DiffSnapshotsBody,
  EnvironmentTreeNode,
  MergeSnapshotBody,
  Objective,
  Run,
  SpawnGrant,
  SpawnScopeResponse,
  Thread,
  UserTokenResponse,
  type UserTokenInput,
  type CreateObjectiveBody,
  type CreateThreadBody,
  type SpawnBody,
} from "@outpost/protocol";
import { ApiError, apiError } from "./errors.js";
import { browserWebSocket, EventStream, type WebSocketFactory } from "./events.js";
import { ndjsonLines } from "./ndjson.js";

export interface ClientOptions {
  /** Opens the event stream's WebSocket; the default is the runtime's global WebSocket with ?access_token=. */
  webSocket?: WebSocketFactory;
  /** Deadline of ordinary requests (default 30 s); transfers and streams have none unless given. */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export interface RequestOptions {
  json?: unknown;
  /** A stream is sent as it is read (give content-length in headers; uploads need it). */
  body?: Uint8Array | string | ReadableStream<Uint8Array>;
  headers?: Record<string, string>;
  /** 0: no deadline. */
  timeoutMs?: number;
  query?: Record<string, string | number | boolean | undefined>;
  signal?: AbortSignal;
}

/** Bytes to upload: in memory, or a stream with its size (the API needs Content-Length up front). */
export type Upload = Uint8Array | string | { stream: ReadableStream<Uint8Array>; size: number };

const EnvironmentResponse = z.object({ environment: Environment });
const SnapshotSummary = Snapshot.omit({ exports: true, environments: true });
const BranchResponse = z.object({ branch: SnapshotBranchResult.extend({ environmentId: z.string(), message: z.string() }), snapshot: Snapshot });
const ImportResponse = z.object({ import: SnapshotImportResult.extend({ intoThread: z.string().nullable() }), snapshot: Snapshot });
const SpawnScope = z.object({ spawn: SpawnGrant.nullable() });
const enc = encodeURIComponent;

export class Client {
  readonly url: string;
  private readonly fetcher: typeof fetch;
  private readonly webSocket: WebSocketFactory;
  private readonly timeoutMs: number;

  constructor(
    url: string,
    readonly token: string,
    o: ClientOptions = {},
  ) {
    this.url = url.replace(/\/+$/, "");
    this.fetcher = o.fetch ?? ((...args) => fetch(...args));
    this.webSocket = o.webSocket ?? browserWebSocket;
    this.timeoutMs = o.timeoutMs ?? 30_000;
  }

  /** The raw response, whatever its status: for callers that inspect errors themselves. */
  request(method: string, path: string, o: RequestOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}`, ...o.headers };
    let body: RequestInit["body"];
    if (o.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(o.json);
    } else if (o.body !== undefined) {
      body = o.body as RequestInit["body"];
    }
    const timeoutMs = o.timeoutMs ?? this.timeoutMs;
    const signals = [o.signal, timeoutMs > 0 ? AbortSignal.timeout(timeoutMs) : undefined].filter((s): s is AbortSignal => !!s);
    const signal = signals.length > 1 ? AbortSignal.any(signals) : signals[0];
    const duplex = body instanceof ReadableStream ? { duplex: "half" } : {};
    return this.fetcher(`${this.url}${path}${queryString(o.query)}`, { method, headers, body, signal, ...duplex } as RequestInit);
  }

  // ---- Meta ------------------------------------------------------------------------------

  health() {
    return this.call(Health, "GET", "/v1/health");
  }

  openapi() {
    return this.call(z.record(z.string(), z.unknown()), "GET", "/v1/openapi.json");
  }

  // ---- Environments ----------------------------------------------------------------------

  createEnvironment(body: CreateEnvironmentInput) {
    return this.call(CreateEnvironmentResponse, "POST", "/v1/environments", { json: body });
  }

  listEnvironments(q: { limit?: number; cursor?: string; state?: EnvironmentState; provider?: string } = {}) {
    return this.call(ListEnvironmentsResponse, "GET", "/v1/environments", { query: q });
  }

  async getEnvironment(idOrName: string, timeoutMs?: number): Promise<Environment> {
    return (await this.call(EnvironmentResponse, "GET", env(idOrName), { timeoutMs })).environment;
  }

  async startEnvironment(idOrName: string): Promise<Environment> {
    return (await this.call(EnvironmentResponse, "POST", `${env(idOrName)}/start`)).environment;
  }

  async stopEnvironment(idOrName: string): Promise<Environment> {
    return (await this.call(EnvironmentResponse, "POST", `${env(idOrName)}/stop`, { timeoutMs: 0 })).environment;
  }

  async restartEnvironment(idOrName: string): Promise<Environment> {
    return (await this.call(EnvironmentResponse, "POST", `${env(idOrName)}/restart`)).environment;
  }

  /** Archives the environment (DELETE): its agent token is revoked and its sockets closed. */
  async archiveEnvironment(idOrName: string): Promise<Environment> {
    return (await this.call(EnvironmentResponse, "DELETE", env(idOrName))).environment;
  }

  getEnvironmentMetrics(idOrName: string) {
    return this.call(EnvironmentMetrics, "GET", `${env(idOrName)}/metrics`);
  }

  /** Issues a new agent token; the previous one stops working and its agent is disconnected. */
  rotateAgentToken(idOrName: string) {
    return this.call(RotatedAgentToken, "POST", `${env(idOrName)}/agent-token`);
  }

  // ---- Exec ------------------------------------------------------------------------------

  /** Runs a command and answers when it has finished (output capped; see execStream for all of it). */
  exec(idOrName: string, body: ExecBody) {
    return this.call(ExecResponse, "POST", `${env(idOrName)}/exec`, { json: body, timeoutMs: (body.timeoutMs ?? 60_000) + 15_000 });
  }

  /**
   * Runs a command and yields its output as it comes: `started` (with the execId for cancelExec),
   * stdout/stderr pieces, then one `exit` or `error`. Breaking out of the loop closes the stream.
   */
  async *execStream(idOrName: string, body: ExecBody, o: { signal?: AbortSignal } = {}): AsyncGenerator<ExecStreamLine> {
    const res = await this.request("POST", `${env(idOrName)}/exec`, { json: body, headers: { accept: "application/x-ndjson" }, timeoutMs: 0, signal: o.signal });
    if (!res.ok) throw await apiError(res);
    if (!res.body) throw new ApiError(res.status, "unexpected_response", "exec: the stream has no body", null);
    for await (const line of ndjsonLines(res.body)) {
      const parsed = ExecStreamLine.safeParse(line);
      if (!parsed.success) throw new ApiError(res.status, "unexpected_response", `exec: unexpected line: ${z.prettifyError(parsed.error)}`, null);
      yield parsed.data;
    }
  }

  cancelExec(idOrName: string, execId: string) {
    return this.call(ExecCancelResponse, "POST", `${env(idOrName)}/exec/${enc(execId)}/cancel`);
  }

  // ---- Files -----------------------------------------------------------------------------

  /** The file's bytes as a stream, with its size when the answer says it. */
  async readFileStream(idOrName: string, path: string, o: { signal?: AbortSignal } = {}): Promise<{ body: ReadableStream<Uint8Array>; size: number | null }> {
    const res = await this.request("GET", `${env(idOrName)}/files`, { query: { path }, timeoutMs: 0, signal: o.signal });
    if (!res.ok) throw await apiError(res);
    const length = res.headers.get("content-length");
    return { body: res.body ?? new Blob([]).stream(), size: length && /^\d+$/.test(length) ? Number(length) : null };
  }

  async readFile(idOrName: string, path: string): Promise<Uint8Array> {
    const res = await this.request("GET", `${env(idOrName)}/files`, { query: { path }, timeoutMs: 60_000 });
    if (!res.ok) throw await apiError(res);
    return new Uint8Array(await res.arrayBuffer());
  }

  writeFile(idOrName: string, path: string, data: Upload) {
    const isStream = typeof data === "object" && "stream" in data;
    const body = isStream ? data.stream : data;
    const headers: Record<string, string> = { "content-type": "application/octet-stream" };
    if (isStream) headers["content-length"] = String(data.size);
    return this.call(FileWriteResult, "PUT", `${env(idOrName)}/files`, { query: { path }, body, headers, timeoutMs: isStream ? 0 : 60_000 });
  }

  deleteFile(idOrName: string, path: string, o: { recursive?: boolean } = {}) {
    return this.call(FileDeleteResult, "DELETE", `${env(idOrName)}/files`, { query: { path, recursive: o.recursive } });
  }

  statFile(idOrName: string, path: string) {
    return this.call(FileStat, "GET", `${env(idOrName)}/files/stat`, { query: { path } });
  }

  listFiles(idOrName: string, path = ".", o: { recursive?: boolean; maxEntries?: number } = {}) {
    return this.call(FileListResponse, "GET", `${env(idOrName)}/files/list`, { query: { path, ...o } });
  }

  makeDirectory(idOrName: string, path: string, o: { recursive?: boolean } = {}) {
    return this.call(FileMkdirResult, "POST", `${env(idOrName)}/files/mkdir`, { json: { path, ...o } });
  }

  moveFile(idOrName: string, from: string, to: string, o: { overwrite?: boolean } = {}) {
    return this.call(FileMoveResult, "POST", `${env(idOrName)}/files/move`, { json: { from, to, ...o } });
  }

  copyFile(idOrName: string, from: string, to: string, o: { overwrite?: boolean } = {}) {
    return this.call(FileCopyResult, "POST", `${env(idOrName)}/files/copy`, { json: { from, to, ...o } });
  }

  diff(idOrName: string, o: { maxFileBytes?: number } = {}) {
    return this.call(DiffResult, "GET", `${env(idOrName)}/diff`, { query: o, timeoutMs: 120_000 });
  }

  // ---- Runs ------------------------------------------------------------------------------

  async createRun(idOrName: string, body: CreateRunBody) {
    return (await this.call(RunResponse, "POST", `${env(idOrName)}/runs`, { json: body })).run;
  }

  async listRuns(idOrName: string, o: { limit?: number } = {}) {
    return (await this.call(RunList, "GET", `${env(idOrName)}/runs`, { query: o })).runs;
  }

  async getRun(runId: string) {
    return (await this.call(RunResponse, "GET", `/v1/runs/${enc(runId)}`)).run;
  }

  async cancelRun(runId: string) {
    return (await this.call(RunResponse, "POST", `/v1/runs/${enc(runId)}/cancel`)).run;
  }

  // ---- Events ----------------------------------------------------------------------------

  listEvents(idOrName: string, o: { after?: number; limit?: number } = {}) {
    return this.call(EventsPage, "GET", `${env(idOrName)}/events`, { query: o });
  }

  /**
   * The live event stream (a WebSocket): every retained event after `after`, then new ones.
   * The environment and token are checked with one ordinary request first, so that a refusal
   * arrives as an ApiError with its problem+json instead of a bare WebSocket failure.
   */
  async streamEvents(idOrName: string, o: { after?: number; tail?: number } = {}): Promise<EventStream> {
    await this.listEvents(idOrName, { limit: 1 });
    const url = new URL(`${this.url}${env(idOrName)}/events/stream`);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("after", String(o.after ?? 0));
    if (o.tail !== undefined) url.searchParams.set("tail", String(o.tail));
    url.searchParams.set("window", String(WATCH_WINDOW.events)); // we ack (flow control, protocol/src/watch.ts)
    const stream = new EventStream(this.webSocket(url.toString(), { authorization: `Bearer ${this.token}` }), o.after ?? 0);
    await stream.ready();
    return stream;
  }

  // ---- Chaining ------------------------------------------------------------------------

  /** Whether the environment takes forwarded work and from whom, with its routing rules. */
  getGateway(idOrName: string) {
    return this.call(z.object({ gateway: Gateway, routing: Routing }), "GET", `${env(idOrName)}/gateway`);
  }

  async setGateway(idOrName: string, gateway: z.input<typeof Gateway>) {
    return (await this.call(z.object({ gateway: Gateway }), "PUT", `${env(idOrName)}/gateway`, { json: gateway })).gateway;
  }

  async getRoutes(idOrName: string) {
    return (await this.call(z.object({ routing: Routing }), "GET", `${env(idOrName)}/routes`)).routing;
  }

  async setRoutes(idOrName: string, routing: z.input<typeof Routing>) {
    return (await this.call(z.object({ routing: Routing }), "PUT", `${env(idOrName)}/routes`, { json: routing })).routing;
  }

  /**
   * Forwards work from an environment (chained exec): by its rules, to a target, along a route, or
   * to several targets; yields `started`, output, each target's exit/result/error, and `done` after a fan-out.
   */
  async *forward(idOrName: string, body: z.input<typeof ForwardBody>, o: { signal?: AbortSignal } = {}): AsyncGenerator<ForwardLine> {
    const res = await this.request("POST", `${env(idOrName)}/forward`, { json: body, headers: { accept: "application/x-ndjson" }, timeoutMs: 0, signal: o.signal });
    if (!res.ok) throw await apiError(res);
    if (!res.body) throw new ApiError(res.status, "unexpected_response", "forward: the stream has no body", null);
    for await (const line of ndjsonLines(res.body)) {
      const parsed = ForwardLine.safeParse(line);
      if (!parsed.success) throw new ApiError(res.status, "unexpected_response", `forward: unexpected line: ${z.prettifyError(parsed.error)}`, null);
      yield parsed.data;
    }
  }

  cancelForward(idOrName: string, forwardId: string) {
    return this.call(z.object({ cancelled: z.literal(true), hops: z.number().int() }), "POST", `${env(idOrName)}/forward/${enc(forwardId)}/cancel`);
  }

  // ---- Snapshots -------------------------------------------------------------------------

  /** A commit of the environment's workspace in its shadow repository (exported to R2 too with `export`). */
  async createSnapshot(body: z.input<typeof CreateSnapshotBody>) {
    return (await this.call(z.object({ snapshot: Snapshot }), "POST", "/v1/snapshots", { json: body, timeoutMs: 300_000 })).snapshot;
  }

  async listSnapshots(q: { threadId?: string; environment?: string; limit?: number } = {}) {
    return (await this.call(z.object({ snapshots: z.array(SnapshotSummary) }), "GET", "/v1/snapshots", { query: q })).snapshots;
  }

  async getSnapshot(id: string) {
    return (await this.call(z.object({ snapshot: Snapshot }), "GET", `/v1/snapshots/${enc(id)}`)).snapshot;
  }

  /** Streams a git bundle (or tar.gz) of the snapshot into R2, with its size and sha256. */
  exportSnapshot(id: string, body: z.input<typeof ExportSnapshotBody> = {}) {
    return this.call(z.object({ export: SnapshotExport, snapshot: Snapshot }), "POST", `/v1/snapshots/${enc(id)}/export`, { json: body, timeoutMs: 300_000 });
  }

  /** An export's bytes, with the size and the sha256 the control plane recorded. */
  async downloadSnapshotExport(id: string, exportId: string): Promise<{ body: ReadableStream<Uint8Array>; size: number | null; sha256: string | null }> {
    const res = await this.request("GET", `/v1/snapshots/${enc(id)}/exports/${enc(exportId)}`, { timeoutMs: 0 });
    if (!res.ok) throw await apiError(res);
    const length = res.headers.get("content-length");
    return { body: res.body ?? new Blob([]).stream(), size: length && /^\d+$/.test(length) ? Number(length) : null, sha256: res.headers.get("x-outpost-sha256") };
  }

  /** Brings a snapshot into an environment (verified before the workspace changes): replace, patch or branch. */
  importSnapshot(id: string, body: z.input<typeof ImportSnapshotBody>) {
    return this.call(ImportResponse, "POST", `/v1/snapshots/${enc(id)}/import`, { json: body, timeoutMs: 300_000 });
  }

  /**
   * A branch ready for a pull request in the environment's own repository: `outpost/<name>` rooted
   * at the user's HEAD, one commit with the snapshot's files; the work tree, index and HEAD untouched.
   */
  branchSnapshot(id: string, body: z.input<typeof SnapshotBranchBody>) {
    return this.call(BranchResponse, "POST", `/v1/snapshots/${enc(id)}/branch`, { json: body, timeoutMs: 300_000 });
  }

  /** narrative.json: the objective, thread and runs stored beside the snapshot's bundles. */
  getSnapshotNarrative(id: string) {
    return this.call(z.record(z.string(), z.unknown()), "GET", `/v1/snapshots/${enc(id)}/narrative`);
  }

  /** The patch (or `stat`, or git `format-patch` mail) between two snapshots or environments, as text. */
  async diffSnapshots(body: z.input<typeof DiffSnapshotsBody>): Promise<string> {
    const res = await this.request("POST", "/v1/snapshots/diff", { json: body, timeoutMs: 120_000 });
    if (!res.ok) throw await apiError(res);
    return res.text();
  }

  /** Merges a snapshot's (or an environment's) changes into the environment `into` as a patch; conflicts listed. */
  mergeSnapshot(body: z.input<typeof MergeSnapshotBody>) {
    return this.call(ImportResponse, "POST", "/v1/snapshots/merge", { json: body, timeoutMs: 300_000 });
  }

  // ---- Hierarchy: objectives, threads, spawned children ----------------------------------

  async createObjective(body: z.input<typeof CreateObjectiveBody>) {
    return (await this.call(z.object({ objective: Objective }), "POST", "/v1/objectives", { json: body })).objective;
  }

  async listObjectives(q: { limit?: number } = {}) {
    return (await this.call(z.object({ objectives: z.array(Objective) }), "GET", "/v1/objectives", { query: q })).objectives;
  }

  /** An objective with its threads. */
  getObjective(id: string) {
    return this.call(z.object({ objective: Objective, threads: z.array(Thread) }), "GET", `/v1/objectives/${enc(id)}`);
  }

  async createThread(body: z.input<typeof CreateThreadBody>) {
    return (await this.call(z.object({ thread: Thread }), "POST", "/v1/threads", { json: body })).thread;
  }

  async listThreads(q: { objectiveId?: string; limit?: number } = {}) {
    return (await this.call(z.object({ threads: z.array(Thread) }), "GET", "/v1/threads", { query: q })).threads;
  }

  /** A thread with its runs and snapshots. */
  getThread(id: string) {
    const ThreadRun = Run.pick({ id: true, environmentId: true, state: true, createdAt: true });
    return this.call(z.object({ thread: Thread, runs: z.array(ThreadRun), snapshots: z.array(SnapshotSummary) }), "GET", `/v1/threads/${enc(id)}`);
  }

  /** The environment's scope to spawn children; null when it may not. */
  async getSpawnScope(idOrName: string) {
    return (await this.call(SpawnScope, "GET", `${env(idOrName)}/spawn`)).spawn;
  }

  /**
   * Grants the scope (maxChildren, maxDepth, providers, capabilities), or withdraws it with null (admin).
   * Answers `{ spawn, agentToken, delivered }`: the agent token that carries the scope, and whether the
   * connected agent was handed it (when not, start the environment's agent with that token).
   */
  setSpawnScope(idOrName: string, spawn: z.input<typeof SpawnGrant> | null) {
    return this.call(SpawnScopeResponse, "PUT", `${env(idOrName)}/spawn`, { json: { spawn } });
  }

  /** The environment and every environment below it, as a tree. */
  async getChildren(idOrName: string) {
    return (await this.call(z.object({ tree: EnvironmentTreeNode }), "GET", `${env(idOrName)}/children`)).tree;
  }

  /** Spawns a child within the parent's scope (403 outside it, 409 at a limit); answers it with its agent token. */
  spawnChild(idOrName: string, body: z.input<typeof SpawnBody>) {
    return this.call(CreateEnvironmentResponse, "POST", `${env(idOrName)}/children`, { json: body });
  }

  /** Closes (archives) a child and everything below it. */
  async closeChild(idOrName: string, child: string) {
    return (await this.call(EnvironmentResponse, "DELETE", `${env(idOrName)}/children/${enc(child)}`)).environment;
  }

  // ---- Hosts, providers, tokens ----------------------------------------------------------

  async listHosts() {
    return (await this.call(HostList, "GET", "/v1/hosts")).hosts;
  }

  createHostToken(body: HostTokenInput) {
    return this.call(HostTokenResponse, "POST", "/v1/hosts/tokens", { json: body });
  }

  /** Issues a user/API token in the caller's org (admin): a role no higher than the caller's, `ttlSeconds` up to 90 days (default 30). */
  createUserToken(body: UserTokenInput) {
    return this.call(UserTokenResponse, "POST", "/v1/tokens", { json: body });
  }

  installProvider(body: InstallProviderInput) {
    return this.call(InstalledProviderResponse, "POST", "/v1/providers", { json: body });
  }

  listProviders() {
    return this.call(ProviderList, "GET", "/v1/providers");
  }

  uninstallProvider(id: string) {
    return this.call(Deleted, "DELETE", `/v1/providers/${enc(id)}`);
  }

  // ---- Plumbing --------------------------------------------------------------------------

  protected async call<T>(schema: z.ZodType<T>, method: string, path: string, o: RequestOptions = {}): Promise<T> {
    const res = await this.request(method, path, o);
    if (!res.ok) throw await apiError(res);
    const parsed = schema.safeParse(await res.json());
    if (!parsed.success) throw new ApiError(res.status, "unexpected_response", `${method} ${path}: unexpected response: ${z.prettifyError(parsed.error)}`, null);
    return parsed.data;
  }
}

const env = (idOrName: string) => `/v1/environments/${enc(idOrName)}`;

function queryString(q: RequestOptions["query"]): string {
  if (!q) return "";
  const entries = Object.entries(q).filter((e): e is [string, string | number | boolean] => e[1] !== undefined);
  return entries.length ? `?${new URLSearchParams(entries.map(([k, v]): [string, string] => [k, String(v)])).toString()}` : "";
}
