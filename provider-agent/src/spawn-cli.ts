/**
 * `outpost-agent spawn`: from inside an environment granted the spawn scope, create a child
 * environment (printing `{ environment, agentToken }` as JSON) or close one, through the agent's
 * local endpoint.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { FORWARD_SECRET_ENV, FORWARD_URL_ENV } from "./forward-endpoint.js";

const USAGE = `outpost-agent spawn: create or close a child of this environment, from inside it.

Usage:
  outpost-agent spawn --name NAME [--provider ID] [--capabilities a,b] [--keep]   prints { environment, agentToken }
  outpost-agent spawn --close NAME

Options:
  --name NAME            the child's name (unique in the org)
  --provider ID          its provider (a provider host that offers it creates it; otherwise start its
                         agent yourself with the agentToken printed)
  --capabilities a,b     place it on a provider host that has these capabilities
  --keep                 keep the child when this environment is stopped or archived
  --close NAME           archive a child of this environment (and everything below it)
  --endpoint-file PATH   the agent's endpoint file, when ${FORWARD_URL_ENV} and ${FORWARD_SECRET_ENV} are not set
  -h, --help             print this help

The environment needs the spawn scope (PUT /v1/environments/{env}/spawn, by an admin): outside it the
answer is 403, at its limits (maxChildren, maxDepth) 409. Exit codes: 0 done, 1 refused, 2 bad usage.
`;

export async function spawnMain(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        name: { type: "string" },
        provider: { type: "string" },
        capabilities: { type: "string" },
        keep: { type: "boolean" },
        close: { type: "string" },
        "endpoint-file": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    return usage(err instanceof Error ? err.message : String(err));
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (!values.name === !values.close) return usage("give --name to spawn a child, or --close NAME to close one");
  let endpoint = { url: env[FORWARD_URL_ENV], secret: env[FORWARD_SECRET_ENV] };
  if (values["endpoint-file"]) {
    try {
      endpoint = JSON.parse(readFileSync(values["endpoint-file"], "utf8")) as typeof endpoint;
    } catch (err) {
      return usage(`cannot read ${values["endpoint-file"]}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  if (!endpoint.url || !endpoint.secret) return usage(`no endpoint: run inside an environment served by outpost-agent (${FORWARD_URL_ENV}, ${FORWARD_SECRET_ENV}) or pass --endpoint-file`);
  const auth = { authorization: `Bearer ${endpoint.secret}` };
  const res = values.close
    ? await fetch(`${endpoint.url}/children/${encodeURIComponent(values.close)}`, { method: "DELETE", headers: auth })
    : await fetch(`${endpoint.url}/children`, {
        method: "POST",
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify({
          name: values.name,
          ...(values.provider ? { provider: values.provider } : {}),
          ...(values.capabilities ? { requires: { capabilities: values.capabilities.split(",").filter(Boolean) } } : {}),
          ...(values.keep ? { keep: true } : {}),
        }),
      });
  const text = await res.text();
  if (!res.ok) {
    let detail = text;
    try {
      detail = (JSON.parse(text) as { detail?: string }).detail ?? text;
    } catch {
      // not JSON
    }
    process.stderr.write(`outpost-agent spawn: ${res.status}: ${detail}\n`);
    return 1;
  }
  process.stdout.write(`${text.trim()}\n`);
  return 0;
}

function usage(message: string): number {
  process.stderr.write(`outpost-agent spawn: ${message}\nRun 'outpost-agent spawn --help' for usage.\n`);
  return 2;
}
