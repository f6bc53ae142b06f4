import { existsSync, readFileSync } from "node:fs";
import { mkdir, realpath, writeFile } from "node:fs/promises";
import path from "node:path";
import { CHUNK_BYTES, ExecResult } from "@outpost/protocol";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { realClock } from "../../provider-agent/src/clock.js";
import { AgentError } from "../../provider-agent/src/errors.js";
import { OUTPUT_CAP_BYTES, runExec } from "../../provider-agent/src/services/exec.js";
import { pidAlive } from "../../scripts/lib/processes.js";
import { sleep, tempDir, waitFor } from "./helpers.js";

let base: { dir: string; cleanup: () => Promise<void> };
let ws: string;
const clock = realClock();

beforeEach(async () => {
  base = await tempDir();
  ws = path.join(base.dir, "ws");
  await mkdir(path.join(ws, "sub"), { recursive: true });
});
afterEach(() => base.cleanup());

const run = (command: string[], extra: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}, signal?: AbortSignal) =>
  runExec({ command, ...extra }, { workspace: ws, clock, signal });

describe("exec", () => {
  it("runs a command and captures its output", async () => {
    const result = await run(["echo", "hello", "world"]);
    expect(ExecResult.parse(result)).toEqual(result);
    expect(result).toMatchObject({ exitCode: 0, signal: null, stdout: "hello world\n", stderr: "" });
    expect(result.durationMs).toBeGreaterThanOrEqual(0);
    expect(result.timedOut).toBeUndefined();
    expect(result.truncated).toBeUndefined();
  });

  it("passes the exit code and stderr through", async () => {
    expect(await run(["sh", "-c", "echo oops >&2; exit 7"])).toMatchObject({ exitCode: 7, stderr: "oops\n" });
  });

  it("never uses a shell: metacharacters reach the program as they are", async () => {
    expect((await run(["echo", "$HOME", "`id`", "a;b", "*"])).stdout).toBe("$HOME `id` a;b *\n");
  });

  it("runs in the workspace root by default, in a jailed cwd when given, with extra env", async () => {
    const real = await realpath(ws);
    expect((await run(["pwd"])).stdout).toBe(`${real}\n`);
    const r = await run(["sh", "-c", 'echo "$GREETING"; pwd'], { cwd: "sub", env: { GREETING: "hi there" } });
    expect(r.stdout).toBe(`hi there\n${path.join(real, "sub")}\n`);
  });

  it("does not hand the agent's token to commands", async () => {
    process.env.OUTPOST_AGENT_TOKEN = "secret-token";
    try {
      expect((await run(["sh", "-c", 'echo "[${OUTPOST_AGENT_TOKEN-unset}]"'])).stdout).toBe("[unset]\n");
    } finally {
      delete process.env.OUTPOST_AGENT_TOKEN;
    }
  });

  it("refuses a cwd outside the workspace, missing, or not a directory", async () => {
    await writeFile(path.join(ws, "file"), "x");
    await expect(run(["pwd"], { cwd: "../" })).rejects.toMatchObject({ code: "invalid_path" });
    await expect(run(["pwd"], { cwd: "nope" })).rejects.toMatchObject({ code: "not_found" });
    await expect(run(["pwd"], { cwd: "file" })).rejects.toMatchObject({ code: "bad_request" });
  });

  it("reports a missing program as exec_failed", async () => {
    const err = await run(["outpost-no-such-program-xyz", "arg"]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect(err).toMatchObject({ code: "exec_failed", message: "command not found: outpost-no-such-program-xyz" });
  });

  it("kills the whole process group on timeout", async () => {
    const result = await run(["sh", "-c", "sleep 30 & echo $$ $!; sleep 30"], { timeoutMs: 300 });
    expect(result).toMatchObject({ timedOut: true, exitCode: null, signal: "SIGTERM" });
    const pids = result.stdout.trim().split(/\s+/).map(Number);
    expect(pids).toHaveLength(2);
    for (const pid of pids) await waitFor(() => !pidAlive(pid), 5_000, `process ${pid} to be gone`);
  });

  it("a cancel kills the process group and answers with a cancelled result", async () => {
    const controller = new AbortController();
    const pidFile = path.join(base.dir, "pids");
    const running = run(["sh", "-c", `sleep 30 & echo $$ $! > ${pidFile}; sleep 30`], {}, controller.signal);
    const pids = await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, "utf8").trim().split(/\s+/).map(Number).filter((n) => n > 0), 5_000, "the pid file");
    expect(pids).toHaveLength(2);
    controller.abort(new AgentError("cancelled", "cancelled by the control plane"));
    expect(await running).toMatchObject({ cancelled: true, exitCode: null, signal: "SIGTERM" });
    for (const pid of pids) await waitFor(() => !pidAlive(pid), 5_000, `process ${pid} to be gone`);
  });

  it("caps each stream and says so", async () => {
    const r = await run(["sh", "-c", `head -c ${OUTPUT_CAP_BYTES + 50_000} /dev/zero | tr '\\000' a; echo done >&2`]);
    expect(r.stdout.length).toBe(OUTPUT_CAP_BYTES);
    expect(r.stdout).toMatch(/^a+$/);
    expect(r.stderr).toBe("done\n");
    expect(r).toMatchObject({ exitCode: 0, truncated: true });
  });

  it("does not wait for background processes that keep the output pipes open", async () => {
    const r = await run(["sh", "-c", "sleep 30 & echo $!"]);
    const leftover = Number(r.stdout.trim());
    try {
      expect(r).toMatchObject({ exitCode: 0 });
      expect(leftover).toBeGreaterThan(0);
    } finally {
      if (leftover > 0) process.kill(leftover, "SIGKILL");
    }
  });
});

describe("exec: shell, stdin and streamed output", () => {
  const b64 = (s: string | Buffer) => Buffer.from(s).toString("base64");
  type Got = { stream: "stdout" | "stderr"; data: Buffer };
  const collect = () => {
    const got: Got[] = [];
    return { got, onOutput: async (stream: Got["stream"], data: Buffer) => void got.push({ stream, data }) };
  };
  const text = (got: Got[], stream?: Got["stream"]) => Buffer.concat(got.filter((g) => !stream || g.stream === stream).map((g) => g.data)).toString();

  it("runs one string with /bin/sh -c only when shell is true; argv never interprets ';'", async () => {
    expect((await runExec({ command: ["echo a; echo b"], shell: true }, { workspace: ws, clock })).stdout).toBe("a\nb\n");
    expect((await run(["echo", "a;", "echo", "b"])).stdout).toBe("a; echo b\n");
    await expect(runExec({ command: ["echo a", "b"], shell: true }, { workspace: ws, clock })).rejects.toMatchObject({ code: "bad_request" });
  });

  it("writes stdin then closes it; without stdin the command reads an empty input", async () => {
    const bytes = Buffer.alloc(300_000, 7);
    expect((await runExec({ command: ["wc", "-c"], stdin: b64(bytes) }, { workspace: ws, clock })).stdout.trim()).toBe("300000");
    expect((await runExec({ command: ["cat"], stdin: b64("hello\n") }, { workspace: ws, clock })).stdout).toBe("hello\n");
    expect(await run(["cat"])).toMatchObject({ exitCode: 0, stdout: "" });
    await expect(runExec({ command: ["cat"], stdin: "not base64!" }, { workspace: ws, clock })).rejects.toMatchObject({ code: "bad_request" });
  });

  it("streams stdout and stderr in order with their labels; the result carries no output", async () => {
    const { got, onOutput } = collect();
    const marker = path.join(base.dir, "step");
    // Each step waits until the previous output was delivered, so the order is the program's order.
    const script = `echo out1; while [ ! -f ${marker}1 ]; do sleep 0.01; done; echo err1 >&2; while [ ! -f ${marker}2 ]; do sleep 0.01; done; echo out2`;
    const running = runExec({ command: ["sh", "-c", script], stream: true }, { workspace: ws, clock, onOutput });
    await waitFor(() => text(got) === "out1\n", 5_000, "out1");
    await writeFile(`${marker}1`, "");
    await waitFor(() => text(got) === "out1\nerr1\n", 5_000, "err1");
    await writeFile(`${marker}2`, "");
    const result = await running;
    expect(result).toMatchObject({ exitCode: 0, stdout: "", stderr: "" });
    expect(got.map((g) => [g.stream, g.data.toString()])).toEqual([
      ["stdout", "out1\n"],
      ["stderr", "err1\n"],
      ["stdout", "out2\n"],
    ]);
  });

  it("cuts streamed output at CHUNK_BYTES and loses nothing", async () => {
    const { got, onOutput } = collect();
    const result = await runExec({ command: ["sh", "-c", "head -c 1000000 /dev/zero | tr '\\000' x"], stream: true }, { workspace: ws, clock, onOutput });
    expect(result.exitCode).toBe(0);
    expect(got.every((g) => g.stream === "stdout" && g.data.length <= CHUNK_BYTES)).toBe(true);
    expect(text(got)).toBe("x".repeat(1_000_000));
  });

  it("stops reading the child's pipes while the sink is blocked, and resumes when it is released", async () => {
    const marker = path.join(base.dir, "wrote-everything");
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let received = 0;
    const onOutput = async (_stream: string, data: Buffer) => {
      received += data.length;
      await gate;
    };
    const total = 8 * 1024 * 1024;
    const running = runExec({ command: ["sh", "-c", `head -c ${total} /dev/zero; touch ${marker}`], stream: true }, { workspace: ws, clock, onOutput });
    await waitFor(() => received > 0, 5_000, "the first chunk");
    await sleep(500);
    // The child is blocked on its full pipe: it has not written everything, the agent holds little.
    expect(existsSync(marker)).toBe(false);
    expect(received).toBeLessThanOrEqual(CHUNK_BYTES);
    release();
    expect(await running).toMatchObject({ exitCode: 0, stdout: "" });
    expect(received).toBe(total);
    expect(existsSync(marker)).toBe(true);
  });

  it("a cancel while the sink is blocked still ends the command and answers cancelled", async () => {
    const controller = new AbortController();
    let calls = 0;
    const onOutput = () => {
      calls++;
      return new Promise<void>(() => {}); // never takes anything
    };
    const running = runExec({ command: ["sh", "-c", "while :; do echo spam; done"], stream: true }, { workspace: ws, clock, signal: controller.signal, onOutput });
    await waitFor(() => calls > 0, 5_000, "output");
    controller.abort(new AgentError("cancelled", "cancelled by the control plane"));
    expect(await running).toMatchObject({ cancelled: true, exitCode: null });
  });
});
