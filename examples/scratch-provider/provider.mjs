// The `scratch` provider: one directory per environment, `<base>/scratch-<environment id>`, with a
// WELCOME.txt, served by the stock agent started on this machine. Everything it needs comes in the
// context the host passes (docs/providers.md, question 1); it imports nothing from Outpost.
import { mkdir, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";

const isDirectory = (dir) => stat(dir).then((s) => s.isDirectory(), () => false);

/** A coded error: the host passes the code on (bad_request → the caller sees a 400-class reason). */
function badRequest(message, field) {
  return Object.assign(new Error(message), { code: "bad_request", details: { field } });
}

function directoryOf(env) {
  const base = env.config.base ?? env.root;
  if (!path.isAbsolute(base)) throw badRequest("config.base must be an absolute path", "base");
  return path.join(base, `scratch-${env.environmentId}`);
}

export default class ScratchProvider {
  constructor(manifest) {
    this.manifest = manifest;
  }

  // Make the environment, start the agent in it, return the id to find it again by.
  async create(env) {
    const dir = directoryOf(env);
    const existed = await isDirectory(dir);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    try {
      if (!existed) await writeFile(path.join(dir, "WELCOME.txt"), env.config.welcome);
      await env.agent.start({ workspace: dir, resourceId: dir });
    } catch (err) {
      if (!existed) await rm(dir, { recursive: true, force: true }); // undo our own partial work
      throw err;
    }
    env.log.info(`scratch environment ${env.environmentId} in ${dir}`);
    return dir;
  }

  // Bring it back by its resource id: the directory must still be there; restart the agent if it died.
  async recover(env, { resourceId }) {
    if (!(await isDirectory(resourceId))) return { resourceId, recovered: false };
    const { started } = await env.agent.ensure({ workspace: resourceId, resourceId });
    env.log.info(`scratch environment ${env.environmentId}: agent ${started ? "restarted" : "still running"}`);
    return { resourceId, recovered: true };
  }

  // Look, never change.
  async health(resource) {
    if (!(await isDirectory(resource.resourceId))) return { state: "gone" };
    const pid = await resource.agent.running();
    return pid === null ? { state: "stopped", detail: "no agent" } : { state: "running", detail: `agent pid ${pid}` };
  }

  // The host has stopped the agent; remove everything else: processes still in the directory, the directory.
  async teardown(resource) {
    const existed = await isDirectory(resource.resourceId);
    await resource.killProcessesIn(resource.resourceId);
    await rm(resource.resourceId, { recursive: true, force: true });
    return existed;
  }
}
