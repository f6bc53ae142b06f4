/**
 * `sandbox`: like `local` (a directory `<root>/<environment id>`, the agent a detached process
 * group on the host), but the agent and everything it runs live inside bubblewrap: the whole file
 * system read-only, the workspace and the environment's runtime directory (agent state) the only
 * writable mounts, a private /tmp, new user, pid, ipc, uts and cgroup namespaces. The network is
 * shared: the agent dials the control plane from the host's network.
 *
 * No `--die-with-parent`: like `local`, the sandbox outlives a restart of the host. The pid the host
 * records is bwrap's; bwrap does not start a new session, so the agent stays in bwrap's process
 * group and stopping the group stops it, and when the sandbox's pid 1 exits the kernel kills every
 * process left in its pid namespace.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { ProviderManifest } from "@outpost/protocol";
import { AgentProcess, defaultAgentCommand } from "../agent-process.js";
import { HostError, type AgentLauncher, type EnvironmentContext } from "../provider.js";
import { DirectoryProvider } from "./local.js";

/** The namespaces: everything bwrap can unshare, except the network. */
const NAMESPACES = ["--unshare-all", "--share-net"];

/**
 * bwrap's argv before the agent's command. Later mounts go on top of earlier ones: the private /tmp
 * first, then read-only the host paths under /tmp the agent's command needs (`visible`: a checkout
 * or a bundle there), then the writable binds.
 */
export function bwrapArgs(options: { workspace: string; runtimeDir: string; visible?: string[] }): string[] {
  const { workspace, runtimeDir, visible = [] } = options;
  return [
    ...NAMESPACES,
    "--ro-bind", "/", "/",
    "--tmpfs", "/tmp",
    "--proc", "/proc",
    "--dev", "/dev",
    ...visible.flatMap((p) => ["--ro-bind", p, p]),
    "--bind", runtimeDir, runtimeDir,
    "--bind", workspace, workspace,
    "--setenv", "TMPDIR", "/tmp",
    "--",
  ];
}

/** The paths strictly under /tmp that the agent's command names (files, file: URLs) or runs from (the host's working directory). */
export function pathsUnderTmp(command: readonly string[], cwd: string): string[] {
  const named = [cwd, ...command.map((a) => (a.startsWith("file://") ? fileURLToPath(a) : a))].filter((p) => path.isAbsolute(p) && p.startsWith("/tmp/"));
  const unique = [...new Set(named.map((p) => path.normalize(p)))];
  return unique.filter((p) => !unique.some((q) => q !== p && p.startsWith(`${q}/`)));
}

export class SandboxProvider extends DirectoryProvider {
  protected readonly agentName = "sandboxed agent";

  /** `agentCommand`: how to run the agent CLI; by default the same as the host's (this very bundle). */
  constructor(
    manifest: ProviderManifest,
    private readonly options: { agentCommand?: string[] } = {},
  ) {
    super(manifest);
  }

  /** The agent helper with bwrap in front of the agent's command; same runtime directory (pid, log, state) as the host's. */
  protected async agentFor(env: EnvironmentContext, workspace: string): Promise<AgentLauncher> {
    const bwrap = await usableBwrap(env);
    const command = this.options.agentCommand ?? defaultAgentCommand();
    return new AgentProcess({
      runtimeDir: env.runtimeDir,
      command: [bwrap, ...bwrapArgs({ workspace, runtimeDir: env.runtimeDir, visible: pathsUnderTmp(command, process.cwd()) }), ...command],
      credentials: { url: env.url, token: env.agentToken },
      log: env.log,
    });
  }
}

/** The configured bwrap, once it has proved it can create the namespaces here; a clear error otherwise. */
async function usableBwrap(env: EnvironmentContext): Promise<string> {
  const bwrap = String(env.config.bwrap ?? "bwrap");
  try {
    await env.exec(bwrap, [...NAMESPACES, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--", "true"]);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new HostError("internal", `bubblewrap (${bwrap}) cannot create a sandbox on this host: ${why}`, { field: "bwrap" });
  }
  return bwrap;
}
