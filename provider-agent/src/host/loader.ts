/**
 * Which providers a host can run: the built-ins (`builtin:<id>` in their manifest) and external ones
 * from `--provider-dir DIR`, each a directory with `outpost-provider.yaml` and the JS module its
 * `entrypoint` names. Everything wrong is reported at once, each error naming its file and field.
 */
import { stat } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import type { ProviderManifest } from "@outpost/protocol";
import { BUILTIN_PREFIX, builtinManifestText, MANIFEST_FILE, parseManifest, readManifest } from "./manifest.js";
import { PROVIDER_METHODS, type Provider, type ProviderImpl } from "./provider.js";
import { DockerProvider } from "./providers/docker.js";
import { CloudflareContainersProvider } from "./providers/cloudflare-containers.js";
import { DaytonaProvider } from "./providers/daytona.js";
import { E2bProvider } from "./providers/e2b.js";
import { LocalProvider } from "./providers/local.js";
import { SandboxProvider } from "./providers/sandbox.js";
import { WorktreeProvider } from "./providers/worktree.js";

const BUILTINS: Record<string, new (manifest: ProviderManifest) => Provider> = {
  local: LocalProvider,
  sandbox: SandboxProvider,
  worktree: WorktreeProvider,
  docker: DockerProvider,
  e2b: E2bProvider,
  daytona: DaytonaProvider,
  "cloudflare-containers": CloudflareContainersProvider,
};
export const BUILTIN_PROVIDERS = Object.keys(BUILTINS);

export type LoadedProvider = { manifest: ProviderManifest; impl: ProviderImpl; source: string };
export type LoadResult = { ok: true; providers: LoadedProvider[] } | { ok: false; errors: string[] };

export function loadBuiltin(id: string): LoadResult {
  const Impl = BUILTINS[id];
  if (!Impl) return { ok: false, errors: [`there is no built-in provider '${id}' (built-in: ${BUILTIN_PROVIDERS.join(", ")})`] };
  const source = `builtin:${id}/${MANIFEST_FILE}`;
  const parsed = parseManifest(builtinManifestText(id), source);
  if (!parsed.ok) return parsed;
  if (parsed.manifest.id !== id || parsed.manifest.entrypoint !== `${BUILTIN_PREFIX}${id}`) {
    return { ok: false, errors: [`${source}: a built-in manifest needs id '${id}' and entrypoint '${BUILTIN_PREFIX}${id}'`] };
  }
  return { ok: true, providers: [{ manifest: parsed.manifest, impl: new Impl(parsed.manifest), source }] };
}

/** Loads the provider in `dir`: its manifest, then its entrypoint module. */
export async function loadProviderDir(dir: string): Promise<LoadResult> {
  const root = path.resolve(dir);
  const file = path.join(root, MANIFEST_FILE);
  const parsed = await readManifest(file);
  if (!parsed.ok) return parsed;
  const { manifest } = parsed;
  const entry = manifest.entrypoint;
  if (entry.startsWith(BUILTIN_PREFIX)) return { ok: false, errors: [`${file}: entrypoint: '${BUILTIN_PREFIX}' is reserved for the built-in providers; name a JS module beside the manifest`] };
  const module = path.resolve(root, entry);
  const rel = path.relative(root, module);
  if (path.isAbsolute(entry) || rel.startsWith(`..${path.sep}`) || rel === "..") {
    return { ok: false, errors: [`${file}: entrypoint: must be a path inside ${root}, relative to the manifest`] };
  }
  if (!(await stat(module).then((s) => s.isFile(), () => false))) return { ok: false, errors: [`${file}: entrypoint: ${module} does not exist`] };
  let exported: unknown;
  try {
    exported = ((await import(pathToFileURL(module).href)) as { default?: unknown }).default;
  } catch (err) {
    return { ok: false, errors: [`${module}: cannot load (${err instanceof Error ? err.message : String(err)})`] };
  }
  let impl: unknown = exported;
  if (typeof exported === "function") {
    try {
      impl = new (exported as new (m: ProviderManifest) => unknown)(manifest);
    } catch (err) {
      return { ok: false, errors: [`${module}: the default export could not be constructed (${err instanceof Error ? err.message : String(err)})`] };
    }
  }
  const missing = PROVIDER_METHODS.filter((m) => typeof (impl as Record<string, unknown> | null)?.[m] !== "function");
  if (missing.length > 0) {
    return { ok: false, errors: [`${module}: the default export must be a provider class or object with ${PROVIDER_METHODS.join(", ")} (missing: ${missing.join(", ")})`] };
  }
  return { ok: true, providers: [{ manifest, impl: impl as ProviderImpl, source: file }] };
}

/** Every built-in plus each provider directory; ids must be unique. */
export async function loadProviders(dirs: readonly string[]): Promise<LoadResult> {
  const results = [...BUILTIN_PROVIDERS.map(loadBuiltin), ...(await Promise.all(dirs.map(loadProviderDir)))];
  const errors = results.flatMap((r) => (r.ok ? [] : r.errors));
  const providers = results.flatMap((r) => (r.ok ? r.providers : []));
  const seen = new Map<string, string>();
  for (const p of providers) {
    const earlier = seen.get(p.manifest.id);
    if (earlier) errors.push(`${p.source}: id: '${p.manifest.id}' is already provided by ${earlier}`);
    seen.set(p.manifest.id, p.source);
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, providers };
}
