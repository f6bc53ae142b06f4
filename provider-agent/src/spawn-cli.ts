/**
 * `outpost-agent spawn`: from inside an environment granted the spawn scope, create a child
 * environment (printing `{ environment, agentToken }` as JSON) or close one, through the agent's
 * local endpoint.
 */
import { parseFlags, usageError } from "./cli-flags.js";
import { FORWARD_SECRET_ENV, FORWARD_URL_ENV } from "./forward-endpoint.js";
import { findLocalEndpoint, refusalDetail } from "./local-endpoint.js";

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
  --endpoint-file PATH   the agent's endpoint file (<state file>.endpoint.json), when ${FORWARD_URL_ENV}
                         and ${FORWARD_SECRET_ENV} are not set
  -h, --help             print this help

How: through the agent's local endpoint (127.0.0.1, its secret), which passes POST /children and
DELETE /children/{child} on to the control plane with the agent token; this command never sees the
token. The same two requests can be sent to the endpoint directly.

The environment needs the spawn scope, carried by its agent token: an admin grants it with
PUT /v1/environments/{env}/spawn, and the control plane hands the connected agent a token that
carries it. Without it, or once it is withdrawn or replaced, the answer is 403; outside its providers
or capabilities 403; at its limits 409 (children_limit: maxChildren, depth_limit: maxDepth).

Examples:
  outpost-agent spawn --name kid-1 --provider local
  outpost-agent exec --target kid-1 -- make test      # once kid-1's gateway accepts this environment
  outpost-agent spawn --close kid-1

Exit codes: 0 done, 1 refused (status and reason on stderr), 2 bad usage.
`;

export async function spawnMain(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const parsed = parseFlags(argv, {
    name: { type: "string" },
    provider: { type: "string" },
    capabilities: { type: "string" },
    keep: { type: "boolean" },
    close: { type: "string" },
    "endpoint-file": { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (!parsed.ok) return usage(parsed.error);
  const { values } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (!values.name === !values.close) return usage("give --name to spawn a child, or --close NAME to close one");
  const endpoint = findLocalEndpoint(env, values["endpoint-file"]);
  if ("error" in endpoint) return usage(endpoint.error);
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
    process.stderr.write(`outpost-agent spawn: ${res.status}: ${refusalDetail(res.status, text)}\n`);
    return 1;
  }
  process.stdout.write(`${text.trim()}\n`);
  return 0;
}

const usage = usageError("outpost-agent spawn", 2);
