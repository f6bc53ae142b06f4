/**
 * `local`: a directory on the host per environment (`<root>/<environment id>`), served by an agent
 * process. The resource id is the directory's path.
 *
 * `DirectoryProvider` is what `local` and `sandbox` share: the directory, and the agent started,
 * restarted, checked and stopped in it; they differ only in how the agent runs (a plain process
 * group, or one inside bubblewrap).
 */
import { mkdir, rm, stat } from "node:fs/promises";
import path from "node:path";
import { absolutePath, Provider, type AgentLauncher, type EnvironmentContext, type Notes, type Recovered, type ResourceContext, type ResourceHealth } from "../provider.js";

export abstract class DirectoryProvider extends Provider {
  /** How the agent is named in logs and health details ("agent", "sandboxed agent"). */
  protected abstract readonly agentName: string;
  /** The agent helper for this environment's workspace; may refuse (a clear error) before anything is made. */
  protected abstract agentFor(env: EnvironmentContext, workspace: string): Promise<AgentLauncher>;

  override async create(env: EnvironmentContext): Promise<string> {
    const dir = path.join(absolutePath("root", env.config.root) ?? env.root, env.environmentId);
    const agent = await this.agentFor(env, dir);
    const existed = await isDirectory(dir);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    try {
      await agent.start({ workspace: dir, resourceId: dir });
    } catch (err) {
      if (!existed) await rm(dir, { recursive: true, force: true });
      throw err;
    }
    return dir;
  }

  override async recover(env: EnvironmentContext, resource: { resourceId: string; notes: Notes }): Promise<Recovered> {
    const dir = resource.resourceId;
    if (!(await isDirectory(dir))) return { resourceId: dir, recovered: false };
    const { started } = await (await this.agentFor(env, dir)).ensure({ workspace: dir, resourceId: dir });
    env.log.info(`environment ${env.environmentId}: ${this.agentName} ${started ? "restarted" : "still running"} in ${dir}`);
    return { resourceId: dir, recovered: true };
  }

  override async health(resource: ResourceContext): Promise<ResourceHealth> {
    if (!(await isDirectory(resource.resourceId))) return { state: "gone" };
    // The pid file is the host's own helper's: the recorded command line names the workspace.
    const pid = await resource.agent.running();
    return pid === null ? { state: "stopped", detail: `no ${this.agentName} process` } : { state: "running", detail: `${this.agentName} pid ${pid}` };
  }

  override async teardown(resource: ResourceContext): Promise<boolean> {
    const dir = resource.resourceId;
    const existed = await isDirectory(dir);
    await resource.killProcessesIn(dir);
    await rm(dir, { recursive: true, force: true });
    return existed;
  }
}

export class LocalProvider extends DirectoryProvider {
  protected readonly agentName = "agent";
  protected async agentFor(env: EnvironmentContext): Promise<AgentLauncher> {
    return env.agent;
  }
}

export async function isDirectory(dir: string): Promise<boolean> {
  return stat(dir).then(
    (s) => s.isDirectory(),
    () => false,
  );
}
