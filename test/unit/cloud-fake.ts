/** The cloud providers' unit tests: the scriptable fake service (scripts/lib/fakes/service.ts), a recording logger, and a provider as the host runs it. */
import path from "node:path";
import { HostedProvider } from "../../provider-agent/src/host/hosted.js";
import type { ProviderManifest } from "@outpost/protocol";
import { builtinManifestText, parseManifest } from "../../provider-agent/src/host/manifest.js";
import type { Provider } from "../../provider-agent/src/host/provider.js";
import type { Logger } from "../../provider-agent/src/log.js";

export { FakeService, json, type Call, type Route } from "../../scripts/lib/fakes/service.js";

/** A logger that keeps every line, to prove no secret is logged. */
export function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const keep = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
  return { lines, info: keep, warn: keep, error: keep, debug: keep };
}

/**
 * A cloud provider from its manifest in provider-agent/providers/<id>/, with the host's mechanics
 * around it (config validation, runtime directory).
 */
export function hostedCloud(id: string, Impl: new (manifest: ProviderManifest) => Provider, base: string, log: Logger): HostedProvider {
  const parsed = parseManifest(builtinManifestText(id), `${id}/outpost-provider.yaml`);
  if (!parsed.ok) throw new Error(parsed.errors.join("\n"));
  return new HostedProvider(parsed.manifest, new Impl(parsed.manifest), {
    root: path.join(base, "root"),
    runtimeRoot: path.join(base, "state", "host-box-1"),
    agentCommand: ["/bin/false"],
    log,
    agentStopGraceMs: 1_000,
  });
}
