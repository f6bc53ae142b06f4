import { createHash, randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { CHUNK_BYTES, MAX_FRAME_BYTES, parseAgentFrame, type AgentFrame } from "@outpost/protocol";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Agent, fitExecResult, helloFrame } from "../../provider-agent/src/agent.js";
import { ManualClock } from "../../provider-agent/src/clock.js";
import { connectEndpoint } from "../../provider-agent/src/endpoint.js";
import { toErrorInfo } from "../../provider-agent/src/errors.js";
import { Link } from "../../provider-agent/src/link.js";
import { FrameRecorder, agentToken, tempDir, TestEdge, waitFor } from "./helpers.js";

let base: { dir: string; cleanup: () => Promise<void> };
let ws: string;
beforeEach(async () => {
  base = await tempDir();
  ws = path.join(base.dir, "ws");
  await mkdir(ws);
});
afterEach(() => base.cleanup());

const request = (id: string, op: string, params: unknown, timeoutMs = 10_000) => ({ v: 1 as const, kind: "request" as const, id, op: op as "exec", params, timeoutMs });
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("agent dispatch", () => {
  it("answers invalid params with bad_request, once", async () => {
    const out = new FrameRecorder();
    const agent = new Agent({ workspace: ws, out });
    agent.handle(request("r1", "exec", { command: [] }));
    agent.handle(request("r2", "file.write", { path: "x" }));
    expect((await out.reply("r1")) as unknown).toMatchObject({ ok: false, error: { code: "bad_request", message: expect.stringContaining("exec") } });
    expect((await out.reply("r2")) as unknown).toMatchObject({ ok: false, error: { code: "bad_request" } });
    await waitFor(() => agent.inflight === 0);
    expect(out.frames).toHaveLength(2);
  });

  it("runs exec and replies with its result", async () => {
    const out = new FrameRecorder();
    new Agent({ workspace: ws, out }).handle(request("r1", "exec", { command: ["sh", "-c", "echo out; echo err >&2; exit 3"] }));
    expect((await out.reply("r1")) as unknown).toMatchObject({ v: 1, kind: "reply", re: "r1", ok: true, result: { exitCode: 3, stdout: "out\n", stderr: "err\n" } });
  });

  it("maps service failures to structured errors", async () => {
    const out = new FrameRecorder();
    const agent = new Agent({ workspace: ws, out });
    agent.handle(request("a", "exec", { command: ["outpost-no-such-program-xyz"] }));
    agent.handle(request("b", "file.read", { path: "../etc/passwd" }));
    agent.handle(request("c", "file.delete", { path: "missing" }));
    expect(((await out.reply("a")) as { error: unknown }).error).toEqual({ code: "exec_failed", message: "command not found: outpost-no-such-program-xyz" });
    expect(((await out.reply("b")) as { error: unknown }).error).toMatchObject({ code: "invalid_path" });
    expect(((await out.reply("c")) as { error: unknown }).error).toMatchObject({ code: "not_found" });
  });

  it("writes from chunk frames, reads back as chunk frames then the reply, and deletes", async () => {
    const out = new FrameRecorder();
    const agent = new Agent({ workspace: ws, out });
    const bytes = randomBytes(CHUNK_BYTES * 2 + 99);
    agent.handle(request("w", "file.write", { path: "d/blob", size: bytes.length }));
    let n = 0;
    for (let off = 0; off < bytes.length; off += CHUNK_BYTES) {
      agent.handle({ v: 1, kind: "chunk", re: "w", n: n++, data: bytes.subarray(off, off + CHUNK_BYTES).toString("base64") });
    }
    agent.handle({ v: 1, kind: "chunk", re: "w", n, data: "", last: true });
    expect((await out.reply("w")) as unknown).toMatchObject({ ok: true, result: { size: bytes.length } });

    agent.handle(request("r", "file.read", { path: "d/blob" }));
    expect((await out.reply("r")) as unknown).toMatchObject({ ok: true, result: { size: bytes.length } });
    const chunks = out.frames.filter((f) => f.kind === "chunk" && f.re === "r") as Array<{ n: number; data: string; last?: boolean }>;
    expect(chunks.map((c) => c.n)).toEqual([0, 1, 2]);
    expect(chunks.at(-1)?.last).toBe(true);
    expect(out.frames.indexOf(out.replies("r")[0]!)).toBeGreaterThan(out.frames.indexOf(chunks.at(-1) as AgentFrame));
    expect(sha(Buffer.concat(chunks.map((c) => Buffer.from(c.data, "base64"))))).toBe(sha(bytes));

    agent.handle(request("x", "file.delete", { path: "d/blob" }));
    expect((await out.reply("x")) as unknown).toMatchObject({ ok: true, result: { deleted: true } });
    expect(await readdir(path.join(ws, "d"))).toEqual([]);
  });

  it("cancel stops an exec and the request is answered exactly once", async () => {
    const out = new FrameRecorder();
    const agent = new Agent({ workspace: ws, out });
    agent.handle(request("r1", "exec", { command: ["sleep", "30"] }));
    agent.handle({ v: 1, kind: "cancel", re: "r1" });
    agent.handle({ v: 1, kind: "cancel", re: "r1" });
    expect((await out.reply("r1")) as unknown).toMatchObject({ ok: true, result: { cancelled: true, exitCode: null } });
    await waitFor(() => agent.inflight === 0);
    expect(out.replies("r1")).toHaveLength(1);
  });

  it("refuses a second request with an id that is in flight, without a second reply", async () => {
    const out = new FrameRecorder();
    const agent = new Agent({ workspace: ws, out });
    agent.handle(request("dup", "file.write", { path: "f", size: 1 }));
    agent.handle(request("dup", "file.write", { path: "g", size: 1 }));
    expect(out.frames).toEqual([{ v: 1, kind: "error", re: "dup", error: { code: "conflict", message: "request dup is already in progress" } }]);
    agent.handle({ v: 1, kind: "chunk", re: "dup", n: 0, data: Buffer.from("x").toString("base64"), last: true });
    await out.reply("dup");
    expect(out.replies("dup")).toHaveLength(1);
    expect(await readFile(path.join(ws, "f"), "utf8")).toBe("x");
  });

  it("a transfer times out after timeoutMs without progress, not after timeoutMs in total", async () => {
    const clock = new ManualClock();
    const out = new FrameRecorder();
    const agent = new Agent({ workspace: ws, out, clock });
    agent.handle(request("w", "file.write", { path: "slow.bin", size: 2 }, 1_000));
    clock.advance(600);
    agent.handle({ v: 1, kind: "chunk", re: "w", n: 0, data: Buffer.from("a").toString("base64") });
    clock.advance(600); // 1200 ms in total, 600 since the last chunk
    await waitFor(async () => (await readdir(ws)).length === 1, 5_000, "the temp file");
    expect(out.replies("w")).toHaveLength(0);
    clock.advance(400);
    expect((await out.reply("w")) as unknown).toMatchObject({ ok: false, error: { code: "timeout", message: "file.write made no progress within 1000 ms" } });
    expect(await readdir(ws)).toEqual([]);
  });

  it("shutdown cancels everything in flight and still replies to each request", async () => {
    const out = new FrameRecorder();
    const agent = new Agent({ workspace: ws, out });
    agent.handle(request("e", "exec", { command: ["sleep", "30"] }));
    agent.handle(request("w", "file.write", { path: "f", size: 10 }));
    agent.shutdown();
    expect((await out.reply("e")) as unknown).toMatchObject({ ok: true, result: { cancelled: true } });
    expect((await out.reply("w")) as unknown).toMatchObject({ ok: false, error: { code: "cancelled" } });
    await waitFor(() => agent.inflight === 0);
    expect(await readdir(ws)).toEqual([]);
  });
});

describe("shutdown", () => {
  it("replies, cancels the rest, then asks the process to exit", async () => {
    const out = new FrameRecorder();
    const reasons: string[] = [];
    const agent = new Agent({ workspace: ws, out, onShutdown: (reason) => void reasons.push(reason) });
    agent.handle(request("e", "exec", { command: ["sleep", "30"] }));
    agent.handle(request("s", "shutdown", { reason: "environment stopped" }));
    expect((await out.reply("s")) as unknown).toEqual({ v: 1, kind: "reply", re: "s", ok: true, result: {} });
    expect(reasons).toEqual(["environment stopped"]);
    expect((await out.reply("e")) as unknown).toMatchObject({ ok: true, result: { cancelled: true } });
  });
});

describe("replies that must fit one frame", () => {
  it("trims exec output whose JSON escaping would exceed MAX_FRAME_BYTES", () => {
    const control = "\u0001".repeat(256 * 1024); // 6 bytes each once escaped
    const fitted = fitExecResult("r", { exitCode: 0, signal: null, stdout: control, stderr: control, durationMs: 1 });
    expect(Buffer.byteLength(JSON.stringify({ v: 1, kind: "reply", re: "r", ok: true, result: fitted }))).toBeLessThanOrEqual(MAX_FRAME_BYTES);
    expect(fitted.truncated).toBe(true);
    expect(fitted.stdout.length + fitted.stderr.length).toBeGreaterThan(100_000);
  });

  it("leaves a result that fits untouched", () => {
    const result = { exitCode: 0, signal: null, stdout: "ok", stderr: "", durationMs: 1 };
    expect(fitExecResult("r", result)).toBe(result);
  });

  it("unexpected exceptions become agent_error with the message only", () => {
    expect(toErrorInfo(new TypeError("boom"))).toEqual({ code: "agent_error", message: "boom" });
    expect(toErrorInfo("plain")).toEqual({ code: "agent_error", message: "plain" });
  });

  it("file system refusals keep their meaning: path too long, in the way, disk full (found by the chaos suite)", () => {
    const errno = (code: string) => Object.assign(new Error(`${code}: something`), { code });
    expect(toErrorInfo(errno("ENAMETOOLONG")).code).toBe("invalid_path");
    expect(toErrorInfo(errno("ENOTDIR")).code).toBe("conflict");
    expect(toErrorInfo(errno("EISDIR")).code).toBe("conflict");
    expect(toErrorInfo(errno("ENOSPC"))).toEqual({ code: "no_space", message: "ENOSPC: something" });
    expect(toErrorInfo(errno("EFBIG")).code).toBe("no_space");
    expect(toErrorInfo(errno("EWHATEVER")).code).toBe("agent_error");
  });
});

describe("agent over a real link", () => {
  it("streams a multi-megabyte file both ways through a local edge", async () => {
    const edge = await TestEdge.start();
    const token = agentToken();
    const endpoint = connectEndpoint(edge.url, token);
    if (!endpoint.ok) throw new Error(endpoint.error);
    const link = new Link({ url: endpoint.url, token, hello: helloFrame("0.0.0", ws) });
    const agent = new Agent({ workspace: ws, out: link });
    link.onFrame = (f) => agent.handle(f);
    link.start();
    try {
      await edge.frame(0, (f) => f.kind === "hello");
      const bytes = randomBytes(6 * 1024 * 1024 + 17); // above the link's high-water mark
      await writeFile(path.join(ws, "big.bin"), bytes);
      edge.send(0, request("read", "file.read", { path: "big.bin" }));
      const reply = await edge.frame(0, (f) => f.kind === "reply" && f.re === "read", 10_000);
      expect(reply).toMatchObject({ ok: true, result: { size: bytes.length } });
      const chunks = edge.connections[0]!.frames.filter((f) => f.kind === "chunk" && f.re === "read") as Array<{ n: number; data: string }>;
      expect(chunks.map((c) => c.n)).toEqual([...chunks.keys()]);
      expect(sha(Buffer.concat(chunks.map((c) => Buffer.from(c.data, "base64"))))).toBe(sha(bytes));

      edge.send(0, request("write", "file.write", { path: "copy/big.bin", size: bytes.length }));
      let n = 0;
      for (let off = 0; off < bytes.length; off += CHUNK_BYTES) {
        edge.send(0, { v: 1, kind: "chunk", re: "write", n: n++, data: bytes.subarray(off, off + CHUNK_BYTES).toString("base64") });
      }
      edge.send(0, { v: 1, kind: "chunk", re: "write", n, data: "", last: true });
      expect(await edge.frame(0, (f) => f.kind === "reply" && f.re === "write", 10_000)).toMatchObject({ ok: true, result: { size: bytes.length } });
      expect(sha(await readFile(path.join(ws, "copy/big.bin")))).toBe(sha(bytes));
    } finally {
      await link.stop();
      await edge.close();
    }
  });
});
