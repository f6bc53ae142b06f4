/**
 * The contract between the `cloudflare-containers` provider (provider-agent/src/host/providers/
 * cloudflare-containers.ts) and its companion Worker (index.ts beside this file), in one place:
 * the companion, the provider and the local fake (scripts/lib/fakes/cloudflare-containers.ts) all
 * import it, so their rules cannot drift apart. Plain TypeScript: no Worker or Node API.
 */

/** A container's name: 1 to 63 of [a-z0-9-]. */
export const CONTAINER_NAME = /^[a-z0-9-]{1,63}$/;
export const CONTAINER_NAME_RULE = "the container name must be 1 to 63 of [a-z0-9-]";
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
export const MAX_ENV_VARS = 64;
/** The PUT body's limit, in bytes (UTF-8), not characters. */
export const MAX_BODY_BYTES = 64 * 1024;

/** The PUT body's `env` (the raw bytes: the limit is in bytes), checked; or why it was refused. */
export function containerEnv(body: Uint8Array): Record<string, string> | string {
  if (body.byteLength > MAX_BODY_BYTES) return `the body is larger than ${MAX_BODY_BYTES} bytes`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(body));
  } catch {
    return "the body must be JSON: { env: { NAME: value } }";
  }
  const vars = (parsed as { env?: unknown } | null)?.env;
  if (typeof vars !== "object" || vars === null || Array.isArray(vars)) return "env must be an object of strings";
  const entries = Object.entries(vars);
  if (entries.length > MAX_ENV_VARS) return `at most ${MAX_ENV_VARS} environment variables`;
  for (const [key, value] of entries) {
    if (!ENV_NAME.test(key)) return `env: '${key.slice(0, 64)}' is not a variable name`;
    if (typeof value !== "string" || value.includes("\0")) return `env.${key} must be a string without NUL`;
  }
  return Object.fromEntries(entries) as Record<string, string>;
}
