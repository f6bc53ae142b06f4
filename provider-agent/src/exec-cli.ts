/**
 * `outpost-agent exec`: from inside an environment, run a command in another one through the
 * agent's local forward endpoint. Output streams to this process's stdout and stderr; the exit
 * code is the remote command's. Ctrl-C (SIGINT) or SIGTERM cancels it at every hop.
 */
import { parseFlags, usageError } from "./cli-flags.js";
import { FORWARD_SECRET_ENV, FORWARD_URL_ENV } from "./forward-endpoint.js";
import { findLocalEndpoint, refusalDetail } from "./local-endpoint.js";

/** Exit codes of `outpost-agent exec` besides the remote command's own. */
export const EXEC_EXIT = { usage: 2, refused: 125 } as const;

const USAGE = `outpost-agent exec: run a command in another environment, from inside this one.

Usage:
  outpost-agent exec [--target ENV | --route ENV,ENV,... | --targets ENV,ENV,...] [options] -- COMMAND [ARG...]
  outpost-agent exec [--target ENV | ...] --type TYPE --payload JSON

Where it runs (an environment id or name, or capability:NAME for any environment that offers it):
  --target ENV         one environment (its own rules may send the work further)
  --route A,B,C        a linear chain: through A and B, run in C
  --targets A,B,C      fan-out: run in each; output lines are prefixed with [ENV]
  (none)               this environment's routing rules decide
Options:
  --type TYPE          the request type the rules match (default exec; e.g. inference:generate)
  --payload JSON       instead of a command: input for the destination's handler of --type (a custom type);
                       the handler's own cwd and timeout apply (its gateway's handlers), so --cwd and
                       --timeout-ms are refused with it
  --cwd DIR            working directory of the command, relative to the target's workspace
  --timeout-ms MS      the command's deadline
  --endpoint-file PATH the agent's endpoint file, when ${FORWARD_URL_ENV} and ${FORWARD_SECRET_ENV} are not set
  -h, --help           print this help

The target's gateway must accept work from this environment (PUT /v1/environments/{env}/gateway).
Exit code: the command's (fan-out: 0 when every target exited 0, else 1); ${EXEC_EXIT.refused} when the
request was refused or a hop failed (the message names the hop); ${EXEC_EXIT.usage} on bad usage.
`;

type Target = string | { capability: string };
const target = (s: string): Target => (s.startsWith("capability:") ? { capability: s.slice("capability:".length) } : s);
const list = (s: string) => s.split(",").map((x) => x.trim()).filter(Boolean).map(target);

export async function execMain(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const dash = argv.indexOf("--");
  const flags = dash >= 0 ? argv.slice(0, dash) : argv;
  const command = dash >= 0 ? argv.slice(dash + 1) : [];
  const parsed = parseFlags(flags, {
    target: { type: "string" },
    route: { type: "string" },
    targets: { type: "string" },
    type: { type: "string" },
    payload: { type: "string" },
    cwd: { type: "string" },
    "timeout-ms": { type: "string" },
    "endpoint-file": { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (!parsed.ok) return usage(parsed.error);
  const { values } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  let payload: unknown;
  if (values.payload !== undefined) {
    if (command.length > 0) return usage("give either --payload or a command after --, not both");
    if (!values.type) return usage("--payload needs --type (the custom request type whose handler takes it)");
    const commandOnly = (["cwd", "timeout-ms"] as const).filter((k) => values[k] !== undefined);
    if (commandOnly.length > 0) {
      return usage(`${commandOnly.map((k) => `--${k}`).join(" and ")} apply to a command after --, not to --payload: the destination's handler for --type runs with the cwd and timeout its gateway gives it`);
    }
    try {
      payload = JSON.parse(values.payload);
    } catch {
      return usage("--payload must be JSON");
    }
  } else if (command.length === 0) return usage("give the command after --");
  if ([values.target, values.route, values.targets].filter((v) => v !== undefined).length > 1) return usage("give at most one of --target, --route, --targets");
  const endpoint = findLocalEndpoint(env, values["endpoint-file"]);
  if ("error" in endpoint) return usage(endpoint.error);
  const timeoutMs = values["timeout-ms"] !== undefined ? Number(values["timeout-ms"]) : undefined;
  if (timeoutMs !== undefined && (!Number.isInteger(timeoutMs) || timeoutMs <= 0)) return usage("--timeout-ms must be a positive whole number");
  const body = {
    ...(values.payload !== undefined ? { payload } : { exec: { command, ...(values.cwd ? { cwd: values.cwd } : {}), ...(timeoutMs ? { timeoutMs } : {}) } }),
    ...(values.type ? { type: values.type } : {}),
    ...(values.target ? { target: target(values.target) } : {}),
    ...(values.route ? { route: list(values.route) } : {}),
    ...(values.targets ? { targets: list(values.targets) } : {}),
  };
  const auth = { authorization: `Bearer ${endpoint.secret}` };
  const res = await fetch(`${endpoint.url}/forward`, { method: "POST", headers: { ...auth, "content-type": "application/json", accept: "application/x-ndjson" }, body: JSON.stringify(body) });
  if (!res.ok || !res.body) {
    process.stderr.write(`outpost-agent exec: ${refusalDetail(res.status, await res.text())}\n`);
    return EXEC_EXIT.refused;
  }
  let forwardId: string | null = null;
  let cancelling = false;
  const onSignal = () => {
    if (cancelling || !forwardId) return;
    cancelling = true;
    void fetch(`${endpoint.url}/forward/${forwardId}/cancel`, { method: "POST", headers: auth }).catch(() => undefined);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const fanOut = body.targets !== undefined;
  let code: number = EXEC_EXIT.refused;
  for await (const line of lines(res.body)) {
    const tag = fanOut && typeof line.target === "string" ? `[${line.target}] ` : "";
    switch (line.type) {
      case "started":
        forwardId = String(line.forwardId);
        break;
      case "stdout":
      case "stderr":
        (line.type === "stdout" ? process.stdout : process.stderr).write(tag ? prefixLines(tag, String(line.data)) : String(line.data));
        break;
      case "exit":
        if (!fanOut) code = typeof line.exitCode === "number" ? line.exitCode : 128 + 15;
        break;
      case "error":
        process.stderr.write(`outpost-agent exec: ${tag}${String(line.message)}${line.hop ? ` (hop: ${String(line.hop)})` : ""}\n`);
        if (!fanOut) code = EXEC_EXIT.refused;
        break;
      case "done":
        code = (line.results as Array<{ ok: boolean }>).every((r) => r.ok) ? 0 : 1;
        break;
    }
  }
  return code;
}

const usage = usageError("outpost-agent exec", EXEC_EXIT.usage);

function prefixLines(tag: string, text: string): string {
  return text.replace(/^(?=.)/gm, tag);
}

async function* lines(body: ReadableStream<Uint8Array>): AsyncGenerator<Record<string, unknown>> {
  const decoder = new TextDecoder();
  let buffered = "";
  for await (const part of body as unknown as AsyncIterable<Uint8Array>) {
    buffered += decoder.decode(part, { stream: true });
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (line) yield JSON.parse(line) as Record<string, unknown>;
    }
  }
  if (buffered.trim()) yield JSON.parse(buffered) as Record<string, unknown>;
}
