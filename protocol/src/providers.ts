/**
 * Providers: what a provider declares (its manifest, `outpost-provider.yaml`), how its config is
 * merged (provider defaults → the org's installed config → the environment's config), and the
 * frames between a provider host (`outpost-agent host`) and the control plane.
 */
import * as z from "zod";
import { ErrorInfo } from "./errors.js";

export const PROVIDER_CATEGORIES = ["local", "docker", "cloud", "hybrid"] as const;

/** One config field a provider accepts. */
export const ConfigField = z.object({
  type: z.enum(["string", "number", "boolean", "string[]"]),
  description: z.string().max(1024).optional(),
  default: z.union([z.string(), z.number(), z.boolean(), z.array(z.string())]).optional(),
  required: z.boolean().optional(),
  /** Secret values are passed to the provider but shown redacted everywhere else. */
  secret: z.boolean().optional(),
});
export type ConfigField = z.infer<typeof ConfigField>;
export const ConfigSchema = z.record(z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,63}$/, "config keys are identifiers"), ConfigField);
export type ConfigSchema = z.infer<typeof ConfigSchema>;

export const ProviderManifest = z.object({
  name: z.string().min(1).max(128),
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "id must be lowercase letters, digits or '-'"),
  version: z.string().regex(/^\d+\.\d+\.\d+([-+].*)?$/, "version must be semver, e.g. 1.0.0"),
  runtime: z.enum(["node"]),
  /** Module that exports the provider class, relative to the manifest (built-in providers: "builtin:<id>"). */
  entrypoint: z.string().min(1).max(1024),
  category: z.enum(PROVIDER_CATEGORIES),
  capabilities: z.array(z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/)).max(64).default([]),
  config: ConfigSchema.default({}),
});
export type ProviderManifest = z.infer<typeof ProviderManifest>;

/** Validation errors as "field: message" lines, each naming the field in the manifest. */
export function manifestErrors(input: unknown): string[] {
  const r = ProviderManifest.safeParse(input);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.map(String).join(".") || "(root)"}: ${i.message}`);
}

export type ConfigValue = string | number | boolean | string[];
export type MergeResult = { ok: true; config: Record<string, ConfigValue> } | { ok: false; errors: string[] };

/**
 * Merges layers in order of precedence (later wins) over the schema's defaults, and checks each
 * value against its field: unknown keys, wrong types and missing required fields are errors that
 * name the layer and the field.
 */
export function mergeConfig(schema: ConfigSchema, layers: Array<{ name: string; values: Record<string, unknown> | undefined }>): MergeResult {
  const config: Record<string, ConfigValue> = {};
  const errors: string[] = [];
  for (const [key, field] of Object.entries(schema)) if (field.default !== undefined) config[key] = field.default;
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer.values ?? {})) {
      const field = schema[key];
      if (!field) {
        errors.push(`${layer.name}.${key}: not a config field of this provider (known: ${Object.keys(schema).join(", ") || "none"})`);
        continue;
      }
      if (!matches(field, value)) {
        errors.push(`${layer.name}.${key}: expected ${field.type}, got ${Array.isArray(value) ? "array" : typeof value}`);
        continue;
      }
      config[key] = value as ConfigValue;
    }
  }
  for (const [key, field] of Object.entries(schema)) if (field.required && config[key] === undefined) errors.push(`${key}: required`);
  return errors.length ? { ok: false, errors } : { ok: true, config };
}

function matches(field: ConfigField, value: unknown): boolean {
  if (field.type === "string[]") return Array.isArray(value) && value.every((v) => typeof v === "string");
  return typeof value === field.type;
}

/** The config as shown to people: secret fields replaced. */
export function redactConfig(schema: ConfigSchema, config: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) out[k] = schema[k]?.secret && v !== undefined && v !== "" ? "[redacted]" : v;
  return out;
}

// ---- The host link: `outpost-agent host` ↔ the org's host registry ---------------------------

const Id = z.string().min(1).max(128);
const base = { v: z.literal(1) };

/** What a host offers for one provider. */
export const ProviderOffer = z.object({
  id: z.string(),
  name: z.string(),
  version: z.string(),
  category: z.enum(PROVIDER_CATEGORIES),
  capabilities: z.array(z.string()),
  config: ConfigSchema,
});
export type ProviderOffer = z.infer<typeof ProviderOffer>;

/** A resource the host manages, reported so the control plane can reconcile (and clean orphans). */
export const HostResource = z.object({ environmentId: Id, provider: z.string(), resourceId: z.string().max(512) });
export type HostResource = z.infer<typeof HostResource>;

export const HostHello = z.object({
  ...base,
  kind: z.literal("host.hello"),
  protocol: z.string().max(16),
  host: z.object({ name: z.string().min(1).max(128), hostname: z.string().max(255), version: z.string().max(64), platform: z.string().max(64) }),
  providers: z.array(ProviderOffer).max(64),
  capabilities: z.array(z.string().max(64)).max(64),
  capacity: z.object({ maxEnvironments: z.number().int().positive() }),
  resources: z.array(HostResource).max(10_000),
});
export type HostHello = z.infer<typeof HostHello>;

export const HostWelcome = z.object({ ...base, kind: z.literal("host.welcome"), hostName: z.string(), heartbeatMs: z.number().int().positive() });

/** env.create: set up the environment and start an agent in it that dials `url` with `agentToken`. */
export const EnvCreateParams = z.object({
  environmentId: Id,
  provider: z.string(),
  config: z.record(z.string(), z.unknown()),
  agentToken: z.string(),
  url: z.string(),
});
/** env.recover: bring back the environment from its persisted resource id (or say it is gone). */
export const EnvRecoverParams = EnvCreateParams.extend({ resourceId: z.string() });
/** env.teardown: remove everything the environment left on the host. */
export const EnvTeardownParams = z.object({ environmentId: Id, provider: z.string(), resourceId: z.string().nullable() });

export const HostOps = {
  "env.create": { params: EnvCreateParams, result: z.object({ resourceId: z.string() }) },
  "env.recover": { params: EnvRecoverParams, result: z.object({ resourceId: z.string(), recovered: z.boolean() }) },
  "env.teardown": { params: EnvTeardownParams, result: z.object({ removed: z.boolean() }) },
} as const;
export type HostOpName = keyof typeof HostOps;
export const HostOpName = z.enum(Object.keys(HostOps) as [HostOpName, ...HostOpName[]]);

export const HostRequest = z.object({ ...base, kind: z.literal("host.request"), id: Id, op: HostOpName, params: z.unknown(), timeoutMs: z.number().int().positive() });
export const HostReply = z.discriminatedUnion("ok", [
  z.object({ ...base, kind: z.literal("host.reply"), re: Id, ok: z.literal(true), result: z.unknown() }),
  z.object({ ...base, kind: z.literal("host.reply"), re: Id, ok: z.literal(false), error: ErrorInfo }),
]);
/** host → edge: its current load and resources, whenever they change. */
export const HostStatus = z.object({ ...base, kind: z.literal("host.status"), environments: z.number().int().nonnegative(), resources: z.array(HostResource).max(10_000) });

export const HostFrame = z.union([HostHello, HostReply, HostStatus]);
export const RegistryFrame = z.union([HostWelcome, HostRequest]);
export type HostFrame = z.infer<typeof HostFrame>;
export type RegistryFrame = z.infer<typeof RegistryFrame>;
