/**
 * The rest of the HTTP API's shapes, beside api.ts: query strings, the bodies of files, hosts and
 * providers, and the responses the Worker builds itself. The Worker validates requests with these,
 * the OpenAPI document is generated from them and the typed client parses responses with them.
 */
import * as z from "zod";
import { EnvironmentEvent, EnvironmentState, PROVIDER_NAME, Run } from "./api.js";
import { FileStat } from "./ops.js";
import { ProviderOffer } from "./providers.js";
import { TOKEN_LIFETIME } from "./token-lifetimes.js";
import { ENVIRONMENT_ID } from "./tokens.js";
import { WATCH_WINDOW } from "./watch.js";

const HOST_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** Boolean query flags: `true`/`1` or `false`/`0`. */
export const QueryFlag = z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1");

export const ListEnvironmentsQuery = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(100),
  cursor: z.string().regex(ENVIRONMENT_ID, "cursor must be a nextCursor value from a previous page").optional(),
  state: EnvironmentState.optional(),
  provider: z.string().regex(PROVIDER_NAME).optional(),
});

export const EventsQuery = z.object({
  after: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});
/** `access_token` is for browsers, which cannot set headers on a WebSocket. */
export const EventStreamQuery = z.object({
  after: z.coerce.number().int().min(0).default(0),
  /** Replay at most the newest `tail` retained events (0: live ones only), still none at or before `after`. */
  tail: z.coerce.number().int().min(0).max(10_000).optional(),
  /** Flow control (watch.ts): the watcher acks, and wants at most this many unacknowledged events ahead. */
  window: z.coerce.number().int().min(1).max(WATCH_WINDOW.events).optional(),
  access_token: z.string().optional(),
});

export const RunsQuery = z.object({ limit: z.coerce.number().int().min(1).max(500).default(100) });

// ---- Files ---------------------------------------------------------------------------------

export const FilePathQuery = z.object({ path: z.string().describe("a path relative to the workspace") });
export const FileDeleteQuery = FilePathQuery.extend({ recursive: QueryFlag.optional() });
export const FileListQuery = z.object({
  path: z.string().optional().describe("a directory relative to the workspace; the root when left out"),
  recursive: QueryFlag.optional(),
  maxEntries: z.coerce.number().int().min(1).max(100_000).optional(),
});
export const DiffQuery = z.object({ maxFileBytes: z.coerce.number().int().min(1).max(16 * 1024 * 1024).optional() });
export const FileMoveBody = z.object({ from: z.string(), to: z.string(), overwrite: z.boolean().optional() });
export const FileMkdirBody = z.object({ path: z.string(), recursive: z.boolean().optional() });
export const FileListResponse = z.object({ entries: z.array(FileStat), truncated: z.boolean() });

// ---- Environments: responses the Worker builds ---------------------------------------------

export const RotatedAgentToken = z.object({ agentToken: z.string(), generation: z.number().int() });
export const ExecCancelResponse = z.object({ cancelled: z.boolean() });
export const RunResponse = z.object({ run: Run });
export const RunList = z.object({ runs: z.array(Run) });
/** One frame of `GET /v1/environments/{env}/events/stream`: one per event, in seq order, with no gap. */
export const EventStreamFrame = z.object({ v: z.literal(1), kind: z.literal("event"), event: EnvironmentEvent });
export type EventStreamFrame = z.infer<typeof EventStreamFrame>;

// ---- Hosts and providers -------------------------------------------------------------------

export const HostTokenBody = z.object({
  name: z.string().regex(HOST_NAME, "name must be lowercase letters, digits or '-'"),
  providers: z.array(z.string().regex(HOST_NAME)).max(64).optional(),
  ttlSeconds: z.number().int().min(60).max(TOKEN_LIFETIME.host.maxSeconds, `ttlSeconds may be at most ${TOKEN_LIFETIME.host.maxSeconds} (five years)`).optional(),
});
export type HostTokenInput = z.input<typeof HostTokenBody>;
export const HostTokenResponse = z.object({ token: z.string(), name: z.string() });

export const Host = z.object({
  name: z.string(),
  connected: z.boolean(),
  providers: z.array(ProviderOffer),
  capabilities: z.array(z.string()),
  maxEnvironments: z.number().int(),
  environments: z.number().int(),
  hostname: z.string(),
  version: z.string(),
  platform: z.string(),
  lastHelloAt: z.string(),
});
export type Host = z.infer<typeof Host>;
export const HostList = z.object({ hosts: z.array(Host) });

export const InstallProviderBody = z.object({
  id: z.string().regex(PROVIDER_NAME, "id must be lowercase letters, digits or '-'"),
  config: z.record(z.string(), z.unknown()).default({}),
});
export type InstallProviderInput = z.input<typeof InstallProviderBody>;
export const InstalledProviderResponse = z.object({ provider: z.object({ id: z.string(), config: z.record(z.string(), z.unknown()) }) });
const OfferedBy = z.array(z.object({ host: z.string(), connected: z.boolean() }));
export const ProviderList = z.object({
  providers: z.array(
    z.object({ id: z.string(), config: z.record(z.string(), z.unknown()), installedAt: z.string(), updatedAt: z.string(), offeredBy: OfferedBy }),
  ),
  offeredNotInstalled: z.array(z.object({ id: z.string(), offeredBy: OfferedBy })),
});
export type ProviderList = z.infer<typeof ProviderList>;
export const Deleted = z.object({ deleted: z.literal(true) });
