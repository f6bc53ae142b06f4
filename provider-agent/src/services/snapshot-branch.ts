/**
 * A branch ready for a pull request in the user's own repository: `outpost/<name>`, rooted at the
 * user's HEAD, one commit whose tree is the snapshot's. The commit is made in the shadow
 * repository (after fetching the user's HEAD into it), then fetched into the user's repository
 * and named with a create-only `update-ref`; the user's work tree, index and HEAD are never
 * touched, and no hook, fsmonitor, gc or maintenance of theirs runs. argv only.
 */
import { realpath } from "node:fs/promises";
import path from "node:path";
import { NOT_A_GIT_REPOSITORY, type OpParams, type SnapshotBranchResult } from "@outpost/protocol";
import { AgentError } from "../errors.js";
import { GIT_TIMEOUT_MS, runGit } from "./git-runner.js";
import type { ShadowGit } from "./shadow-git.js";
import type { SnapshotService } from "./snapshots.js";

const ZERO = "0".repeat(40);
/** Where the user's HEAD is kept in the shadow repository (so the next fetch sends only what is new). */
const USER_HEAD = "refs/outpost/user-head";
const prRef = (name: string) => `refs/outpost/pull-requests/${name}`;
/** A look at the user's repository (rev-parse, check-ref-format, update-ref) is quick; one that is not is stuck. */
const QUICK_MS = 60_000;

type Run = { code: number | null; stdout: string; stderr: string };

/**
 * git in the user's repository: discovery stops at the workspace; nothing of theirs that runs
 * programs or rewrites files. No inherited GIT_* variable can point it elsewhere (git-runner.ts).
 */
async function userGit(workspace: string, args: string[], o: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<Run> {
  const argv = ["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "gc.auto=0", "-c", "maintenance.auto=false", "-c", "fetch.writeCommitGraph=false", "-c", "fetch.recurseSubmodules=false", ...args];
  const r = await runGit(argv, {
    cwd: workspace,
    env: { GIT_TERMINAL_PROMPT: "0", LC_ALL: "C", GIT_CEILING_DIRECTORIES: path.dirname(workspace), GIT_OPTIONAL_LOCKS: "0" },
    timeoutMs: o.timeoutMs ?? QUICK_MS,
    ...(o.signal ? { signal: o.signal } : {}),
  });
  return { code: r.code, stdout: r.stdout.toString("utf8").trim(), stderr: r.stderr };
}

async function mustUser(workspace: string, args: string[], what: string, o: { signal?: AbortSignal; timeoutMs?: number }): Promise<string> {
  const r = await userGit(workspace, args, o);
  if (r.code !== 0) throw new AgentError("agent_error", `${what}: git ${args[0]} failed: ${r.stderr || `exit code ${r.code}`}`);
  return r.stdout;
}

/**
 * Everything that can refuse is checked before anything is written: the repository, its HEAD, the
 * name. A failure after that removes the shadow repository's transfer ref again, so a refusal or a
 * stopped request leaves no branch, no ref and no file behind. `signal` (the request's cancel or
 * time limit) stops whichever git is running, so the snapshot service's queue is never held.
 */
export function branchForPullRequest(service: SnapshotService, p: OpParams<"snapshot.branch">, signal?: AbortSignal): Promise<SnapshotBranchResult> {
  return service.exclusive(async (shared: ShadowGit) => {
    const shadow = shared.until(signal);
    const quick = signal ? { signal } : {};
    const workspace = await realpath(service.workspace);
    if (!(await shadow.resolve(p.commit))) throw new AgentError("not_found", `commit ${p.commit} is not in this environment's shadow repository`);
    const top = await userGit(workspace, ["rev-parse", "--show-toplevel"], quick);
    if (top.code !== 0 || (await realpath(top.stdout).catch(() => "")) !== workspace) throw new AgentError("invalid_state", NOT_A_GIT_REPOSITORY);
    const base = (await userGit(workspace, ["rev-parse", "-q", "--verify", "HEAD^{commit}"], quick)).stdout;
    if (!/^[0-9a-f]{40}$/.test(base)) throw new AgentError("invalid_state", "the workspace's repository has no commit yet: a pull-request branch is rooted at HEAD; make a first commit and ask again");
    const branch = `outpost/${p.name}`;
    const ref = `refs/heads/${branch}`;
    if ((await userGit(workspace, ["check-ref-format", ref], quick)).code !== 0) throw new AgentError("bad_request", `${branch} is not a valid branch name`);
    if ((await userGit(workspace, ["rev-parse", "-q", "--verify", ref], quick)).code === 0) {
      throw new AgentError("conflict", `the branch ${branch} already exists in the workspace's repository; choose another name`);
    }

    // The user's HEAD into the shadow repository (the commit's parent must be there); read-only for the user's side.
    const fetched = await shadow.run(["fetch", "-q", "--no-tags", "--no-write-fetch-head", "--no-recurse-submodules", "--no-auto-maintenance", workspace, `+${base}:${USER_HEAD}`]);
    if (fetched.code !== 0 || (await shadow.resolve(USER_HEAD)) !== base) {
      throw new AgentError("agent_error", `could not read the user's HEAD into the shadow repository: ${fetched.stderr || `exit code ${fetched.code}`}`);
    }
    const tree = await shadow.ok(["rev-parse", `${p.commit}^{tree}`]);
    const commit = await shadow.ok(["commit-tree", tree, "-p", base, "-F", "-"], p.message.endsWith("\n") ? p.message : `${p.message}\n`);
    await shadow.ok(["update-ref", prRef(p.name), commit]);
    try {
      const changed = (await shadow.ok(["diff-tree", "-r", "-z", "--no-commit-id", "--name-only", "--no-renames", base, commit])).split("\0").filter(Boolean);
      // Its objects into the user's repository (only what HEAD lacks), then the branch, create-only.
      await mustUser(workspace, ["fetch", "-q", "--no-tags", "--no-write-fetch-head", "--no-recurse-submodules", "--no-auto-maintenance", service.gitDir, prRef(p.name)], "bringing the commit into the workspace's repository", { ...quick, timeoutMs: GIT_TIMEOUT_MS });
      const made = await userGit(workspace, ["update-ref", "-m", `outpost: pull-request branch from ${p.commit.slice(0, 12)}`, ref, commit, ZERO], quick);
      if (made.code !== 0) throw new AgentError("conflict", `the branch ${branch} could not be created: ${made.stderr || `exit code ${made.code}`}`);
      return { branch, commit, base, changed };
    } finally {
      // Only a name for the transfer: the branch in the user's repository holds the commit now.
      await shared.run(["update-ref", "-d", prRef(p.name)]);
    }
  });
}
