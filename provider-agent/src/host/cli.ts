/** `outpost-agent host`: flags and environment in, a provider host serving its org's registry out. */
import { mkdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { CLOSE } from "@outpost/protocol";
import { COMMON_FLAGS, logLevel, parseFlags, positiveInteger, usageError } from "../cli-flags.js";
import { realClock } from "../clock.js";
import { hostClaims, socketUrl } from "../endpoint.js";
import { DEFAULT_HEARTBEAT_MS } from "../link.js";
import { createLogger } from "../log.js";
import { insideWorkspace } from "../state.js";
import { AGENT_VERSION } from "../version.js";
import { defaultAgentCommand } from "./agent-process.js";
import { Host } from "./host.js";
import { HostLink } from "./host-link.js";
import { defaultHostStatePath, HostState, HostStateError, runtimeRootFor } from "./host-state.js";
import { HostedProvider } from "./hosted.js";
import { BUILTIN_PROVIDERS, loadProviders, type LoadedProvider } from "./loader.js";

export const HOST_EXIT = { ok: 0, internal: 1, usage: 2, rejected: 3 } as const;
export const DEFAULT_MAX_ENVIRONMENTS = 16;
/** On SIGTERM or SIGINT: how long operations under way may take to finish and be answered. */
export const HOST_SHUTDOWN_GRACE_MS = 30_000;
export const CAPABILITY = /^[a-z0-9][a-z0-9-]{0,31}$/;

/** Every flag `outpost-agent host` takes (docs/teams.md's commands are checked against these). */
export const HOST_FLAGS = {
  ...COMMON_FLAGS,
  providers: { type: "string" },
  "provider-dir": { type: "string", multiple: true },
  capabilities: { type: "string" },
  "max-environments": { type: "string" },
  root: { type: "string" },
  "state-file": { type: "string" },
} as const;

const USAGE = `outpost-agent host ${AGENT_VERSION}: a provider host. It dials out to the Outpost control plane,
offers providers (ways to create environments on this machine), and creates, recovers and tears down
environments when the control plane asks, starting an outpost-agent inside each.

Usage:
  outpost-agent host --url URL --token HOST_TOKEN [options]

Options:
  --url URL                control plane base URL (http, https, ws or wss)         env: OUTPOST_URL
  --token TOKEN            the host token (a JWT, audience outpost:host); its sub is
                           the host's name                                          env: OUTPOST_HOST_TOKEN
  --providers IDS          comma-separated providers to offer (default: every loaded
                           one; built-in: ${BUILTIN_PROVIDERS.join(", ")})                  env: OUTPOST_PROVIDERS
  --provider-dir DIR       load an external provider from DIR (its outpost-provider.yaml
                           and the JS module its entrypoint names); repeatable       env: OUTPOST_PROVIDER_DIRS (':'-separated)
  --capabilities LIST      comma-separated capabilities of this machine (python, gpu, ...);
                           the offered providers' capabilities are added            env: OUTPOST_CAPABILITIES
  --max-environments N     how many environments this host runs at most (default ${DEFAULT_MAX_ENVIRONMENTS})
                                                                                    env: OUTPOST_MAX_ENVIRONMENTS
  --root DIR               where environment directories and worktrees go (default
                           $XDG_DATA_HOME/outpost/environments, or
                           ~/.local/share/outpost/environments)                     env: OUTPOST_ROOT
  --state-file PATH        the resources this host manages (default
                           $XDG_STATE_HOME/outpost-agent/host-<name>.json, or
                           ~/.local/state/outpost-agent/host-<name>.json); each
                           environment's agent keeps its state and log beside it,
                           in host-<name>/<environment id>/                         env: OUTPOST_HOST_STATE_FILE
  --heartbeat-ms MS        ping interval until the control plane sets one (default ${DEFAULT_HEARTBEAT_MS})
  --log-level LEVEL        info or debug (default info); logs go to stderr
  -h, --help               print this help

Prefer OUTPOST_HOST_TOKEN over --token: command lines are visible to other processes. The host token
never reaches an environment: each agent gets only its own environment's token, in its environment.

Built-in providers (README: "The provider host" has each one's config):
  local      a directory per environment, <root>/<environment id>; config: root
  worktree   a git worktree per environment of a repository on this machine, on branch
             <branchPrefix><environment id>; config: repository (required), baseRef (HEAD),
             branchPrefix (outpost/), root
  sandbox    like local, with the agent inside bubblewrap (the workspace its only writable mount);
             config: root, bwrap
  docker     a container per environment through the Docker Engine API; config: image, socket, root
  e2b, daytona, cloudflare-containers
             a cloud sandbox or container per environment (category cloud); config: the service's
             URL and key (cloudflare-containers: companionUrl, companionToken of its companion Worker)

Environments outlive the host: agents run in their own process groups, so stopping or restarting the
host leaves them running, and the restarted host reports them again from its state file. Tearing an
environment down stops its agent (SIGTERM, then SIGKILL) and removes its directory, worktree and branch.

Examples:
  OUTPOST_HOST_TOKEN=eyJ... outpost-agent host --url https://outpost.example.com --providers local,worktree
  outpost-agent host --url http://127.0.0.1:8787 --token "$HOST_TOKEN" --capabilities python --max-environments 4

Exit codes:
  0  stopped by SIGINT or SIGTERM
  1  unexpected internal error
  2  bad usage or configuration (missing flag, malformed token or URL, unknown provider, invalid
     provider manifest, unusable or locked state file)
  3  refused by the control plane (bad or revoked token, unknown host, protocol version mismatch,
     replaced by another host with the same name); retrying with the same token will not help
`;

const fail = usageError("outpost-agent host", HOST_EXIT.usage);

const list = (value: string | undefined) =>
  (value ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);

export async function hostMain(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const parsed = parseFlags(argv, HOST_FLAGS);
  if (!parsed.ok) return fail(parsed.error);
  const { values } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return HOST_EXIT.ok;
  }
  const url = values.url ?? env.OUTPOST_URL;
  const token = values.token ?? env.OUTPOST_HOST_TOKEN;
  if (!url) return fail("missing --url (or OUTPOST_URL)");
  if (!token) return fail("missing --token (or OUTPOST_HOST_TOKEN)");
  const claims = hostClaims(token);
  if (!claims) return fail("the host token is malformed (expected a JWT with audience outpost:host whose payload has sub=<host name> and org)");
  const target = socketUrl(url, "/v1/hosts/connect");
  if (!target.ok) return fail(target.error);
  const level = logLevel(values["log-level"]);
  if (level === null) return fail("--log-level must be info or debug");
  const heartbeatMs = positiveInteger(values["heartbeat-ms"], DEFAULT_HEARTBEAT_MS);
  if (heartbeatMs === null) return fail("--heartbeat-ms must be a positive whole number of milliseconds");
  const maxEnvironments = positiveInteger(values["max-environments"] ?? env.OUTPOST_MAX_ENVIRONMENTS, DEFAULT_MAX_ENVIRONMENTS);
  if (maxEnvironments === null) return fail("--max-environments must be a positive whole number");
  const capabilities = list(values.capabilities ?? env.OUTPOST_CAPABILITIES);
  const badCapability = capabilities.find((c) => !CAPABILITY.test(c));
  if (badCapability !== undefined) return fail(`capability '${badCapability}' must be lowercase letters, digits or '-' (at most 32)`);

  const dirs = values["provider-dir"] ?? (env.OUTPOST_PROVIDER_DIRS ? env.OUTPOST_PROVIDER_DIRS.split(":").filter(Boolean) : []);
  const loaded = await loadProviders(dirs);
  if (!loaded.ok) return fail(`cannot load the providers:\n  ${loaded.errors.join("\n  ")}`);
  const wanted = values.providers ?? env.OUTPOST_PROVIDERS;
  let offered = loaded.providers;
  if (wanted !== undefined) {
    const ids = list(wanted);
    if (ids.length === 0) return fail("--providers names no provider");
    const unknown = ids.filter((id) => !loaded.providers.some((p) => p.manifest.id === id));
    if (unknown.length > 0) return fail(`unknown provider(s): ${unknown.join(", ")} (loaded: ${loaded.providers.map((p) => p.manifest.id).join(", ")})`);
    offered = loaded.providers.filter((p) => ids.includes(p.manifest.id));
  }
  if (claims.providers) {
    const allowed = claims.providers;
    const refused = offered.filter((p) => !allowed.includes(p.manifest.id)).map((p) => p.manifest.id);
    if (wanted !== undefined && refused.length > 0) return fail(`the host token does not allow provider(s) ${refused.join(", ")} (it allows: ${allowed.join(", ") || "none"})`);
    offered = offered.filter((p) => allowed.includes(p.manifest.id));
    if (offered.length === 0) return fail(`the host token allows none of the loaded providers (it allows: ${allowed.join(", ") || "none"})`);
  }

  const root = path.resolve(values.root ?? env.OUTPOST_ROOT ?? defaultRoot(env));
  const stateFile = path.resolve(values["state-file"] ?? env.OUTPOST_HOST_STATE_FILE ?? defaultHostStatePath(claims.sub, env));
  try {
    mkdirSync(root, { recursive: true, mode: 0o700 });
  } catch (err) {
    return fail(`cannot create the root ${root}: ${errorText(err)}`);
  }
  // Environments belong to the commands run in them: they must not be able to rewrite the host's records.
  if (insideWorkspace(stateFile, root)) return fail(`the state file ${stateFile} is inside the root ${root}; choose one outside it with --state-file`);
  let state: HostState;
  try {
    state = HostState.open(stateFile, claims.sub);
  } catch (err) {
    return fail(err instanceof HostStateError ? err.message : `cannot open the state file ${stateFile}: ${errorText(err)}`);
  }
  // Children get only what they need: never the host token.
  delete process.env.OUTPOST_HOST_TOKEN;
  try {
    return await serve({ url: target.url, token, name: claims.sub, level, heartbeatMs, maxEnvironments, capabilities, root, state, offered });
  } finally {
    state.close();
  }
}

function defaultRoot(env: NodeJS.ProcessEnv): string {
  const data = env.XDG_DATA_HOME && path.isAbsolute(env.XDG_DATA_HOME) ? env.XDG_DATA_HOME : path.join(os.homedir(), ".local", "share");
  return path.join(data, "outpost", "environments");
}

type ServeConfig = {
  url: string;
  token: string;
  name: string;
  level: "info" | "debug";
  heartbeatMs: number;
  maxEnvironments: number;
  capabilities: string[];
  root: string;
  state: HostState;
  offered: LoadedProvider[];
};

async function serve(config: ServeConfig): Promise<number> {
  const log = createLogger(config.level, [config.token]);
  const agentCommand = defaultAgentCommand();
  const runtimeRoot = runtimeRootFor(config.state.file);
  const providers = config.offered.map((p) => new HostedProvider(p.manifest, p.impl, { root: config.root, runtimeRoot, agentCommand, log }));
  let link: HostLink | null = null;
  const host = new Host({
    name: config.name,
    providers,
    state: config.state,
    capabilities: config.capabilities,
    maxEnvironments: config.maxEnvironments,
    log,
    onChange: (status) => link?.send(status),
  });
  log.info(
    `outpost-agent host ${AGENT_VERSION} '${config.name}': providers ${providers.map((p) => p.id).join(", ")}; ${config.state.size} environment(s) in ${config.state.file}; root ${config.root}`,
  );
  // What survived the last run: reported as is in hello; the control plane decides what to recover.
  for (const record of config.state.list()) {
    const provider = providers.find((p) => p.id === record.provider);
    const health = provider ? await provider.health(record, AbortSignal.timeout(10_000)).catch((err: unknown) => ({ state: "unknown", detail: errorText(err) })) : { state: "unknown", detail: `provider ${record.provider} not offered` };
    log.info(`environment ${record.environmentId} (${record.provider} ${record.resourceId}): ${health.state}${health.detail ? ` (${health.detail})` : ""}`);
  }
  const theLink = new HostLink({
    url: config.url,
    token: config.token,
    hello: () => host.hello(),
    heartbeatMs: config.heartbeatMs,
    clock: realClock(),
    log,
    onRequest: (frame) => {
      const reply = host.handle(frame);
      void reply?.then((r) => theLink.send(r));
    },
  });
  link = theLink;

  let stopping: Promise<unknown> | null = null;
  const stopGracefully = () =>
    (stopping ??= (async () => {
      host.shutdown();
      await Promise.race([host.idle(), new Promise((r) => setTimeout(r, HOST_SHUTDOWN_GRACE_MS))]);
      await theLink.stop(CLOSE.normal, "host shutting down");
    })());
  let signals = 0;
  const onSignal = (name: NodeJS.Signals) => {
    if (++signals > 1) process.exit(HOST_EXIT.ok);
    log.info(`${name} received; finishing operations under way and closing the link (environments keep running)`);
    void stopGracefully();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  theLink.start();
  const end = await theLink.done;
  host.shutdown();
  await Promise.race([host.idle(), new Promise((r) => setTimeout(r, 5_000))]);
  if (end.kind === "stopped" || end.code === CLOSE.stopped) return HOST_EXIT.ok;
  return HOST_EXIT.rejected;
}

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));
