/**
 * The agent's one git runner (provider-agent/src/services/git-runner.ts), used by the shadow
 * repository, the user's repository, the workspace diff and the version check: no inherited GIT_*
 * variable or agent token reaches git, stdin is not connected unless text is given, a git that
 * outlives its bound is stopped (SIGKILL when it ignores SIGTERM), stdout past a cap stops it;
 * the helpers git started go with it (its process group), on a time limit, an abort, or when
 * one still holds the pipes after git exited. Real git, real processes.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { gitBase } from "../../provider-agent/src/services/diff-git.js";
import { runGit } from "../../provider-agent/src/services/git-runner.js";
import { pidAlive } from "../../scripts/lib/processes.js";
import { git } from "../lib/workspace-files.js";
import { tempDir, waitFor } from "./helpers.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function dir(): Promise<string> {
  const t = await tempDir("outpost-git-runner-");
  cleanups.push(t.cleanup);
  return t.dir;
}

/** A repository with one commit. */
async function repository(): Promise<string> {
  const ws = path.join(await dir(), "ws");
  mkdirSync(ws);
  git(ws, "init", "-q");
  writeFileSync(path.join(ws, "a.txt"), "a\n");
  git(ws, "add", "a.txt");
  git(ws, "commit", "-q", "-m", "one");
  return ws;
}

/** A stand-in program: a shell script with `body`. */
async function program(body: string): Promise<string> {
  const file = path.join(await dir(), "prog");
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

describe("the agent's git runner", () => {
  it("hands git neither an inherited GIT_* variable nor the agent's token, and sets what the caller asks", async () => {
    const env = await program("env");
    const r = await runGit([], { program: env, inherit: { PATH: process.env.PATH, GIT_DIR: "/elsewhere", GIT_CONFIG_PARAMETERS: "'core.hookspath'='/x'", OUTPOST_AGENT_TOKEN: "secret", HOME: "/home/x" }, env: { GIT_TERMINAL_PROMPT: "0" } });
    const lines = r.stdout.toString("utf8").split("\n");
    expect(lines).toContain("HOME=/home/x");
    expect(lines).toContain("GIT_TERMINAL_PROMPT=0");
    expect(lines.filter((l) => l.startsWith("GIT_DIR=") || l.startsWith("GIT_CONFIG_PARAMETERS=") || l.startsWith("OUTPOST_AGENT_TOKEN="))).toEqual([]);
  });

  it("a GIT_DIR in the agent's own environment does not turn the workspace diff to another repository", async () => {
    const ws = await repository();
    const saved = process.env.GIT_DIR;
    process.env.GIT_DIR = path.join(await dir(), "not-a-repository");
    try {
      expect(await gitBase(ws)).toBe("HEAD");
    } finally {
      if (saved === undefined) delete process.env.GIT_DIR;
      else process.env.GIT_DIR = saved;
    }
  });

  it("does not connect stdin unless given text", async () => {
    const cat = await program("exec cat");
    expect((await runGit([], { program: cat })).stdout.toString()).toBe("");
    expect((await runGit([], { program: cat, input: "hello" })).stdout.toString()).toBe("hello");
  });

  it("stops a git that outlives its bound, with SIGKILL when it ignores SIGTERM", async () => {
    const hang = await program("trap '' TERM; exec sleep 30");
    await expect(runGit([], { program: hang, timeoutMs: 100 })).rejects.toMatchObject({ code: "timeout" });
  });

  it("stops a git whose output passes the cap and keeps the first bytes", async () => {
    const ws = await repository();
    const r = await runGit(["-C", ws, "cat-file", "-p", "HEAD"], { maxBytes: 10 });
    expect(r.truncated).toBe(true);
    expect(r.stdout.toString()).toMatch(/^tree [0-9a-f]{5}$/);
  });

  /** Whether a process is gone (or a zombie no longer running). */
  const gone = (pid: number) => !pidAlive(pid);
  const pidIn = async (file: string) => Number(await waitFor(() => (existsSync(file) ? readFileSync(file, "utf8").trim() : ""), 5_000, `a pid in ${file}`));

  it("stops the helpers a git started with it when its bound passes (the process group)", async () => {
    const pids = path.join(await dir(), "helper.pid");
    const parent = await program(`sleep 600 & echo $! > ${pids}; wait`);
    await expect(runGit([], { program: parent, timeoutMs: 300 })).rejects.toMatchObject({ code: "timeout", message: expect.stringMatching(/took longer than 300 ms/) });
    const helper = await pidIn(pids);
    await waitFor(() => gone(helper), 5_000, "the helper to be stopped");
  });

  it("stops git and its helpers when the caller aborts, rejecting with the abort's reason", async () => {
    const pids = path.join(await dir(), "git.pid");
    const stuck = await program(`echo $$ > ${pids}; exec sleep 600`);
    const controller = new AbortController();
    const running = runGit([], { program: stuck, signal: controller.signal });
    const pid = await pidIn(pids);
    controller.abort(new Error("the request was cancelled"));
    await expect(running).rejects.toThrow("the request was cancelled");
    await waitFor(() => gone(pid), 5_000, "git to be stopped");
    await expect(runGit([], { program: stuck, signal: controller.signal })).rejects.toThrow("the request was cancelled");
  });

  it("settles when git exits even though a helper it left behind holds the pipes, and stops the helper", async () => {
    const pids = path.join(await dir(), "helper.pid");
    const leaves = await program(`sleep 600 & echo $! > ${pids}; echo out; exit 3`);
    const r = await runGit([], { program: leaves });
    expect(r.code).toBe(3);
    expect(r.stdout.toString()).toBe("out\n");
    const helper = await pidIn(pids);
    await waitFor(() => gone(helper), 5_000, "the helper to be stopped");
  });
});
