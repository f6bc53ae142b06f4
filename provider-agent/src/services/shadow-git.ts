/**
 * git, run for the shadow repository: its own GIT_DIR (outside the workspace), the workspace as
 * the work tree, no system or global config, no hooks, no fsmonitor, fixed identity. argv only,
 * never a shell. The user's own repository (`.git` in the workspace) is never read as a
 * repository and never written: git skips any path named `.git` in a work tree.
 */
import { lstat } from "node:fs/promises";
import path from "node:path";
import { AgentError } from "../errors.js";
import { runGit, type GitRun, type GitRunOptions } from "./git-runner.js";

export type { GitRun } from "./git-runner.js";

export interface ShadowGitOptions {
  gitDir: string;
  workTree: string;
  /** Another index (a temporary work tree's); default the shadow repository's own. */
  indexFile?: string;
  /** Stops every git this instance runs (see until()). */
  signal?: AbortSignal;
}

const IDENTITY = { name: "outpost-agent", email: "agent@outpost.invalid" };

/** Config every command runs with; `core.bigFileThreshold` streams big files straight into packs. */
async function configArgs(workTree: string): Promise<string[]> {
  // The user's own exclude file is respected (read, never written) when the workspace has one.
  const userExclude = path.join(workTree, ".git", "info", "exclude");
  const excludes = (await lstat(userExclude).catch(() => null))?.isFile() ? userExclude : "/dev/null";
  return [
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.fsmonitor=false",
    "-c", "core.quotePath=false",
    "-c", "core.autocrlf=false",
    "-c", "core.bigFileThreshold=1m",
    // Speed over size: level 1 costs little on text and nothing is lost on incompressible data.
    "-c", "core.compression=1",
    "-c", "gc.auto=0",
    "-c", "maintenance.auto=false",
    "-c", `core.excludesFile=${excludes}`,
  ];
}

export class ShadowGit {
  constructor(private readonly o: ShadowGitOptions) {}

  /** The variables that make git work on the shadow repository and nothing else. */
  env(): Record<string, string> {
    return {
      GIT_DIR: this.o.gitDir,
      GIT_WORK_TREE: this.o.workTree,
      ...(this.o.indexFile ? { GIT_INDEX_FILE: this.o.indexFile } : {}),
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_CONFIG_GLOBAL: "/dev/null",
      GIT_TERMINAL_PROMPT: "0",
      GIT_AUTHOR_NAME: IDENTITY.name,
      GIT_AUTHOR_EMAIL: IDENTITY.email,
      GIT_COMMITTER_NAME: IDENTITY.name,
      GIT_COMMITTER_EMAIL: IDENTITY.email,
      LC_ALL: "C",
    };
  }

  /** Runs git (see git-runner.ts); stdout goes to `onStdout` when given (streamed, with back-pressure), else is collected. */
  async run(args: string[], options: Pick<GitRunOptions, "input" | "onStdout" | "signal"> = {}): Promise<GitRun> {
    const signal = options.signal ?? this.o.signal;
    return runGit([...(await configArgs(this.o.workTree)), ...args], { ...options, ...(signal ? { signal } : {}), cwd: this.o.workTree, env: this.env() });
  }

  /** The same repository, with every git it runs stopped when `signal` aborts (a request's cancel or time limit). */
  until(signal: AbortSignal | undefined): ShadowGit {
    return signal ? new ShadowGit({ ...this.o, signal }) : this;
  }

  /** Runs git and fails unless it exits 0; returns stdout as text without the final newline. */
  async ok(args: string[], input?: string): Promise<string> {
    const r = await this.run(args, input === undefined ? {} : { input });
    if (r.code !== 0) throw new AgentError("agent_error", `git ${args[0]} failed: ${r.stderr || `exit code ${r.code}`}`);
    return r.stdout.toString("utf8").replace(/\n$/, "");
  }

  /** The commit a ref or revision names, or null. */
  async resolve(rev: string): Promise<string | null> {
    const r = await this.run(["rev-parse", "-q", "--verify", `${rev}^{commit}`]);
    return r.code === 0 ? r.stdout.toString("utf8").trim() : null;
  }
}
