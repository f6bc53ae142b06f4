/** Environments whose provider is `remote`: they stand for an environment of another Outpost deployment. */
import { REMOTE_PROVIDER, RemoteConfig } from "@outpost/protocol";
import { parseBody } from "./validate.js";

/** Checks a remote environment's config (400 naming the field); its token is secret (shown redacted). */
export function remoteSecretKeys(provider: string, config: Record<string, unknown>): string[] {
  if (provider !== REMOTE_PROVIDER) return [];
  parseBody(RemoteConfig, config, "config of a remote environment");
  return ["token"];
}
