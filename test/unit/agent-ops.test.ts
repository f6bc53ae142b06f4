/**
 * The new operations through the agent's dispatch: streamed exec, the file tree, diff and runs, first
 * against a recording outbound, then over a real link to the stand-in edge (credit, a dropped link).
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { CHUNK_BYTES, Hello, INITIAL_CREDIT, Ops, parseAgentFrame, type AgentFrame } from "@outpost/protocol";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Agent, CAPABILITIES, helloFrame, type Outbound } from "../../provider-agent/src/agent.js";
import { connectEndpoint } from "../../provider-agent/src/endpoint.js";
import { Link } from "../../provider-agent/src/link.js";
import { FrameRecorder, agentToken, sleep, tempDir, TestEdge, waitFor, type Frame } from "./helpers.js";

let base: { dir: string; cleanup: () => Promise<void> };
let ws: string;
const agents: Agent[] = [];
beforeEach(async () => {
  base = await tempDir();
  ws = path.join(base.dir, "ws");
  await mkdir(ws);
});
afterEach(async () => {
  for (const a of agents.splice(0)) {
    await a.runs.shutdown();
    a.runs.dispose();
  }
  await base.cleanup();
});

const request = (id: string, op: string, params: unknown, timeoutMs = 10_000) => ({ v: 1 as const, kind: "request" as const, id, op: op as "exec", params, timeoutMs });
function newAgent(out: Outbound) {
  const agent = new Agent({ workspace: ws, out, diffBaseDir: path.join(base.dir, "state", "env-base") });
  agents.push(agent);
  return agent;
}
const decode = (frames: Array<{ data: string }>) => Buffer.concat(frames.map((f) => Buffer.from(f.data, "base64"))).toString();

describe("agent dispatch of the new operations", () => {
  it("announces runs, diff and stream, and reports runs in hello", () => {
    expect(CAPABILITIES).toEqual(expect.arrayContaining(["exec", "files", "runs", "diff", "stream"]));
    const hello = Hello.parse(helloFrame("1.2.3", ws, { runs: [{ runId: "r", state: "running", pid: 42 }] }));
    expect(hello.runs).toEqual([{ runId: "r", state: "running", pid: 42 }]);
  });

  it("streams exec output as chunk frames before a reply with empty output; shell only when asked", async () => {
    const out = new FrameRecorder();
    const agent = newAgent(out);
    agent.handle(request("s", "exec", { command: ["echo out; echo err >&2; exit 2"], shell: true, stream: true }));
    const reply = await out.reply("s");
    expect(reply).toMatchObject({ ok: true, result: { exitCode: 2, stdout: "", stderr: "" } });
    const chunks = out.of("chunk", (c) => c.re === "s");
    expect(chunks.map((c) => c.n)).toEqual([...chunks.keys()]);
    expect(decode(chunks.filter((c) => c.stream === "stdout"))).toBe("out\n");
    expect(decode(chunks.filter((c) => c.stream === "stderr"))).toBe("err\n");
    expect(out.frames.indexOf(reply)).toBeGreaterThan(out.frames.indexOf(chunks.at(-1) as AgentFrame));

    agent.handle(request("a", "exec", { command: ["echo", "a;", "b"], stdin: Buffer.from("ignored").toString("base64") }));
    expect(await out.result("a")).toMatchObject({ stdout: "a; b\n" });
  });

  it("runs the file tree operations with results as the protocol defines them", async () => {
    const out = new FrameRecorder();
    const agent = newAgent(out);
    await writeFile(path.join(ws, "a.txt"), "alpha");
    const call = async (id: string, op: keyof typeof Ops, params: unknown) => {
      agent.handle(request(id, op, params));
      return Ops[op].result.parse(await out.result(id));
    };
    expect(await call("1", "file.mkdir", { path: "d/e", recursive: true })).toEqual({ created: true });
    expect(await call("2", "file.copy", { from: "a.txt", to: "d/e/b.txt" })).toEqual({ copied: true });
    expect(await call("3", "file.move", { from: "d/e/b.txt", to: "d/c.txt" })).toEqual({ moved: true });
    expect(await call("4", "file.stat", { path: "d/c.txt" })).toMatchObject({ path: "d/c.txt", type: "file", size: 5 });
    expect(await call("5", "file.list", { path: "", recursive: true })).toMatchObject({
      truncated: false,
      entries: [{ path: "a.txt" }, { path: "d" }, { path: "d/c.txt" }, { path: "d/e" }],
    });
    agent.handle(request("6", "file.delete", { path: "d" }));
    expect(await out.reply("6")).toMatchObject({ ok: false, error: { code: "is_directory" } });
    expect(await call("7", "file.delete", { path: "d", recursive: true })).toEqual({ deleted: true });
    agent.handle(request("8", "file.copy", { from: "a.txt", to: "a.txt" }));
    expect(await out.reply("8")).toMatchObject({ ok: false, error: { code: "conflict" } });
    agent.handle(request("9", "file.move", { from: "a.txt", to: "../out.txt" }));
    expect(await out.reply("9")).toMatchObject({ ok: false, error: { code: "invalid_path" } });
  });

  it("diffs against the base recorded when the agent started", async () => {
    const out = new FrameRecorder();
    const agent = newAgent(out);
    await writeFile(path.join(ws, "f.txt"), "one\n");
    await agent.diffs.prepare();
    await writeFile(path.join(ws, "f.txt"), "two\n");
    agent.handle(request("d", "diff", {}));
    expect(Ops.diff.result.parse(await out.result("d"))).toEqual({
      base: "snapshot",
      files: [{ path: "f.txt", status: "modified", binary: false, diff: "--- a/f.txt\n+++ b/f.txt\n@@ -1 +1 @@\n-one\n+two\n" }],
    });
  });

  it("starts and cancels runs; shutdown stops them and their run.exit precedes the reply", async () => {
    const out = new FrameRecorder();
    const agent = newAgent(out);
    agent.handle(request("s1", "run.start", { runId: "r1", command: ["sh", "-c", "cat; echo done"], message: "hi" }));
    expect(await out.result("s1")).toEqual({ pid: expect.any(Number) });
    await waitFor(() => out.of("run.exit", (f) => f.runId === "r1")[0], 10_000, "r1 to exit");
    expect(decode(out.of("run.output", (f) => f.runId === "r1"))).toBe("hidone\n");

    agent.handle(request("s2", "run.start", { runId: "r2", command: ["sleep", "30"] }));
    await out.result("s2");
    agent.handle(request("c1", "run.cancel", { runId: "r2" }));
    expect(await out.result("c1")).toEqual({ cancelled: true });
    await waitFor(() => out.of("run.exit", (f) => f.runId === "r2")[0], 10_000, "r2 to exit");
    agent.handle(request("c2", "run.cancel", { runId: "r2" }));
    expect(await out.result("c2")).toEqual({ cancelled: false });

    agent.handle(request("s3", "run.start", { runId: "r3", command: ["sleep", "30"] }));
    await out.result("s3");
    agent.handle(request("bye", "shutdown", { reason: "stopping" }));
    const reply = await out.reply("bye");
    const exit = out.of("run.exit", (f) => f.runId === "r3")[0];
    expect(exit).toMatchObject({ cancelled: true });
    expect(out.frames.indexOf(exit as AgentFrame)).toBeLessThan(out.frames.indexOf(reply));
    expect(agent.runs.reports().map((r) => [r.runId, r.state])).toEqual([
      ["r1", "exited"],
      ["r2", "exited"],
      ["r3", "exited"],
    ]);

    agent.handle(request("bad", "run.start", { runId: "r4", command: ["outpost-no-such-program-xyz"] }));
    expect(await out.reply("bad")).toMatchObject({ ok: false, error: { code: "exec_failed" } });
  });
});

describe("over a real link", () => {
  const linked: Array<{ link: Link; edge: TestEdge }> = [];
  afterEach(async () => {
    for (const { link, edge } of linked.splice(0)) {
      await Promise.race([link.stop(), sleep(3_000)]);
      await edge.close();
    }
  });

  async function start(onFrame?: (frame: Frame, conn: { ws: { terminate(): void } }) => void) {
    const edge = await TestEdge.start({ onFrame: onFrame ? (f, conn) => onFrame(f, conn) : undefined });
    const token = agentToken();
    const endpoint = connectEndpoint(edge.url, token);
    if (!endpoint.ok) throw new Error(endpoint.error);
    let agent: Agent | null = null;
    const link = new Link({
      url: endpoint.url,
      token,
      hello: () => helloFrame("0.0.0", ws, { runs: agent?.runs.reports() ?? [] }),
      backoff: { baseMs: 5, maxMs: 40 },
    });
    agent = newAgent(link);
    const a = agent;
    link.onFrame = (f) => a.handle(f);
    linked.push({ link, edge });
    link.start();
    await edge.frame(0, (f) => f.kind === "hello");
    return { edge, agent: a };
  }

  it("streams exec output beyond the initial credit, in order, then the reply", async () => {
    const { edge } = await start();
    const total = (INITIAL_CREDIT + 8) * CHUNK_BYTES;
    edge.sendReliable(request("big", "exec", { command: ["sh", "-c", `head -c ${total} /dev/zero | tr '\\000' z`], stream: true }, 30_000));
    const reply = await edge.until(() => edge.deliveredOf("reply", "big")[0], 30_000, "the reply");
    expect(reply).toMatchObject({ ok: true, result: { exitCode: 0, stdout: "" } });
    const chunks = edge.deliveredOf("chunk", "big") as Array<{ n: number; data: string; stream: string }>;
    expect(chunks.map((c) => c.n)).toEqual([...chunks.keys()]);
    expect(chunks.length).toBeGreaterThan(INITIAL_CREDIT);
    expect(decode(chunks)).toBe("z".repeat(total));
    expect(edge.delivered.indexOf(reply)).toBeGreaterThan(edge.delivered.indexOf(chunks.at(-1) as Frame));
  });

  it("a run outlives a dropped link: hello lists it and its output and exit arrive once, in order", async () => {
    const marker = path.join(base.dir, "go-on");
    let dropped = false;
    const { edge } = await start((frame, conn) => {
      if (frame.kind === "run.output" && !dropped) {
        dropped = true;
        conn.ws.terminate();
      }
    });
    const script = `echo before; while [ ! -f ${marker} ]; do sleep 0.02; done; echo after; exit 4`;
    edge.sendReliable(request("start", "run.start", { runId: "survivor", command: ["sh", "-c", script] }));
    await edge.until(() => dropped, 10_000, "the first run.output (the link is cut there)");
    await writeFile(marker, "");
    const exit = await edge.until(() => edge.delivered.find((f) => f.kind === "run.exit"), 15_000, "run.exit");
    expect(exit).toMatchObject({ runId: "survivor", exitCode: 4 });
    const outputs = edge.delivered.filter((f) => f.kind === "run.output") as Array<{ n: number; data: string }>;
    expect(outputs.map((o) => o.n)).toEqual([...outputs.keys()]);
    expect(decode(outputs)).toBe("before\nafter\n");
    expect(edge.delivered.filter((f) => f.kind === "run.exit")).toHaveLength(1);
    // The reconnect's hello told the edge about the run.
    const hellos = edge.connections.slice(1).map((c) => c.frames.find((f) => f.kind === "hello"));
    expect(hellos[0]).toMatchObject({ runs: [{ runId: "survivor", pid: expect.any(Number) }] });
    expect(await readFile(marker, "utf8")).toBe("");
  });
});
