/**
 * Execution chaining: an environment forwards work to another, which may forward it further.
 * The gateway says whether an environment takes forwarded work and from whom; its routing rules
 * say, per request type, whether work runs here or goes on to a target. Shared by the Worker, the
 * Durable Objects and the provider-agent (its local endpoint and `outpost-agent exec`).
 */
import * as z from "zod";
import { CreateRunBody, ExecExitLine } from "./api.js";
import { ExecParams } from "./ops.js";

/** Hops a forwarded request may take unless the origin's routing says otherwise. */
export const DEFAULT_MAX_HOPS = 8;
export const MAX_HOPS_LIMIT = 32;
/** How long the agent that runs forwarded work has to acknowledge it, unless the origin says otherwise. */
export const DEFAULT_ACK_TIMEOUT_MS = 10_000;
/** At least 100 ms: the bound is a deadline per request, but a shorter one says nothing a network can keep. */
export const ACK_TIMEOUT_LIMITS_MS = { min: 100, max: 600_000 } as const;
const AckTimeoutMs = z.number().int().min(ACK_TIMEOUT_LIMITS_MS.min).max(ACK_TIMEOUT_LIMITS_MS.max);

/** An environment id or name (names are resolved in the forwarding environment's org). */
export const EnvironmentRef = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, "an environment id or name");
/** A capability requirement, resolved at request time to an accepting environment that has it. */
export const CapabilityTarget = z.object({ capability: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, "a capability name") });
export const Target = z.union([EnvironmentRef, CapabilityTarget]);
export type Target = z.infer<typeof Target>;

/** Built-in request types, and custom ones (`inference`, `inference:generate`) that carry an exec or a payload. */
export const BUILTIN_TYPES = ["exec", "files", "runs"] as const;
export const RequestType = z.string().regex(/^[a-z][a-z0-9-]{0,31}(?::[a-z][a-z0-9.-]{0,31})?$/, "a request type: name or name:action (lowercase)");

/** One rule: requests of `match` (a type, `type:action`, or `*`) run `local`ly or go to a target. */
export const RouteRule = z.object({
  match: z.union([RequestType, z.literal("*")]),
  to: z.union([z.literal("local"), Target]),
});
export type RouteRule = z.infer<typeof RouteRule>;

export const Routing = z.object({
  rules: z.array(RouteRule).max(64).default([]),
  /** The hop limit for requests this environment originates. */
  maxHops: z.number().int().min(1).max(MAX_HOPS_LIMIT).default(DEFAULT_MAX_HOPS),
  /** For requests this environment originates: the agent that runs one must acknowledge it within this. */
  ackTimeoutMs: AckTimeoutMs.default(DEFAULT_ACK_TIMEOUT_MS),
});
export type Routing = z.infer<typeof Routing>;

/**
 * What this environment runs for a custom request type that carries a `payload` instead of a
 * command: the command gets the payload as JSON on stdin, and the type in OUTPOST_REQUEST_TYPE.
 */
export const Handler = ExecParams.pick({ command: true, cwd: true, env: true, timeoutMs: true });
export type Handler = z.infer<typeof Handler>;
const isCustomType = (t: string) => !(BUILTIN_TYPES as readonly string[]).includes(t.split(":")[0]!);

/** Whether this environment takes forwarded work, and from whom (ids, names, or `*` for the org). */
export const Gateway = z.object({
  accept: z.boolean(),
  allowFrom: z.array(z.union([EnvironmentRef, z.literal("*")])).max(64).default([]),
  /** Capabilities it offers to routing (beside what its agent reports). */
  capabilities: z.array(z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/)).max(32).default([]),
  /** Handlers for custom request types (`inference`, or `inference:generate` for one action). */
  handlers: z
    .record(RequestType, Handler)
    .refine((h) => Object.keys(h).length <= 64, "at most 64 handlers")
    .refine((h) => Object.keys(h).every(isCustomType), "handlers are for custom request types, not exec, files or runs")
    .optional(),
});
export type Gateway = z.infer<typeof Gateway>;
export const INACTIVE_GATEWAY: Gateway = { accept: false, allowFrom: [], capabilities: [] };

const FileOp = z.enum(["stat", "list", "mkdir", "move", "copy", "delete"]);

/**
 * POST /v1/environments/{env}/forward: the work (one of exec, file, run), its type (default from
 * the work), and where it goes: nothing (the environment's rules), a `target`, an explicit `route`
 * (a linear chain; the last hop's rules may send it further), or `targets` (fan-out).
 */
export const ForwardBody = z
  .object({
    type: RequestType.optional(),
    exec: ExecParams.omit({ stream: true }).optional(),
    file: z.object({ op: FileOp, params: z.record(z.string(), z.unknown()) }).optional(),
    run: CreateRunBody.optional(),
    /** For a custom type: the input the destination's handler for that type gets on stdin (as JSON). */
    payload: z.unknown().optional(),
    target: Target.optional(),
    route: z.array(Target).min(1).max(MAX_HOPS_LIMIT).optional(),
    targets: z.array(Target).min(1).max(16).optional(),
    /** Set by a forwarding deployment (federation): where the request has been so far. */
    via: z.object({ origin: z.string().max(256), hops: z.number().int().min(0).max(MAX_HOPS_LIMIT), trail: z.array(z.string().max(256)).max(MAX_HOPS_LIMIT), names: z.array(z.string().max(256)).max(MAX_HOPS_LIMIT).optional(), maxHops: z.number().int().min(1).max(MAX_HOPS_LIMIT), ackTimeoutMs: AckTimeoutMs.optional() }).optional(),
  })
  .refine((b) => [b.exec, b.file, b.run, b.payload].filter((w) => w !== undefined).length === 1, { message: "give exactly one of exec, file, run or payload", path: ["exec"] })
  .refine((b) => b.payload === undefined || (b.type !== undefined && isCustomType(b.type)), { message: "a payload needs a custom type (such as inference:generate) for the destination's handler", path: ["type"] })
  .refine((b) => [b.target, b.route, b.targets].filter((w) => w !== undefined).length <= 1, { message: "give at most one of target, route or targets", path: ["target"] })
  .refine((b) => !b.type || (b.file ? b.type.split(":")[0] === "files" : b.run ? b.type.split(":")[0] === "runs" : !["files", "runs"].includes(b.type.split(":")[0]!)), {
    message: "type must match the work: files for file, runs for run, exec or a custom type for exec",
    path: ["type"],
  });
export type ForwardBody = z.infer<typeof ForwardBody>;

/** The request type and action of a forward body (`files:stat`, `runs:create`, `exec`, custom). */
export function requestTypeOf(b: Pick<ForwardBody, "type" | "file" | "run">): { type: string; action: string | null } {
  if (b.type) {
    const [type, action] = b.type.split(":");
    return { type: type!, action: action ?? (b.file ? b.file.op : b.run ? "create" : null) };
  }
  if (b.file) return { type: "files", action: b.file.op };
  if (b.run) return { type: "runs", action: "create" };
  return { type: "exec", action: null };
}

/** Where the answer came from: the hop path taken, origin first. */
export const RouteTaken = z.array(z.string());

/**
 * The forward stream (`Accept: application/x-ndjson`), one JSON object per line: `started` with the
 * forwardId (to cancel it), then per target its output and exactly one `exit`, `result` or `error`
 * (`target` names the fan-out branch; `route` the hops taken; `hop` the hop that failed), and for
 * fan-out a final `done` with every target's outcome.
 */
export const ForwardLine = z.discriminatedUnion("type", [
  z.object({ type: z.literal("started"), forwardId: z.string() }),
  z.object({ type: z.literal("stdout"), data: z.string(), target: z.string().optional() }),
  z.object({ type: z.literal("stderr"), data: z.string(), target: z.string().optional() }),
  ExecExitLine.extend({ route: RouteTaken, target: z.string().optional() }),
  z.object({ type: z.literal("result"), value: z.unknown(), route: RouteTaken, target: z.string().optional() }),
  z.object({ type: z.literal("error"), code: z.string(), message: z.string(), hop: z.string().optional(), route: RouteTaken.optional(), target: z.string().optional() }),
  z.object({
    type: z.literal("done"),
    results: z.array(z.object({ target: z.string(), ok: z.boolean(), route: RouteTaken.optional(), exitCode: z.number().int().nullable().optional(), code: z.string().optional(), message: z.string().optional(), hop: z.string().optional() })),
  }),
]);
export type ForwardLine = z.infer<typeof ForwardLine>;

/** An environment whose provider is `remote` stands for an environment of another Outpost deployment. */
export const RemoteConfig = z.object({
  /** The other deployment's base URL (https, or http on loopback for tests). */
  url: z.url({ protocol: /^https?$/ }),
  /** A user/API token that deployment issued (operator role or more); kept secret, shown redacted. */
  token: z.string().min(16).max(8192),
  /** The environment there (id or name). */
  environment: EnvironmentRef,
});
export type RemoteConfig = z.infer<typeof RemoteConfig>;
export const REMOTE_PROVIDER = "remote";
