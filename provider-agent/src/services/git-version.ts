/**
 * Snapshots need git 2.38 or newer (`merge-tree --write-tree`, used by the patch strategy and the
 * merge). The snapshot service checks the environment's git once, when it starts, so an old or
 * missing git is one clear error instead of a cryptic one half-way through an import.
 */
import { AgentError } from "../errors.js";
import { runGit } from "./git-runner.js";

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

/** How long `git --version` may take: it reads nothing, so a hang means something is wrong. */
const VERSION_TIMEOUT_MS = 15_000;

/** Runs `<program> --version` (with `inherit` as the environment it starts from); resolves with the version, or fails with what to install. */
export async function requireGit(program = "git", inherit: NodeJS.ProcessEnv = process.env): Promise<string> {
  const want = MIN_GIT_VERSION.join(".");
  let out: string;
  try {
    out = (await runGit(["--version"], { program, inherit, timeoutMs: VERSION_TIMEOUT_MS })).stdout.toString("utf8");
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new AgentError("invalid_state", `snapshots need git ${want} or newer in the environment, and git could not be run (${why}): install git`);
  }
  const v = parseGitVersion(out);
  if (!v) throw new AgentError("invalid_state", `snapshots need git ${want} or newer; \`${program} --version\` said ${JSON.stringify(out.trim().slice(0, 200))}`);
  if (!isRecentEnough(v)) throw new AgentError("invalid_state", `snapshots need git ${want} or newer (merge-tree --write-tree); this environment has git ${v.join(".")}: upgrade git`);
  return v.join(".");
}
