/** `outpost-agent`: flags and environment in, a running link out. Exit codes are part of the interface. */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { CLOSE } from "@outpost/protocol";
import { Agent, helloFrame } from "./agent.js";
import { COMMON_FLAGS, logLevel, parseFlags, positiveInteger, usageError } from "./cli-flags.js";
import { realClock } from "./clock.js";
import { connectEndpoint } from "./endpoint.js";
import { FORWARD_SECRET_ENV, FORWARD_URL_ENV, startForwardEndpoint } from "./forward-endpoint.js";
import { Link, DEFAULT_HEARTBEAT_MS } from "./link.js";
import { createLogger, type LogLevel } from "./log.js";
import { DEFAULT_HEALTH_INTERVAL_MS, startHealthReports } from "./services/health.js";
import { OUTBOX_DEFAULTS } from "./outbox.js";
import { Spool } from "./spool.js";
import { reapLeftoverGroups } from "./process-groups.js";
import { defaultStatePath, insideWorkspace, loadState, StateStore } from "./state.js";
import { AGENT_VERSION } from "./version.js";

export const EXIT = { ok: 0, internal: 1, usage: 2, rejected: 3 } as const;
/** On SIGTERM, SIGINT or a shutdown request: how long in-flight replies may take to be acknowledged. */
export const SHUTDOWN_GRACE_MS = 5_000;
const MiB = 1024 * 1024;

const USAGE = `outpost-agent ${AGENT_VERSION}: serves one Outpost environment (exec and files in a workspace),
dialing out to the Outpost control plane over a WebSocket.

Usage:
  outpost-agent --url URL --token TOKEN --workspace DIR [options]
  outpost-agent host --url URL --token HOST_TOKEN [options]   a provider host; see 'outpost-agent host --help'
  outpost-agent exec --target ENV -- COMMAND [ARG...]          from inside an environment: run a command in
                                                               another one; see 'outpost-agent exec --help'
  outpost-agent spawn --name NAME [--provider ID]              from inside an environment granted the spawn
                                                               scope: create (or --close) a child environment;
                                                               see 'outpost-agent spawn --help'

Options:
  --url URL            control plane base URL (http, https, ws or wss)      env: OUTPOST_URL
  --token TOKEN        the environment's agent token (a JWT)                env: OUTPOST_AGENT_TOKEN
  --workspace DIR      directory the agent serves; created if missing       env: OUTPOST_WORKSPACE
  --resource-id ID     the provider's id for what the agent runs in (container id,
                       worktree path, ...), reported to the control plane   env: OUTPOST_RESOURCE_ID
  --state-file PATH    where the link's progress survives restarts (default
                       $XDG_STATE_HOME/outpost-agent/<environment id>.json, or
                       ~/.local/state/outpost-agent/<environment id>.json); must be
                       outside the workspace; snapshots (the workspace's shadow git
                       repository) live beside it in <state file>.snapshots/
                                                                            env: OUTPOST_STATE_FILE
  --spool-dir DIR      spill unacknowledged frames beyond ${OUTBOX_DEFAULTS.maxBytes / MiB} MiB or ${OUTBOX_DEFAULTS.maxCount} frames to a
                       file in DIR instead of making producers wait while the link is down;
                       must be outside the workspace                        env: OUTPOST_SPOOL_DIR
  --heartbeat-ms MS    ping interval until the control plane sets one (default ${DEFAULT_HEARTBEAT_MS})
  --health-interval-ms MS
                       how often to report cpu, memory, disk and processes (default
                       ${DEFAULT_HEALTH_INTERVAL_MS}); each report wakes the environment's object  env: OUTPOST_HEALTH_INTERVAL_MS
  --log-level LEVEL    info or debug (default info); logs go to stderr
  -h, --help           print this help
  -v, --version        print the version

Prefer OUTPOST_AGENT_TOKEN over --token: command lines are visible to other processes.

Forwarding (execution chaining): the agent listens on 127.0.0.1 (a random port) for programs in the
environment that forward work to other environments (outpost-agent exec, or POST /forward with the
body of the control plane's forward API), and that spawn or close children when the environment
holds the spawn scope (outpost-agent spawn, or POST /children, DELETE /children/{child}). Commands it
runs find it in ${FORWARD_URL_ENV} and ${FORWARD_SECRET_ENV}; other programs read
<state file>.endpoint.json (mode 0600). The agent token stays in the agent; when the control plane
renews it (a changed spawn scope, token.renew) the endpoint uses the new one, and so does the next
connection.

Nothing is lost when the link drops: replies and streamed output are kept until the control plane
acknowledges them and are sent again after reconnecting. On SIGINT or SIGTERM the agent refuses new
requests, cancels what runs (each still gets its reply), waits up to ${SHUTDOWN_GRACE_MS / 1000} s for the control plane
to acknowledge everything, closes the link and exits; a second signal exits at once.

Examples:
  OUTPOST_AGENT_TOKEN=eyJ... outpost-agent --url https://outpost.example.com --workspace /workspace
  outpost-agent --url http://127.0.0.1:8787 --token "$TOKEN" --workspace ./ws --log-level debug

Exit codes:
  0  stopped by SIGINT or SIGTERM, by a shutdown request, or by the control plane stopping the
     environment (close code 4005)
  1  unexpected internal error
  2  bad usage or configuration (missing flag, malformed token or URL, unusable workspace,
     state file or spool directory inside the workspace or not writable)
  3  refused by the control plane (bad or revoked token, environment archived or unknown,
     protocol version mismatch, replaced by a newer agent with the same token); retrying with the
     same token will not help
`;

const fail = usageError("outpost-agent", EXIT.usage);

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const parsed = parseFlags(argv, {
    ...COMMON_FLAGS,
    workspace: { type: "string" },
    "health-interval-ms": { type: "string" },
    "resource-id": { type: "string" },
    "state-file": { type: "string" },
    "spool-dir": { type: "string" },
    version: { type: "boolean", short: "v" },
  });
  if (!parsed.ok) return fail(parsed.error);
  const { values } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return EXIT.ok;
  }
  if (values.version) {
    process.stdout.write(`${AGENT_VERSION}\n`);
    return EXIT.ok;
  }
  const url = values.url ?? env.OUTPOST_URL;
  const token = values.token ?? env.OUTPOST_AGENT_TOKEN;
  const workspaceArg = values.workspace ?? env.OUTPOST_WORKSPACE;
  if (!url) return fail("missing --url (or OUTPOST_URL)");
  if (!token) return fail("missing --token (or OUTPOST_AGENT_TOKEN)");
  if (!workspaceArg) return fail("missing --workspace (or OUTPOST_WORKSPACE)");
  const heartbeatMs = positiveInteger(values["heartbeat-ms"], DEFAULT_HEARTBEAT_MS);
  if (heartbeatMs === null) return fail("--heartbeat-ms must be a positive whole number of milliseconds");
  const healthIntervalMs = positiveInteger(values["health-interval-ms"] ?? process.env.OUTPOST_HEALTH_INTERVAL_MS, DEFAULT_HEALTH_INTERVAL_MS);
  if (healthIntervalMs === null) return fail("--health-interval-ms must be a positive whole number of milliseconds");
  const level = logLevel(values["log-level"]);
  if (level === null) return fail("--log-level must be info or debug");
  const endpoint = connectEndpoint(url, token);
  if (!endpoint.ok) return fail(endpoint.error);
  const resourceId = values["resource-id"] ?? env.OUTPOST_RESOURCE_ID;
  if (resourceId !== undefined && (resourceId.length === 0 || resourceId.length > 512)) return fail("--resource-id must be 1 to 512 characters");
  const workspace = path.resolve(workspaceArg);
  try {
    await mkdir(workspace, { recursive: true });
  } catch (err) {
    return fail(`cannot create the workspace ${workspace}: ${err instanceof Error ? err.message : String(err)}`);
  }
  // The workspace belongs to the commands the agent runs: they must not be able to rewrite the link's state.
  const stateFile = path.resolve(values["state-file"] ?? env.OUTPOST_STATE_FILE ?? defaultStatePath(endpoint.environmentId, env));
  if (insideWorkspace(stateFile, workspace)) return fail(`the state file ${stateFile} is inside the workspace ${workspace}; choose one outside it with --state-file`);
  const spoolArg = values["spool-dir"] ?? env.OUTPOST_SPOOL_DIR;
  const spoolDir = spoolArg ? path.resolve(spoolArg) : null;
  if (spoolDir) {
    if (insideWorkspace(spoolDir, workspace)) return fail(`the spool directory ${spoolDir} is inside the workspace ${workspace}; choose one outside it`);
    try {
      await mkdir(spoolDir, { recursive: true, mode: 0o700 });
    } catch (err) {
      return fail(`cannot create the spool directory ${spoolDir}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  // Commands the agent runs inherit its environment; its credential must not be part of it.
  delete process.env.OUTPOST_AGENT_TOKEN;
  return run({ url: endpoint.url, controlUrl: url, environmentId: endpoint.environmentId, token, workspace, heartbeatMs, healthIntervalMs, level, stateFile, spoolDir, resourceId });
}

type Config = {
  url: string;
  /** The control plane's base URL as given (the forward endpoint calls its HTTP API). */
  controlUrl: string;
  environmentId: string;
  token: string;
  workspace: string;
  heartbeatMs: number;
  healthIntervalMs: number;
  level: LogLevel;
  stateFile: string;
  spoolDir: string | null;
  resourceId: string | undefined;
};

async function run(config: Config): Promise<number> {
  const secrets = [config.token];
  const log = createLogger(config.level, secrets);
  const clock = realClock();
  const saved = loadState(config.stateFile, config.environmentId, log);
  const resourceId = config.resourceId ?? saved.resourceId;
  const state = new StateStore(config.stateFile, { ...saved, ...(resourceId ? { resourceId } : {}) }, clock, log);
  try {
    state.init();
  } catch (err) {
    return fail(`cannot write the state file ${config.stateFile}: ${errorText(err)}`);
  }
  // Commands a previous agent process started and left running when it was killed (SIGKILL runs no exit hook).
  reapLeftoverGroups(`${config.stateFile}.groups.json`, log);
  let spool: Spool | null = null;
  try {
    if (config.spoolDir) spool = new Spool(config.spoolDir);
  } catch (err) {
    return fail(`cannot create a spool file in ${config.spoolDir}: ${errorText(err)}`);
  }
  let forward;
  try {
    forward = await startForwardEndpoint({ controlUrl: config.controlUrl, environmentId: config.environmentId, token: config.token, log, endpointFile: `${config.stateFile}.endpoint.json` });
  } catch (err) {
    return fail(`cannot start the forward endpoint: ${errorText(err)}`);
  }
  process.env[FORWARD_URL_ENV] = forward.url;
  process.env[FORWARD_SECRET_ENV] = forward.secret;
  log.info(`outpost-agent ${AGENT_VERSION} serving ${config.workspace} (state ${config.stateFile}: recv ${saved.recv}, last seq ${saved.lastSeq})`);
  let agent: Agent | null = null;
  const link = new Link({
    url: config.url,
    token: config.token,
    // Asked on every connection: the runs this process started, so the edge can tell which survived.
    hello: () => helloFrame(AGENT_VERSION, config.workspace, { resourceId, runs: agent?.runReports() ?? [] }),
    heartbeatMs: config.heartbeatMs,
    log,
    clock,
    onFrame: (frame) => agent?.handle(frame),
    recv: saved.recv,
    lastSeq: saved.lastSeq,
    outbox: { spool },
    reserveSeq: (ceiling) => state.reserve(ceiling),
    onProgress: (progress) => state.update(progress),
  });
  // Snapshots (the shadow repository) live beside the state file, outside the workspace.
  const snapshotDir = `${config.stateFile.replace(/\.json$/, "")}.snapshots`;
  // A renewed token (same generation, a changed spawn scope) is what the local endpoint passes on,
  // and what the link dials with from then on: a reconnect shows the edge the grant this agent holds,
  // so it is not handed the same token again on every connect.
  const onToken = (token: string) => {
    secrets.push(token);
    forward.setToken(token);
    link.setToken(token);
  };
  const theAgent = new Agent({ workspace: config.workspace, out: link, log, clock, snapshotDir, stateDir: path.dirname(config.stateFile), spoolDir: config.spoolDir ?? undefined, onShutdown: () => void stopGracefully(), onToken });
  agent = theAgent;
  // A workspace without git gets its diff base now, before commands change it.
  theAgent.diffs.prepare().catch((err: unknown) => log.warn(`cannot record the diff base: ${errorText(err)}`));
  const health = startHealthReports({ workspace: config.workspace, out: link, clock, log, intervalMs: config.healthIntervalMs });

  // Refuse new work, cancel the rest (each request still gets its reply), let the edge acknowledge
  // every reply, then close with 1000. Bounded: a link that is down does not hold the exit up.
  let stopping: Promise<unknown> | null = null;
  const stopGracefully = () =>
    (stopping ??= (async () => {
      const until = clock.now() + SHUTDOWN_GRACE_MS;
      health.stop();
      await within(Promise.all([theAgent.shutdown(), theAgent.idle()]), until - clock.now());
      if (!(await link.drained(Math.max(0, until - clock.now())))) {
        log.warn(`${link.unacknowledged} frame(s) not acknowledged by the control plane; exiting anyway`);
      }
      await link.stop(CLOSE.normal, "agent shutting down");
    })());
  const persist = () => state.close({ recv: link.recv, lastSeq: link.lastSeq });
  let signals = 0;
  const onSignal = (name: NodeJS.Signals) => {
    if (++signals > 1) {
      persist();
      process.exit(EXIT.ok);
    }
    log.info(`${name} received; finishing in-flight requests and closing the link`);
    void stopGracefully();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  link.start();
  const end = await link.done;
  // Whatever ended the link, no process the agent started may outlive it.
  health.stop();
  await within(Promise.all([theAgent.shutdown(), theAgent.idle()]), 2_000);
  await within(forward.close(), 1_000);
  persist();
  if (end.kind === "stopped" || end.code === CLOSE.stopped) return EXIT.ok;
  return EXIT.rejected;
}

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** Waits for `work`, but no longer than `ms`. */
function within(work: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, Math.max(0, ms));
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    work.then(done, done);
  });
}

/**
 * The sub-commands are loaded only when asked for: an environment's agent never runs host mode
 * (its providers, yaml) nor exec/spawn, and code that is never loaded costs its idle process nothing
 * (the bundle stays one file: esbuild wraps these modules in functions run on first import).
 */
const SUBCOMMANDS: Record<string, () => Promise<(argv: string[], env: NodeJS.ProcessEnv) => Promise<number>>> = {
  host: async () => (await import("./host/cli.js")).hostMain,
  exec: async () => (await import("./exec-cli.js")).execMain,
  spawn: async () => (await import("./spawn-cli.js")).spawnMain,
};

const args = process.argv.slice(2);
const subcommand = args[0] === undefined ? undefined : SUBCOMMANDS[args[0]];
(subcommand ? subcommand().then((run) => run(args.slice(1), process.env)) : main(args, process.env)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${new Date().toISOString()} error outpost-agent crashed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(EXIT.internal);
  },
);
