/**
 * Execution chaining in an environment's object: its gateway and routing rules, requests it starts
 * (`originate`), requests other environments forward to it (`receive`), and cancellation. Work goes
 * A's object → B's object by DO RPC (`forwardHop`) and B's agent runs it; every hop returns an ndjson
 * stream of ForwardLines that the hop before passes on, so output reaches the origin in order.
 * Decisions are routing.ts's; this file carries them out.
 */
import {
  checkRelativePath,
  ENVIRONMENT_ID,
  Gateway,
  INACTIVE_GATEWAY,
  Ops,
  REMOTE_PROVIDER,
  RemoteConfig,
  requestTypeOf,
  Routing,
  type CreateRunBody,
  type ExecParams,
  type ForwardBody,
  type ForwardLine,
  type Run,
  type Target,
} from "@outpost/protocol";
import type { Env } from "../worker/env.js";
import { findIdByName, insertRun } from "../worker/environment-index.js";
import { gatewaysWithCapability, upsertGateway } from "../worker/gateway-index.js";
import { newId } from "../worker/ids.js";
import { environmentStub } from "../worker/stub.js";
import type { EventLog } from "./events.js";
import { handlerExec } from "./handlers.js";
import { HopWatches } from "./hop-watch.js";
import { LineWriter, oneLine, readLines, relayLines } from "./lines.js";
import { fail, ok, type Outcome } from "./outcome.js";
import type { Row } from "./record.js";
import type { Relay, SimpleFileOp } from "./relay.js";
import { admit, arrive, candidatesFor, decide, originTrail, targetLabel, type Decision, type Hop, type Trail } from "./routing.js";
import type { NewRun } from "./runs.js";
import type { Sql } from "./sql.js";

/** The work a forwarded request carries (exactly one). */
export type Work = { exec: Omit<ExecParams, "stream"> } | { file: { op: FileOp; params: Record<string, unknown> } } | { run: CreateRunBody } | { payload: unknown };
type FileOp = "stat" | "list" | "mkdir" | "move" | "copy" | "delete";

/** What one hop sends the next by RPC. */
export interface HopRequest {
  forwardId: string;
  from: Hop;
  trail: Trail;
  type: string;
  action: string | null;
  work: Work;
  /** The rest of an explicit route after this hop (empty: this hop's rules decide). */
  route: Target[];
}

export interface ChainHost {
  row(): Row | null;
  /** The serving agent, or why there is none. */
  ready(): Outcome<WebSocket>;
  readonly relay: Relay;
  readonly events: EventLog;
  readonly sql: Sql;
  readonly env: Env;
  createRun(run: NewRun & { env?: Record<string, string>; message?: string }): Promise<Outcome<Run>>;
  iso(): string;
  now(): number;
  /** The agent's last heartbeat, or null when none is connected. */
  agentSeenAt(): number | null;
  /** Silence from the agent this long means its link is half-open (the environment's heartbeat rule). */
  agentStaleMs(): number;
}

/** How long the next deployment may take to answer a federated request's headers. */
const REMOTE_CONNECT_MS = 30_000;
/** The lines that end a forwarded stream with its outcome. */
const OUTCOMES = new Set(["exit", "result", "error", "done"]);
/** A capability target tries the next candidate when one of these refuses. */
const TRY_NEXT = new Set(["agent_not_connected", "forbidden", "not_found"]);

type Stream = ReadableStream<Uint8Array>;

export class Chaining {
  /** Per forwardId: how to cancel what this object started for it (local execs, next hops). */
  private readonly inflight = new Map<string, Set<() => Promise<unknown>>>();
  /** The bound on the forwarded execs this object's agent runs (hop-watch.ts): one timer for all. */
  private readonly watches: HopWatches;

  constructor(private readonly h: ChainHost) {
    this.watches = new HopWatches({
      now: () => h.now(),
      agentSeenAt: () => h.agentSeenAt(),
      acknowledged: (execId) => h.relay.execAcknowledged(execId),
      fail: (execId, code, reason) => h.relay.abandonExec(execId, { code, message: reason }),
    });
  }

  /** The agent's link went away, or an agent connected: the bound on forwarded work hears of it. */
  agentGone(): void {
    this.watches.agentGone();
  }

  agentBack(): void {
    this.watches.agentBack();
  }

  config(): { gateway: Gateway; routing: Routing } {
    const [r] = this.h.sql<{ gateway: string; routing: string }>`SELECT gateway, routing FROM chaining WHERE id = 1`;
    if (!r) return { gateway: INACTIVE_GATEWAY, routing: Routing.parse({}) };
    return { gateway: Gateway.parse(JSON.parse(r.gateway)), routing: Routing.parse(JSON.parse(r.routing)) };
  }

  async setGateway(row: Row, gateway: Gateway): Promise<Gateway> {
    const { routing } = this.config();
    this.save(gateway, routing);
    this.h.events.append("gateway.changed", { accept: gateway.accept, allowFrom: gateway.allowFrom.join(","), capabilities: gateway.capabilities.join(",") });
    await this.index(row, gateway);
    return gateway;
  }

  setRouting(routing: Routing): Routing {
    const { gateway } = this.config();
    this.save(gateway, routing);
    this.h.events.append("routing.changed", { rules: routing.rules.length, maxHops: routing.maxHops });
    return routing;
  }

  /** An agent said hello: an accepting gateway's capabilities include what the agent reports. */
  async agentConnected(row: Row): Promise<void> {
    const [r] = this.h.sql<{ gateway: string }>`SELECT gateway FROM chaining WHERE id = 1`;
    if (!r) return;
    const gateway = Gateway.parse(JSON.parse(r.gateway));
    if (gateway.accept) await this.index(row, gateway);
  }

  /** A request that starts here (the HTTP API, or this environment's own agent). */
  async originate(row: Row, body: ForwardBody, forwardId: string): Promise<Outcome<Stream>> {
    const { routing } = this.config();
    const self = hopOf(row);
    let trail = originTrail(self, routing.maxHops, routing.ackTimeoutMs);
    if (body.via) {
      const arrived = arrive(self, body.via, routing.maxHops, routing.ackTimeoutMs);
      if (!arrived.ok) return fail(arrived.code, arrived.message, { hop: row.name });
      trail = arrived.trail;
    }
    const { type, action } = requestTypeOf(body);
    const work = workOf(body);
    const checked = checkWork(work);
    if (!checked.ok) return checked;
    const decision = decide({ explicit: { target: body.target, route: body.route, targets: body.targets }, rules: routing.rules, type, action });
    this.h.events.append("forward.started", { forwardId, type: action ? `${type}:${action}` : type, decision: describeDecision(decision) });
    const out = await this.dispatch(row, decision, { forwardId, from: self, trail, type, action, work, route: [] });
    if (!out.ok) return out;
    // Relayed as bytes after the `started` line; a reader that goes away cancels the work.
    return ok(relayLines(out.value, { prefix: { type: "started", forwardId } satisfies ForwardLine, end: () => null, onCancel: () => this.cancel(forwardId) }));
  }

  /** A request another environment forwarded here. */
  async receive(row: Row, req: HopRequest): Promise<Outcome<Stream>> {
    const self = hopOf(row);
    if (row.state === "archived") return fail("not_found", `Hop '${row.name}' is archived.`, { hop: row.name });
    const { gateway, routing } = this.config();
    const admitted = admit(gateway, self, req.from, req.trail);
    if (!admitted.ok) {
      this.h.events.append("forward.refused", { forwardId: req.forwardId, from: req.from.name, code: admitted.code });
      return fail(admitted.code, admitted.message, { hop: row.name, route: [...req.trail.names, row.name] });
    }
    this.h.events.append("forward.received", { forwardId: req.forwardId, from: req.from.name, origin: req.trail.names[0] ?? req.trail.origin, hops: admitted.trail.hops, type: req.type });
    const decision = decide({ explicit: { route: req.route }, rules: routing.rules, type: req.type, action: req.action });
    // A hop that passes work on is an environment on the path like any other: it must be serving.
    if (decision.kind !== "local" && row.provider !== REMOTE_PROVIDER) {
      const ready = this.h.ready();
      if (!ready.ok) return fail(ready.error.code, `Hop '${row.name}' cannot pass the request on: ${ready.error.message}`, { hop: row.name, route: admitted.trail.names });
    }
    return this.dispatch(row, decision, { ...req, from: self, trail: admitted.trail });
  }

  /** Cancels whatever this object runs or forwarded for `forwardId`, and through it every later hop. */
  async cancel(forwardId: string): Promise<number> {
    const entries = [...(this.inflight.get(forwardId) ?? [])];
    this.inflight.delete(forwardId);
    await Promise.all(entries.map((cancel) => cancel().catch(() => undefined)));
    if (entries.length) this.h.events.append("forward.cancelled", { forwardId });
    return entries.length;
  }

  private dispatch(row: Row, d: Decision, req: HopRequest): Promise<Outcome<Stream>> | Outcome<Stream> {
    switch (d.kind) {
      case "refuse":
        return fail(d.code, d.message, { hop: row.name });
      case "local":
        return this.runHere(row, req);
      case "forward":
        return this.sendTo(row, d.next, d.rest, req);
      case "fanout":
        return ok(this.fanOut(row, d.targets, req));
    }
  }

  /** Sends the request to the next hop; a capability target tries its candidates in turn. */
  private async sendTo(row: Row, target: Target, rest: Target[], req: HopRequest): Promise<Outcome<Stream>> {
    const label = targetLabel(target);
    const found = await this.resolve(row.org, target, req.trail);
    if (!found.ok) return fail(found.error.code, found.error.message, { hop: label, route: [...req.trail.names, label] });
    let last: Outcome<Stream> = fail("not_found", `No environment for ${label}.`, { hop: label });
    for (const hop of found.value) {
      const stub = environmentStub(this.h.env, row.org, hop.id);
      let r: Outcome<Stream>;
      try {
        r = await stub.forwardHop({ ...req, from: hopOf(row), route: rest });
      } catch (e) {
        r = fail("agent_error", `Hop '${hop.name}' failed: ${e instanceof Error ? e.message : String(e)}`, { hop: hop.name });
      }
      if (r.ok) {
        this.h.events.append("forward.sent", { forwardId: req.forwardId, to: hop.name, type: req.type, hops: req.trail.hops + 1 });
        return ok(this.passOn(req, hop.name, r.value, () => stub.cancelForward(req.forwardId)));
      }
      last = r;
      if (typeof target === "string" || !TRY_NEXT.has(r.error.code)) break;
    }
    if (!last.ok) this.h.events.append("forward.failed", { forwardId: req.forwardId, to: label, code: last.error.code });
    return last;
  }

  /** Each target gets the request; lines are tagged with their target, then one `done` sums up. */
  private fanOut(row: Row, targets: Target[], req: HopRequest): Stream {
    const out = new LineWriter<ForwardLine>();
    void (async () => {
      const results = await Promise.all(
        targets.map(async (t) => {
          const target = targetLabel(t);
          const r = await this.sendTo(row, t, [], req);
          if (!r.ok) {
            const hop = String(r.error.details?.hop ?? target);
            await out.write({ type: "error", code: r.error.code, message: r.error.message, hop, target });
            return { target, ok: false, code: r.error.code, message: r.error.message, hop };
          }
          let end: Record<string, unknown> | null = null;
          for await (const line of readLines(r.value)) {
            await out.write({ ...line, target } as ForwardLine);
            if (line.type === "exit" || line.type === "result" || line.type === "error") end = line;
          }
          return summary(target, end);
        }),
      );
      await out.write({ type: "done", results });
      await out.close();
    })();
    return out.readable;
  }

  /** Runs the work in this environment: its agent, or (provider `remote`) another deployment. */
  private async runHere(row: Row, req: HopRequest): Promise<Outcome<Stream>> {
    if (row.provider === REMOTE_PROVIDER) return this.runRemote(row, req);
    const route = req.trail.names;
    const failed = (e: { code: string; message: string }) => fail(e.code, `Hop '${row.name}' failed: ${e.message}`, { hop: row.name, route });
    let w = req.work;
    if ("payload" in w) {
      const origin = req.trail.names[0] ?? req.trail.origin;
      const exec = handlerExec({ handlers: this.config().gateway.handlers, type: req.type, action: req.action, payload: w.payload, hop: row.name, origin, forwardId: req.forwardId });
      if (!exec.ok) return fail(exec.error.code, exec.error.message, { hop: row.name, route });
      w = { exec: exec.value };
    }
    if ("exec" in w) {
      // The relay hands its lines over as objects: reshaped here and encoded once, never parsed back.
      const out = new LineWriter<ForwardLine>();
      let execId: string | null = null;
      const started = this.h.relay.execLines(w.exec, {
        line: (line) => {
          if (execId) this.watches.progress(execId);
          switch (line.type) {
            case "started": {
              const id = (execId = line.execId);
              this.track(req.forwardId, () => Promise.resolve(this.h.relay.cancelExec(id)));
              this.watches.watch(id, { ackTimeoutMs: req.trail.ackTimeoutMs, staleMs: this.h.agentStaleMs() });
              return Promise.resolve();
            }
            case "exit":
              return out.write({ ...line, route });
            case "error":
              return out.write({ type: "error", code: line.code, message: `Hop '${row.name}' failed: ${line.message}`, hop: row.name, route });
            default:
              return out.write(line);
          }
        },
        end: () => {
          // Whatever ends the stream, the hop's timer must not outlive it (it would keep the object awake).
          if (execId) this.watches.stop(execId);
          this.inflight.delete(req.forwardId);
          return out.close();
        },
      });
      if (!started.ok) return failed(started.error);
      return ok(out.readable);
    }
    if ("file" in w) {
      const r = await this.h.relay.fileOp(`file.${w.file.op}` as SimpleFileOp, w.file.params);
      return r.ok ? ok(oneLine<ForwardLine>({ type: "result", value: r.value, route })) : failed(r.error);
    }
    const id = newId("run");
    const r = await this.h.createRun({ id, command: w.run.agent.command, env: w.run.agent.env, message: w.run.message, threadId: w.run.threadId, objectiveId: w.run.objectiveId });
    if (!r.ok) return failed(r.error);
    await insertRun(this.h.env.DB, row.org, { id, environmentId: row.id, threadId: r.value.threadId, objectiveId: r.value.objectiveId, createdAt: r.value.createdAt });
    return ok(oneLine<ForwardLine>({ type: "result", value: r.value, route }));
  }

  /** Federation: the request goes to the other deployment's forward API with the token it issued. */
  private async runRemote(row: Row, req: HopRequest): Promise<Outcome<Stream>> {
    const cfg = RemoteConfig.safeParse(JSON.parse(row.config));
    if (!cfg.success) return fail("invalid_state", `Hop '${row.name}' has no valid remote config (url, token, environment).`, { hop: row.name });
    const { url, token, environment } = cfg.data;
    const base = `${url.replace(/\/+$/, "")}/v1/environments/${encodeURIComponent(environment)}`;
    const headers = { authorization: `Bearer ${token}`, "content-type": "application/json", accept: "application/x-ndjson" };
    const type = req.action && !["files", "runs"].includes(req.type) ? `${req.type}:${req.action}` : req.type;
    const body = { ...req.work, ...(type !== "files" && type !== "runs" ? { type } : {}), via: { origin: req.trail.origin, hops: req.trail.hops, trail: req.trail.visited, names: req.trail.names, maxHops: req.trail.maxHops, ackTimeoutMs: req.trail.ackTimeoutMs } };
    const connect = new AbortController();
    const timer = setTimeout(() => connect.abort(new Error(`no answer within ${REMOTE_CONNECT_MS} ms`)), REMOTE_CONNECT_MS);
    let res: Response;
    try {
      res = await fetch(`${base}/forward`, { method: "POST", headers, body: JSON.stringify(body), signal: connect.signal });
    } catch (e) {
      return fail("agent_error", `Hop '${row.name}' could not reach the remote deployment ${new URL(url).host}: ${e instanceof Error ? e.message : String(e)}`, { hop: row.name });
    } finally {
      clearTimeout(timer);
    }
    if (!res.ok || !res.body) {
      const problem = (await res.json().catch(() => ({}))) as { code?: string; detail?: string; hop?: string };
      const hop = problem.hop ? `${row.name}/${problem.hop}` : row.name;
      return fail(problem.code ?? "agent_error", `Hop '${row.name}': the remote deployment ${new URL(url).host} answered ${res.status}: ${problem.detail ?? res.statusText}`, { hop });
    }
    // Passed on as bytes: only the first line is read, the other deployment's `started` (its forwardId, to cancel there).
    return ok(
      relayLines(res.body, {
        first: (line) => {
          if (line?.type !== "started") return false;
          const remoteId = encodeURIComponent(String(line.forwardId));
          this.track(req.forwardId, () => fetch(`${base}/forward/${remoteId}/cancel`, { method: "POST", headers: { authorization: headers.authorization } }));
          return true;
        },
        end: () => {
          this.inflight.delete(req.forwardId);
          return null;
        },
        onCancel: () => this.cancel(req.forwardId),
      }),
    );
  }

  private async resolve(org: string, target: Target, trail: Trail): Promise<Outcome<Hop[]>> {
    if (typeof target === "string") {
      if (ENVIRONMENT_ID.test(target)) return ok([{ id: target, name: target }]);
      const id = await findIdByName(this.h.env.DB, org, target);
      return id ? ok([{ id, name: target }]) : fail("not_found", `No environment named '${target}' in this org.`);
    }
    const candidates = candidatesFor(await gatewaysWithCapability(this.h.env.DB, org, target.capability), trail);
    if (candidates.length === 0) return fail("not_found", `No environment that accepts forwarded work offers capability '${target.capability}'.`);
    return ok(candidates);
  }

  private track(forwardId: string, cancel: () => Promise<unknown>): () => void {
    let set = this.inflight.get(forwardId);
    if (!set) this.inflight.set(forwardId, (set = new Set()));
    set.add(cancel);
    return () => {
      set.delete(cancel);
      if (set.size === 0 && this.inflight.get(forwardId) === set) this.inflight.delete(forwardId);
    };
  }

  /**
   * Passes a next hop's stream on as bytes (relayLines: only its last line is read); until it ends,
   * a cancel here reaches that hop, and so does a reader here that goes away. A stream that breaks
   * off, or ends without an outcome, ends here with an error naming that hop.
   */
  private passOn(req: HopRequest, hop: string, stream: Stream, cancel: () => Promise<unknown>): Stream {
    const untrack = this.track(req.forwardId, cancel);
    const route = [...req.trail.names, hop];
    return relayLines(stream, {
      end: ({ last, broke }) => {
        untrack();
        if (last && OUTCOMES.has(String(last.type))) return null;
        const why = broke ? `broke off: ${broke instanceof Error ? broke.message : String(broke)}` : "ended its stream without a result";
        return { type: "error", code: "agent_error", message: `Hop '${hop}' ${why}.`, hop, route } satisfies ForwardLine;
      },
      onCancel: () => {
        untrack();
        return cancel();
      },
    });
  }

  private save(gateway: Gateway, routing: Routing): void {
    this.h.sql`INSERT INTO chaining (id, gateway, routing) VALUES (1, ${JSON.stringify(gateway)}, ${JSON.stringify(routing)})
               ON CONFLICT (id) DO UPDATE SET gateway = excluded.gateway, routing = excluded.routing`;
  }

  private async index(row: Row, gateway: Gateway): Promise<void> {
    const agentCaps = row.agent ? ((JSON.parse(row.agent) as { capabilities?: string[] }).capabilities ?? []) : [];
    await upsertGateway(this.h.env.DB, row.org, row.id, gateway.accept, [...gateway.capabilities, ...agentCaps], this.h.iso());
  }
}

const hopOf = (row: Row): Hop => ({ id: row.id, name: row.name });

function workOf(body: ForwardBody): Work {
  if (body.file) return { file: body.file };
  if (body.run) return { run: body.run };
  if (body.payload !== undefined) return { payload: body.payload };
  return { exec: body.exec! };
}

/** The first gate for file paths (the agent jails every path again); params checked by the op's schema. */
function checkWork(work: Work): Outcome<true> {
  if (!("file" in work)) return ok(true);
  const schema = Ops[`file.${work.file.op}`].params;
  const parsed = schema.safeParse(work.file.params);
  if (!parsed.success) return fail("bad_request", `Invalid params for file ${work.file.op}.`);
  const p = work.file.params;
  for (const key of ["path", "from", "to"]) {
    if (typeof p[key] !== "string") continue;
    const checked = checkRelativePath(p[key]);
    if (!checked.ok && !(work.file.op === "list" && (p[key] === "" || p[key] === "."))) return fail("invalid_path", `file.params.${key}: ${checked.reason}`);
  }
  return ok(true);
}

function describeDecision(d: Decision): string {
  switch (d.kind) {
    case "local":
      return "local";
    case "forward":
      return [d.next, ...d.rest].map(targetLabel).join(" → ");
    case "fanout":
      return `fan-out: ${d.targets.map(targetLabel).join(", ")}`;
    case "refuse":
      return `refused: ${d.code}`;
  }
}

function summary(target: string, end: Record<string, unknown> | null) {
  if (!end) return { target, ok: false, code: "agent_error", message: "the stream ended without a result" };
  const route = Array.isArray(end.route) ? (end.route as string[]) : undefined;
  if (end.type === "error") return { target, ok: false, route, code: String(end.code), message: String(end.message), ...(end.hop ? { hop: String(end.hop) } : {}) };
  if (end.type === "exit") return { target, ok: end.exitCode === 0, route, exitCode: end.exitCode as number | null };
  return { target, ok: true, route };
}
