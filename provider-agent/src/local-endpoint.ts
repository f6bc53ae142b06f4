/**
 * The client side of the agent's local endpoint, shared by `outpost-agent exec` and `spawn`: where
 * the endpoint is (the environment variables the agent sets, or its endpoint file) and the detail of
 * a refusal.
 */
import { readFileSync } from "node:fs";
import { FORWARD_SECRET_ENV, FORWARD_URL_ENV } from "./forward-endpoint.js";

export interface LocalEndpoint {
  url: string;
  secret: string;
}

/** The endpoint from `--endpoint-file` or the agent's variables; a usage message when there is none. */
export function findLocalEndpoint(env: NodeJS.ProcessEnv, file: string | undefined): LocalEndpoint | { error: string } {
  let found: Partial<LocalEndpoint> = { url: env[FORWARD_URL_ENV], secret: env[FORWARD_SECRET_ENV] };
  if (file) {
    try {
      found = JSON.parse(readFileSync(file, "utf8")) as Partial<LocalEndpoint>;
    } catch (err) {
      return { error: `cannot read ${file}: ${err instanceof Error ? err.message : String(err)}` };
    }
  }
  if (!found.url || !found.secret) {
    return { error: `no endpoint: run inside an environment served by outpost-agent (${FORWARD_URL_ENV}, ${FORWARD_SECRET_ENV}) or pass --endpoint-file` };
  }
  return { url: found.url, secret: found.secret };
}

/** The problem+json `detail` of a refusal, else its text, else its status. */
export function refusalDetail(status: number, text: string): string {
  try {
    const detail = (JSON.parse(text) as { detail?: unknown }).detail;
    if (typeof detail === "string") return detail;
  } catch {
    // not JSON
  }
  return text.trim() || `the endpoint answered ${status}`;
}
