/**
 * `npm start`: the whole of Outpost on this machine. A signing key, the agent bundle, the D1
 * migrations, the control plane under `wrangler dev`, an environment named `local` served by a
 * provider-agent in .outpost/local/workspace, then an admin token and commands to try.
 * Ctrl-C stops the agent, then wrangler, and exits 0; if either dies on its own we exit 1.
 */
import { createWriteStream, mkdirSync, readFileSync, rmSync, type WriteStream } from "node:fs";
import { join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { ensureAgentBundle, type AgentProcess } from "./lib/agent-process.js";
import { OutpostClient } from "./lib/api.js";
import { startControlPlane, type ControlPlane } from "./lib/control-plane.js";
import { DEV_VARS, ensureDevSecret, ROOT } from "./lib/dev-vars.js";
import { ensureEnvironment, startConnectedAgent, writePrivateFile } from "./lib/local-environment.js";
import { groupAlive } from "./lib/process-group.js";
import { pidAlive } from "./lib/processes.js";
import { START_OPTIONS } from "./lib/script-flags.js";
import { signUserToken } from "./lib/tokens.js";

const ENVIRONMENT = "local";
const ORG = "local";
const DEFAULT_PORT = 8787;

const HELP = `Usage: npm start [-- --port PORT]

Runs Outpost locally: the control plane (wrangler dev) on http://127.0.0.1:PORT and an
environment named '${ENVIRONMENT}' served by a provider-agent on this machine. Prints an admin
token and commands to try. Ctrl-C stops everything.

  --port PORT   port of the control plane (default: $PORT, else ${DEFAULT_PORT})
  -h, --help    this text

Environment:
  PORT          as --port
  OUTPOST_HOME  directory for local state (default: the repository): .outpost/ holds the agent
                token, the workspace, logs and profile.json; .wrangler/state holds D1 and the
                Durable Objects. The signing key is always the repository's .dev.vars, the one
                \`npm run -s token\` signs with.
`;

const { values } = (() => {
  try {
    return parseArgs({ options: START_OPTIONS });
  } catch (err) {
    process.stderr.write(`start: ${err instanceof Error ? err.message : String(err)}\n\n${HELP}`);
    process.exit(2);
  }
})();
if (values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
const port = Number(values.port ?? process.env.PORT ?? DEFAULT_PORT);
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  process.stderr.write(`start: the port must be a whole number from 1 to 65535, not '${values.port ?? process.env.PORT}'\n`);
  process.exit(2);
}

const home = resolve(process.env.OUTPOST_HOME || ROOT);
const state = join(home, ".outpost");
const paths = {
  state,
  lock: join(state, "start.json"),
  profile: join(state, "profile.json"),
  tokenFile: join(state, ENVIRONMENT, "agent-token"),
  workspace: join(state, ENVIRONMENT, "workspace"),
  logs: join(state, "logs"),
  persistTo: join(home, ".wrangler", "state"),
};
const show = (p: string) => {
  const r = relative(process.cwd(), p);
  return r && !r.startsWith("..") ? r : p;
};
const say = (line: string) => process.stdout.write(`outpost: ${line}\n`);

// ---- Shutdown: one path for Ctrl-C, a dead child and a failed start ------------------------

let controlPlane: ControlPlane | null = null;
let agent: AgentProcess | null = null;
let stopping = false;
let signals = 0;

async function shutdown(code: number): Promise<never> {
  stopping = true;
  // The agent first, so it closes its link politely; then the control plane.
  await agent?.stop("SIGTERM", 5_000).catch(() => agent?.kill());
  await controlPlane?.stop().catch((err: unknown) => {
    process.stderr.write(`outpost: ${err instanceof Error ? err.message : String(err)}\n`);
    controlPlane?.kill();
  });
  releaseLock();
  if (code === 0) say("stopped.");
  process.exit(code);
}

function onSignal(name: NodeJS.Signals): void {
  // A terminal's Ctrl-C reaches npm, tsx and us; tsx relays it too. Only a third one forces.
  if (++signals >= 3) {
    agent?.kill();
    controlPlane?.kill();
    releaseLock();
    process.exit(1);
  }
  if (stopping) return;
  say(`${name}: stopping the agent and the control plane…`);
  void shutdown(0);
}
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

function fail(message: string): Promise<never> {
  process.stderr.write(`outpost: ${message}\n`);
  return shutdown(1);
}

// ---- A lock, so that two `npm start` never share one state directory -----------------------

interface Lock {
  pid: number;
  port: number;
  wrangler?: number;
  agent?: number;
}

function readLock(): Lock | null {
  try {
    return JSON.parse(readFileSync(paths.lock, "utf8")) as Lock;
  } catch {
    return null;
  }
}

function writeLock(): void {
  const lock: Lock = { pid: process.pid, port, wrangler: controlPlane?.pid, agent: agent?.pid };
  writePrivateFile(paths.lock, `${JSON.stringify(lock)}\n`);
}

function releaseLock(): void {
  if (readLock()?.pid === process.pid) rmSync(paths.lock, { force: true });
}

function takeLock(): void {
  const lock = readLock();
  if (lock && lock.pid !== process.pid && pidAlive(lock.pid)) {
    process.stderr.write(`outpost: another npm start (pid ${lock.pid}, port ${lock.port}) is using ${show(state)}; stop it first.\n`);
    process.exit(2);
  }
  const orphans = [lock?.wrangler, lock?.agent].filter((pid): pid is number => !!pid && groupAlive(pid));
  if (orphans.length > 0) {
    say(`a previous npm start did not stop cleanly; its processes may still run: ${orphans.map((p) => `kill -- -${p}`).join("; ")}`);
  }
  writeLock();
}

// ---- Logs ----------------------------------------------------------------------------------

function logFile(name: string): { path: string; stream: WriteStream; line: (text: string) => void } {
  mkdirSync(paths.logs, { recursive: true, mode: 0o700 });
  const path = join(paths.logs, name);
  const stream = createWriteStream(path, { flags: "a", mode: 0o600 });
  stream.write(`\n---- ${new Date().toISOString()} npm start (pid ${process.pid})\n`);
  return { path, stream, line: (text) => void stream.write(`${text}\n`) };
}

// ---- Start ---------------------------------------------------------------------------------

async function main(): Promise<void> {
  mkdirSync(state, { recursive: true, mode: 0o700 });
  takeLock();

  const { secret, created } = ensureDevSecret();
  say(created ? `created a signing key in ${show(DEV_VARS)}` : `signing key: ${show(DEV_VARS)}`);

  if (await ensureAgentBundle({ onLine: (l) => process.stderr.write(`  ${l}\n`) })) say("built the agent bundle (npm run build:agent)");

  const wranglerLog = logFile("wrangler.log");
  const agentLog = logFile("agent.log");
  say(`applying D1 migrations and starting wrangler dev on port ${port} (state in ${show(paths.persistTo)}, log in ${show(wranglerLog.path)})…`);
  controlPlane = await startControlPlane({ port, persistTo: paths.persistTo, onLine: wranglerLog.line });
  writeLock();
  const cp = controlPlane;

  const admin = await signUserToken({ secret, org: ORG, role: "admin", subject: "local:npm-start" });
  const client = new OutpostClient(cp.url, admin);
  const ensured = await ensureEnvironment(client, { name: ENVIRONMENT, provider: "local", tokenFile: paths.tokenFile });
  say(`environment '${ENVIRONMENT}' ${ensured.source === "created" ? "created" : "found"}: ${ensured.environment.id}`);

  say(`starting the provider-agent (workspace ${show(paths.workspace)}, log in ${show(agentLog.path)})…`);
  agent = await startConnectedAgent({
    client,
    ensured,
    tokenFile: paths.tokenFile,
    workspace: paths.workspace,
    timeoutMs: 30_000,
    onLine: agentLog.line,
    onRotate: () => say("the stored agent token was refused; rotated it"),
  });
  writeLock();
  const running = agent;

  const profile = { url: cp.url, token: admin, environment: ensured.environment.id };
  writePrivateFile(paths.profile, `${JSON.stringify(profile, null, 2)}\n`);

  process.stdout.write(banner(cp.url, admin, ensured.environment.id));

  // From here on we only wait: for Ctrl-C, or for a child that dies on its own.
  const died = await Promise.race([
    cp.exited.then((exit) => ({ who: "wrangler (the control plane)", exit, output: cp.output() })),
    running.exited.then((exit) => ({ who: "the provider-agent", exit, output: running.output() })),
  ]);
  if (stopping) return;
  await fail(`${died.who} exited unexpectedly (${died.exit.code !== null ? `code ${died.exit.code}` : died.exit.signal}); its last output:\n${indent(died.output)}`);
}

function banner(url: string, token: string, environmentId: string): string {
  const env = `${url}/v1/environments/${ENVIRONMENT}`;
  return `
Outpost is ready at ${url}

  dashboard    ${url}/  (sign in with the admin token below)
  environment  ${ENVIRONMENT}  ${environmentId}  (running; workspace ${show(paths.workspace)})
  admin token  org ${ORG}, 30 days; also in ${show(paths.profile)}
  logs         ${show(join(paths.logs, "wrangler.log"))}, ${show(join(paths.logs, "agent.log"))}

Try it:

  export TOKEN=${token}
  curl -s -H "Authorization: Bearer $TOKEN" ${env}
  curl -s -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
       -d '{"command":["echo","hello"]}' ${env}/exec
  curl -s -X PUT -H "Authorization: Bearer $TOKEN" --data-binary 'hi there' '${env}/files?path=notes/hi.txt'
  curl -s -H "Authorization: Bearer $TOKEN" '${env}/files?path=notes/hi.txt'
  curl -s -X DELETE -H "Authorization: Bearer $TOKEN" '${env}/files?path=notes/hi.txt'
  npm run -s token -- --org ${ORG} --role viewer     # another token (admin | operator | viewer)

Press Ctrl-C to stop.
`;
}

const indent = (text: string) =>
  text
    .split("\n")
    .slice(-40)
    .map((l) => `  ${l}`)
    .join("\n");

main().catch((err: unknown) => {
  if (stopping) return;
  void fail(err instanceof Error ? err.message : String(err));
});
