/**
 * Snapshots need git 2.38 or newer (`merge-tree --write-tree`, used by the patch strategy and the
 * merge). The snapshot service checks the environment's git once, when it starts, so an old or
 * missing git is one clear error instead of a cryptic one half-way through an import.
 */
import { spawn } from "node:child_process";
import { AgentError } from "../errors.js";

export const MIN_GIT_VERSION = [2, 38] as const;

/** `git version 2.39.5` (also `2.39.5.windows.1`, `2.40.0-rc1`) → [2, 39, 5]; null when it is not a version line. */
export function parseGitVersion(text: string): [number, number, number] | null {
  const m = /git version (\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : null;
}

export function isRecentEnough(v: readonly number[], min: readonly number[] = MIN_GIT_VERSION): boolean {
  for (let i = 0; i < min.length; i++) {
    if ((v[i] ?? 0) !== min[i]) return (v[i] ?? 0) > min[i]!;
  }
  return true;
}

/** Runs `<program> --version`; resolves with the version, or fails with what to install. */
export function requireGit(program = "git", env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const want = MIN_GIT_VERSION.join(".");
  return new Promise((resolve, reject) => {
    const child = spawn(program, ["--version"], { env, stdio: ["ignore", "pipe", "ignore"], shell: false });
    let out = "";
    child.stdout.on("data", (b: Buffer) => (out += b.toString("utf8")));
    child.on("error", (err) =>
      reject(new AgentError("invalid_state", `snapshots need git ${want} or newer in the environment, and git could not be run (${err.message}): install git`)),
    );
    child.on("close", () => {
      const v = parseGitVersion(out);
      if (!v) return reject(new AgentError("invalid_state", `snapshots need git ${want} or newer; \`${program} --version\` said ${JSON.stringify(out.trim().slice(0, 200))}`));
      if (!isRecentEnough(v)) return reject(new AgentError("invalid_state", `snapshots need git ${want} or newer (merge-tree --write-tree); this environment has git ${v.join(".")}: upgrade git`));
      resolve(v.join("."));
    });
  });
}
