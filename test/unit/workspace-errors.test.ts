/**
 * File errors the agent sends back name workspace-relative paths only: through the agent's own
 * dispatch (real files, real errno errors), no reply's message contains the workspace's absolute
 * path (as configured or its real path) or anything else under the test's temporary directory:
 * ENOENT, EACCES (read, list, write, mkdir), EISDIR, ENOTDIR, EEXIST, ENOTEMPTY and symlink escapes.
 * EACCES needs an unprivileged user: as root, the requests run with the effective uid of `nobody`.
 */
import { chmod, mkdir, realpath, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { type AgentFrame } from "@outpost/protocol";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Agent } from "../../provider-agent/src/agent.js";
import { AgentError } from "../../provider-agent/src/errors.js";
import { confineError, relativeName, scrubRoots } from "../../provider-agent/src/workspace-errors.js";
import { FrameRecorder, tempDir, waitFor } from "./helpers.js";

let base: { dir: string; cleanup: () => Promise<void> };
let real: string;
let ws: string;
let agent: Agent;
let out: FrameRecorder;
let seq = 0;
beforeEach(async () => {
  base = await tempDir("outpost-errors-");
  await chmod(base.dir, 0o755);
  real = path.join(base.dir, "real-workspace");
  await mkdir(real, { mode: 0o755 });
  // The agent is given a path that reaches the workspace through a symlink: neither form may leak.
  ws = path.join(base.dir, "ws");
  await symlink(real, ws);
  await mkdir(path.join(base.dir, "outside"));
  await writeFile(path.join(base.dir, "outside", "secret.txt"), "secret");
  out = new FrameRecorder();
  agent = new Agent({ workspace: ws, out, diffBaseDir: path.join(base.dir, "state", "env-base") });
});
afterEach(async () => {
  await agent.runs.shutdown();
  agent.runs.dispose();
  for (const p of ["locked", "locked-dir", "read-only-dir"]) await chmod(path.join(real, p), 0o755).catch(() => {});
  await base.cleanup();
});

/** Sends one request and returns the error it was answered with. */
async function failure(op: string, params: unknown): Promise<{ code: string; message: string }> {
  const id = `r${++seq}`;
  agent.handle({ v: 1, kind: "request", id, op: op as "exec", params, timeoutMs: 10_000 });
  const reply = await waitFor(() => out.frames.find((f): f is Extract<AgentFrame, { kind: "reply" }> => f.kind === "reply" && f.re === id), 10_000, `the reply to ${op}`);
  expect(reply.ok, `${op} ${JSON.stringify(params)} should fail`).toBe(false);
  if (reply.ok) throw new Error("unreachable");
  return reply.error;
}

/** The message names no absolute path the agent knows: not the workspace (either form), not its parent. */
function expectConfined(error: { message: string }, what: string): void {
  for (const p of [base.dir, ws, real]) expect(error.message, what).not.toContain(p);
  expect(error.message, what).not.toMatch(/(^|[\s'"(])\/(tmp|var|home|root|srv)\b/);
}

/** As root, runs `fn` with the effective uid of nobody so permissions apply; otherwise as is. */
async function unprivileged<T>(fn: () => Promise<T>): Promise<T> {
  const root = process.getuid?.() === 0;
  if (root) process.seteuid!(65534);
  try {
    return await fn();
  } finally {
    if (root) process.seteuid!(0);
  }
}

describe("agent file errors name workspace-relative paths only", () => {
  it("ENOENT, EISDIR, ENOTDIR, EEXIST, ENOTEMPTY", async () => {
    await mkdir(path.join(real, "dir", "sub"), { recursive: true });
    await writeFile(path.join(real, "file.txt"), "x");
    const cases: Array<[string, unknown, string]> = [
      ["file.read", { path: "missing.txt" }, "not_found"],
      ["file.stat", { path: "missing/deeper.txt" }, "not_found"],
      ["file.list", { path: "missing" }, "not_found"],
      ["file.delete", { path: "missing.txt" }, "not_found"],
      ["file.move", { from: "missing.txt", to: "b.txt" }, "not_found"],
      ["file.copy", { from: "missing.txt", to: "b.txt" }, "not_found"],
      ["file.read", { path: "dir" }, "is_directory"],
      ["file.write", { path: "dir", size: 1 }, "is_directory"],
      ["file.list", { path: "file.txt" }, "bad_request"],
      ["file.read", { path: "file.txt/inner" }, "not_found"],
      ["file.mkdir", { path: "file.txt/inner", recursive: true }, "not_found"],
      ["file.mkdir", { path: "dir" }, "conflict"],
      ["file.delete", { path: "dir" }, "is_directory"],
      ["file.move", { from: "file.txt", to: "dir/sub" }, "conflict"],
    ];
    for (const [op, params, code] of cases) {
      const error = await failure(op, params);
      expect(error.code, `${op} ${JSON.stringify(params)}: ${error.message}`).toBe(code);
      expectConfined(error, `${op} ${JSON.stringify(params)}`);
    }
  });

  it("symlinks out of the workspace, to a file, a directory or nothing", async () => {
    await symlink(path.join(base.dir, "outside", "secret.txt"), path.join(real, "escape.txt"));
    await symlink(path.join(base.dir, "outside"), path.join(real, "escape-dir"));
    await symlink(path.join(base.dir, "outside", "nothing"), path.join(real, "dangling"));
    for (const [op, params] of [
      ["file.read", { path: "escape.txt" }],
      ["file.stat", { path: "escape-dir/secret.txt" }],
      ["file.list", { path: "escape-dir" }],
      ["file.write", { path: "dangling", size: 1 }],
      ["file.copy", { from: "escape.txt", to: "copy.txt" }],
    ] as const) {
      const error = await failure(op, params);
      expect(error.code, `${op}: ${error.message}`).toBe("invalid_path");
      expectConfined(error, `${op} ${JSON.stringify(params)}`);
      expect(error.message).not.toContain("outside/");
    }
  });

  it("EACCES: reading a locked file, listing a locked directory, writing and making a directory where it may not", async () => {
    await writeFile(path.join(real, "locked"), "x");
    await chmod(path.join(real, "locked"), 0o000);
    await mkdir(path.join(real, "locked-dir"));
    await writeFile(path.join(real, "locked-dir", "a"), "a");
    await chmod(path.join(real, "locked-dir"), 0o000);
    await mkdir(path.join(real, "read-only-dir"));
    await chmod(path.join(real, "read-only-dir"), 0o555);
    const errors = await unprivileged(async () => [
      ["file.read locked", await failure("file.read", { path: "locked" })],
      ["file.list locked-dir", await failure("file.list", { path: "locked-dir" })],
      ["file.mkdir read-only-dir/new", await failure("file.mkdir", { path: "read-only-dir/new" })],
      ["file.mkdir read-only-dir/a/b recursive", await failure("file.mkdir", { path: "read-only-dir/a/b", recursive: true })],
    ] as const);
    for (const [what, error] of errors) {
      expect(error.code, `${what}: ${error.message}`).toBe("forbidden");
      expectConfined(error, what);
    }
    expect(errors[0][1].message).toBe("EACCES: permission denied, open 'locked'");
    // A write goes through a temp file beside the target: its name is relative too.
    await writeFile(path.join(base.dir, "payload"), "y");
    const write = await unprivileged(async () => {
      const id = `w${++seq}`;
      agent.handle({ v: 1, kind: "request", id, op: "file.write", params: { path: "read-only-dir/new.txt", size: 1 }, timeoutMs: 10_000 });
      agent.handle({ v: 1, kind: "chunk", re: id, n: 0, data: Buffer.from("y").toString("base64"), last: true } as never);
      return waitFor(() => out.frames.find((f): f is Extract<AgentFrame, { kind: "reply" }> => f.kind === "reply" && f.re === id), 10_000, "the write's reply");
    });
    expect(write.ok).toBe(false);
    if (!write.ok) {
      expect(write.error.code).toBe("forbidden");
      expect(write.error.message).toMatch(/^EACCES: permission denied, open 'read-only-dir\/\.new\.txt\.outpost-tmp-[0-9a-f]+'$/);
      expectConfined(write.error, "file.write read-only-dir/new.txt");
    }
  });

  it("the rewriting itself: errno errors from their path, other messages scrubbed at path boundaries", async () => {
    const roots = [ws, await realpath(ws)].sort((a, b) => b.length - a.length);
    const errno = Object.assign(new Error(`ENOENT: no such file or directory, rename '${real}/a' -> '${real}/b/c'`), { code: "ENOENT", syscall: "rename", path: `${real}/a`, dest: `${real}/b/c` });
    expect((confineError(errno, roots) as Error).message).toBe("ENOENT: no such file or directory, rename 'a' -> 'b/c'");
    expect((confineError(errno, roots) as { code: string }).code).toBe("ENOENT");
    expect(relativeName(path.join(base.dir, "outside", "x"), roots)).toBe("(outside the workspace)");
    expect(relativeName(real, roots)).toBe(".");
    expect(scrubRoots(`failed in ${ws}/src and ${ws}, not ${ws}-old/x`, roots)).toBe(`failed in src and ., not ${ws}-old/x`);
    const agentError = confineError(new AgentError("conflict", `'${real}/a' exists`), roots) as AgentError;
    expect([agentError.code, agentError.message]).toEqual(["conflict", "'a' exists"]);
  });
});
