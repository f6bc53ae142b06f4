/**
 * A provider host, without its transport: what it says in host.hello and host.status, and one
 * host.reply for every host.request (env.create, env.recover, env.teardown). Operations on one
 * environment run one after another; a repeated request id gets the same reply again instead of
 * running twice. The host state file is the only list of what the host may remove.
 */
import os from "node:os";
import {
  ENVIRONMENT_ID,
  HostOps,
  HostRequest,
  PROTOCOL_VERSION,
  type ErrorInfo,
  type HostHello,
  type HostOpName,
  type HostReply,
  type HostStatus,
} from "@outpost/protocol";
import * as z from "zod";
import type { Logger } from "../log.js";
import { AGENT_VERSION } from "../version.js";
import type { HostState, ResourceRecord } from "./host-state.js";
import type { HostedProvider } from "./hosted.js";
import { HostError } from "./provider.js";

type Reply = z.infer<typeof HostReply>;
type Hello = z.infer<typeof HostHello>;
type Status = z.infer<typeof HostStatus>;
type Params<Op extends HostOpName> = z.infer<(typeof HostOps)[Op]["params"]>;
type Result<Op extends HostOpName> = z.infer<(typeof HostOps)[Op]["result"]>;

/** Cleanup after a failed recovery gets its own deadline: the request's may be what failed. */
export const CLEANUP_TIMEOUT_MS = 60_000;
/** Replies remembered for requests the registry might send again after a reconnect. */
const REMEMBERED_REPLIES = 256;

export interface HostOptions {
  name: string;
  providers: HostedProvider[];
  state: HostState;
  /** The host's own capabilities (`--capabilities`); the providers' are added. */
  capabilities: string[];
  maxEnvironments: number;
  log: Logger;
  /** The set of resources changed: send host.status. */
  onChange?: (status: Status) => void;
}

export class Host {
  readonly #providers: Map<string, HostedProvider>;
  readonly #log: Logger;
  /** The tail of the operation chain of each environment. */
  readonly #chains = new Map<string, Promise<unknown>>();
  readonly #inflight = new Set<string>();
  readonly #answered = new Map<string, Reply>();
  readonly #running = new Set<Promise<unknown>>();
  /** Creates under way, counted against capacity before their record exists. */
  #creating = 0;
  #closing = false;

  constructor(private readonly options: HostOptions) {
    this.#providers = new Map(options.providers.map((p) => [p.id, p]));
    this.#log = options.log;
  }

  get capabilities(): string[] {
    const all = new Set(this.options.capabilities);
    for (const p of this.#providers.values()) for (const c of p.manifest.capabilities) all.add(c);
    return [...all].sort();
  }

  hello(): Hello {
    return {
      v: 1,
      kind: "host.hello",
      protocol: PROTOCOL_VERSION,
      host: { name: this.options.name, hostname: os.hostname().slice(0, 255), version: AGENT_VERSION, platform: `${process.platform}-${process.arch}` },
      providers: [...this.#providers.values()].map((p) => p.offer()),
      capabilities: this.capabilities,
      capacity: { maxEnvironments: this.options.maxEnvironments },
      resources: this.options.state.resources(),
    };
  }

  status(): Status {
    return { v: 1, kind: "host.status", environments: this.options.state.size, resources: this.options.state.resources() };
  }

  /**
   * Answers a frame of kind host.request. Null when there is nothing to send: the frame has no id
   * to answer, or a request with that id is still running (its one reply is on the way).
   */
  handle(frame: Record<string, unknown>): Promise<Reply> | null {
    const id = typeof frame.id === "string" && frame.id.length > 0 && frame.id.length <= 128 ? frame.id : null;
    if (id === null) {
      this.#log.warn("ignored a host.request without a usable id");
      return null;
    }
    if (this.#inflight.has(id)) return null;
    const earlier = this.#answered.get(id);
    if (earlier) return Promise.resolve(earlier);
    this.#inflight.add(id);
    const work = this.#answer(id, frame).then((reply) => {
      this.#inflight.delete(id);
      this.#answered.set(id, reply);
      if (this.#answered.size > REMEMBERED_REPLIES) this.#answered.delete(this.#answered.keys().next().value as string);
      return reply;
    });
    this.#running.add(work);
    void work.finally(() => this.#running.delete(work));
    return work;
  }

  /** New requests are refused from now on. */
  shutdown(): void {
    this.#closing = true;
  }

  /** Resolves when no request is running. */
  async idle(): Promise<void> {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running]);
  }

  async #answer(id: string, frame: Record<string, unknown>): Promise<Reply> {
    const request = HostRequest.safeParse(frame);
    if (!request.success) return failure(id, new HostError("bad_request", `malformed host.request: ${issues(request.error)}`, { issues: request.error.issues.map((i) => `${i.path.join(".") || "(frame)"}: ${i.message}`) }));
    const { op, params, timeoutMs } = request.data;
    const parsed = HostOps[op].params.safeParse(params);
    if (!parsed.success) return failure(id, new HostError("bad_request", `invalid params for ${op}: ${issues(parsed.error)}`, { issues: parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`) }));
    if (this.#closing) return failure(id, new HostError("conflict", "the host is shutting down"));
    const environmentId = parsed.data.environmentId;
    if (!ENVIRONMENT_ID.test(environmentId)) return failure(id, new HostError("bad_request", `'${environmentId}' is not an environment id`));
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new HostError("timeout", `${op} did not finish within ${timeoutMs} ms`)), timeoutMs);
    const started = Date.now();
    this.#log.info(`${op} ${environmentId} (request ${id})`);
    try {
      const result = await this.#serially(environmentId, () => this.#run(op, parsed.data, deadline.signal));
      this.#log.info(`${op} ${environmentId} done in ${Date.now() - started} ms`);
      return { v: 1, kind: "host.reply", re: id, ok: true, result };
    } catch (err) {
      const reply = failure(id, err, deadline.signal);
      if (!reply.ok) this.#log.warn(`${op} ${environmentId} failed: ${reply.error.code}: ${reply.error.message}`);
      return reply;
    } finally {
      clearTimeout(timer);
    }
  }

  #run(op: HostOpName, params: unknown, signal: AbortSignal): Promise<unknown> {
    if (op === "env.create") return this.#create(params as Params<"env.create">, signal);
    if (op === "env.recover") return this.#recover(params as Params<"env.recover">, signal);
    return this.#teardown(params as Params<"env.teardown">, signal);
  }

  async #create(params: Params<"env.create">, signal: AbortSignal): Promise<Result<"env.create">> {
    const provider = this.#offered(params.provider);
    provider.config(params.config);
    const existing = this.options.state.get(params.environmentId);
    if (existing) {
      if (existing.provider !== params.provider) {
        throw new HostError("conflict", `environment ${params.environmentId} already exists on this host with provider ${existing.provider}`, { resourceId: existing.resourceId });
      }
      // A create sent again (its reply lost): the environment is there, make sure its agent runs.
      const again = await provider.recover(params, existing, signal);
      if (again.recovered) {
        this.#record(existing, again.resourceId, again.notes);
        return { resourceId: again.resourceId };
      }
      await this.#cleanup(provider, existing);
    }
    if (this.options.state.size + this.#creating >= this.options.maxEnvironments) {
      throw new HostError("conflict", `this host is at capacity (${this.options.maxEnvironments} environments)`, { maxEnvironments: this.options.maxEnvironments, environments: this.options.state.size });
    }
    this.#creating++;
    try {
      const created = await provider.create(params, signal);
      this.options.state.put({ environmentId: params.environmentId, provider: provider.id, resourceId: created.resourceId, notes: created.notes ?? {} });
      this.#changed();
      return { resourceId: created.resourceId };
    } finally {
      this.#creating--;
    }
  }

  async #recover(params: Params<"env.recover">, signal: AbortSignal): Promise<Result<"env.recover">> {
    const provider = this.#offered(params.provider);
    // A bad request is refused before anything is touched: it is no failed recovery to clean up after.
    provider.config(params.config);
    const existing = this.options.state.get(params.environmentId);
    if (!existing || existing.provider !== params.provider) {
      // Never act on a resource this host did not record: it may be anything on the machine.
      this.#log.warn(`env.recover ${params.environmentId}: no ${params.provider} resource recorded on this host; reporting it gone`);
      return { resourceId: params.resourceId, recovered: false };
    }
    if (existing.resourceId !== params.resourceId) this.#log.warn(`env.recover ${params.environmentId}: the control plane knows resource ${params.resourceId}, this host ${existing.resourceId}; using the host's`);
    let outcome;
    try {
      outcome = await provider.recover(params, existing, signal);
    } catch (err) {
      const cleanup = await this.#cleanup(provider, existing);
      const info = toErrorInfo(err, signal);
      throw new HostError(info.code, `recovery failed: ${info.message}`, { ...info.details, resourceId: existing.resourceId, cleanup });
    }
    if (!outcome.recovered) {
      const cleanup = await this.#cleanup(provider, existing);
      this.#log.info(`env.recover ${params.environmentId}: resource ${existing.resourceId} is gone (cleanup: ${cleanup.outcome})`);
      return { resourceId: outcome.resourceId, recovered: false };
    }
    this.#record(existing, outcome.resourceId, outcome.notes);
    return { resourceId: outcome.resourceId, recovered: true };
  }

  async #teardown(params: Params<"env.teardown">, signal: AbortSignal): Promise<Result<"env.teardown">> {
    const existing = this.options.state.get(params.environmentId);
    if (!existing) {
      this.#log.info(`env.teardown ${params.environmentId}: nothing recorded on this host`);
      return { removed: false };
    }
    const provider = this.#providers.get(existing.provider);
    if (!provider) throw new HostError("not_found", `provider ${existing.provider} of environment ${params.environmentId} is not loaded on this host; start the host with it to tear the environment down`);
    const removed = await provider.teardown(existing, signal);
    this.options.state.remove(existing.environmentId);
    this.#changed();
    return { removed };
  }

  /** Cleans up a failed or vanished resource; the record goes only when the cleanup succeeded. */
  async #cleanup(provider: HostedProvider, record: ResourceRecord): Promise<{ outcome: "removed" | "failed"; error?: string }> {
    try {
      await provider.cleanup(record, AbortSignal.timeout(CLEANUP_TIMEOUT_MS));
      this.options.state.remove(record.environmentId);
      this.#changed();
      return { outcome: "removed" };
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.#log.error(`cleanup of ${record.environmentId} (${record.resourceId}) failed: ${message}`);
      return { outcome: "failed", error: message };
    }
  }

  #record(existing: ResourceRecord, resourceId: string, notes: Record<string, string> | undefined): void {
    const changed = existing.resourceId !== resourceId;
    this.options.state.put({ ...existing, resourceId, notes: { ...existing.notes, ...notes } });
    if (changed) this.#changed();
  }

  #offered(id: string): HostedProvider {
    const provider = this.#providers.get(id);
    if (!provider) throw new HostError("not_found", `this host does not offer provider '${id}' (it offers: ${[...this.#providers.keys()].join(", ")})`);
    return provider;
  }

  #changed(): void {
    this.options.onChange?.(this.status());
  }

  /** Runs `work` after every earlier operation on the same environment. */
  #serially<T>(environmentId: string, work: () => Promise<T>): Promise<T> {
    const before = this.#chains.get(environmentId) ?? Promise.resolve();
    const next = before.then(work, work);
    const tail = next.catch(() => {});
    this.#chains.set(environmentId, tail);
    void tail.then(() => {
      if (this.#chains.get(environmentId) === tail) this.#chains.delete(environmentId);
    });
    return next;
  }
}

function issues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join(".") || "(frame)"}: ${i.message}`).join("; ");
}

/** Codes an external provider (which cannot import HostError) may put on the errors it throws. */
const PROVIDER_ERROR_CODES = new Set(["bad_request", "unauthorized", "forbidden", "not_found", "conflict", "rate_limited", "timeout", "internal"]);

export function toErrorInfo(err: unknown, signal?: AbortSignal): ErrorInfo {
  if (err instanceof HostError) return { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) };
  const coded = err as { code?: unknown; details?: unknown } | null;
  if (err instanceof Error && typeof coded?.code === "string" && PROVIDER_ERROR_CODES.has(coded.code)) {
    const details = typeof coded.details === "object" && coded.details !== null ? { details: coded.details as Record<string, unknown> } : {};
    return { code: coded.code, message: err.message, ...details };
  }
  if (signal?.aborted) {
    const reason: unknown = signal.reason;
    return reason instanceof HostError ? { code: reason.code, message: reason.message } : { code: "timeout", message: "the request's deadline passed" };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: "internal", message: message || "unexpected host failure" };
}

function failure(id: string, err: unknown, signal?: AbortSignal): Reply {
  return { v: 1, kind: "host.reply", re: id, ok: false, error: toErrorInfo(err, signal) };
}
