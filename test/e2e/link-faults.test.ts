/**
 * The lossless link, end to end: real agents reach the real control plane through a TCP proxy that
 * cuts, blackholes and refuses the link. What must hold: the link comes back by itself, half-open
 * links are noticed on both sides, and nothing in a stream is lost or delivered twice.
 */
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ExecStreamLine } from "@outpost/protocol";
import { startTcpProxy, type TcpProxy } from "../../scripts/lib/tcp-proxy.js";
import { sleep } from "../../scripts/lib/wait.js";
import { connectAgent, startEnvironment } from "./environments.js";
import { startHarness, unlessExited, waitFor, type Harness } from "./helpers.js";

let h: Harness;
let proxy: TcpProxy;
beforeAll(async () => {
  h = await startHarness();
  proxy = await startTcpProxy(h.port);
});
afterAll(async () => {
  await proxy?.close();
  await h?.close();
});

/** An environment whose agent dials through the proxy, with short heartbeats so faults show fast. */
function throughProxy(name: string, lifecycle: Record<string, unknown> = {}, extraArgs: string[] = [], env?: NodeJS.ProcessEnv) {
  return startEnvironment(h, name, { create: { lifecycle: { heartbeatMs: 300, idleCheckMs: 1000, graceMs: 60_000, ...lifecycle } }, agent: { url: `http://127.0.0.1:${proxy.port}`, extraArgs, env } });
}

async function events(id: string): Promise<Array<{ seq: number; type: string; data: Record<string, unknown> }>> {
  const res = await h.admin.request("GET", `/v1/environments/${id}/events?limit=1000`);
  return ((await res.json()) as { events: Array<{ seq: number; type: string; data: Record<string, unknown> }> }).events;
}

/** Reads an ndjson exec stream to its end. */
async function ndjson(res: Response): Promise<ExecStreamLine[]> {
  const text = await res.text();
  return text.trim().split("\n").map((l) => JSON.parse(l) as ExecStreamLine);
}

describe("faults on the agent link", () => {
  it("a cut link comes back by itself and serves again", async () => {
    const { id, agent } = await throughProxy("cut");
    const accepted = proxy.accepted;
    proxy.cut();
    await waitFor(() => proxy.accepted > accepted, { timeoutMs: 15_000, what: "the agent to dial again", failIf: unlessExited(agent) });
    await h.admin.waitForEnvironment(id, (e) => e.state === "running" && e.connected, { timeoutMs: 15_000, failIf: unlessExited(agent) });
    expect((await h.admin.exec(id, { command: ["echo", "back"] })).stdout).toBe("back\n");
  });

  it("a half-open link is noticed by the agent (pong deadline) and by the edge (alarm), and heals", async () => {
    const { id, agent } = await throughProxy("halfopen");
    const accepted = proxy.accepted;
    proxy.blackhole(true);
    // The edge: no ping for three intervals → disconnected at the next link check.
    await h.admin.waitForEnvironment(id, "disconnected", { timeoutMs: 15_000, failIf: unlessExited(agent) });
    // The agent: no pong in time → it drops the socket and dials again (through the same proxy).
    await waitFor(() => proxy.accepted > accepted, { timeoutMs: 15_000, what: "the agent to give up the silent link", failIf: unlessExited(agent) });
    proxy.blackhole(false);
    proxy.cut(); // whatever is half-way through the black hole
    await h.admin.waitForEnvironment(id, (e) => e.state === "running" && e.connected, { timeoutMs: 30_000, failIf: unlessExited(agent) });
  });

  it("10,000 numbered lines stream through repeated cuts, each exactly once and in order", async () => {
    const { id, agent } = await throughProxy("stream");
    const script = "let i=0;const t=setInterval(()=>{for(let k=0;k<25;k++){if(++i>10000){clearInterval(t);return;}process.stdout.write(i+'\\n')}},2)";
    const res = await h.admin.request("POST", `/v1/environments/${id}/exec`, {
      json: { command: [process.execPath, "-e", script], timeoutMs: 120_000 },
      headers: { accept: "application/x-ndjson" },
      timeoutMs: 150_000,
    });
    expect(res.status).toBe(200);
    const reading = ndjson(res);
    for (let i = 0; i < 4; i++) {
      await sleep(150);
      proxy.cut();
    }
    const lines = await reading;
    expect(lines[0]?.type).toBe("started");
    expect(lines.at(-1)).toMatchObject({ type: "exit", exitCode: 0 });
    const text = lines.filter((l) => l.type === "stdout").map((l) => (l as { data: string }).data).join("");
    const numbers = text.trim().split("\n").map(Number);
    expect(numbers.length).toBe(10_000);
    expect(numbers.every((n, i) => n === i + 1)).toBe(true);
    expect(agent.exit).toBeNull();
  });

  it("a run survives a 5-second disconnect; its output arrives once each, in order", async () => {
    const { id, agent } = await throughProxy("run");
    const created = await h.admin.request("POST", `/v1/environments/${id}/runs`, { json: { agent: { command: ["sh", "-c", "for i in $(seq 1 16); do echo line-$i; sleep 0.5; done"] } } });
    expect(created.status).toBe(201);
    const runId = ((await created.json()) as { run: { id: string } }).run.id;
    await waitFor(async () => ((await (await h.admin.request("GET", `/v1/runs/${runId}`)).json()) as { run: { state: string } }).run.state === "running", { timeoutMs: 10_000, what: "the run to start" });
    await sleep(1000);
    proxy.refuse(true);
    proxy.cut();
    await sleep(5000);
    const during = ((await (await h.admin.request("GET", `/v1/runs/${runId}`)).json()) as { run: { state: string } }).run.state;
    expect(during).toBe("running");
    proxy.refuse(false);
    const run = await waitFor(
      async () => {
        const r = ((await (await h.admin.request("GET", `/v1/runs/${runId}`)).json()) as { run: { state: string; exitCode: number | null } }).run;
        return r.state === "succeeded" || r.state === "failed" || r.state === "lost" ? r : null;
      },
      { timeoutMs: 40_000, what: "the run to finish", failIf: unlessExited(agent) },
    );
    expect(run).toMatchObject({ state: "succeeded", exitCode: 0 });
    const text = (await events(id)).filter((e) => e.type === "run.output" && e.data.runId === runId).map((e) => e.data.text as string).join("");
    expect(text.trim().split("\n")).toEqual(Array.from({ length: 16 }, (_, i) => `line-${i + 1}`));
  });

  it("cancel from the caller kills the command's whole process group", async () => {
    const { id } = await throughProxy("cancel");
    const marker = `${Math.floor(Math.random() * 1e6) + 1000}.5`;
    const res = await h.admin.request("POST", `/v1/environments/${id}/exec`, {
      json: { command: ["sh", "-c", `sleep ${marker} & sleep ${marker} & echo ready; wait`], timeoutMs: 60_000 },
      headers: { accept: "application/x-ndjson" },
    });
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let seen = "";
    while (!seen.includes("ready")) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += decoder.decode(value, { stream: true });
    }
    const execId = (JSON.parse(seen.split("\n")[0]!) as { execId: string }).execId;
    const sleepers = () => execFileSync("pgrep", ["-f", `^sleep ${marker}`], { encoding: "utf8" }).trim().split("\n").filter(Boolean);
    expect(sleepers()).toHaveLength(2);
    expect((await h.admin.request("POST", `/v1/environments/${id}/exec/${execId}/cancel`)).status).toBe(200);
    let rest = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += decoder.decode(value, { stream: true });
    }
    const last = JSON.parse(rest.trim().split("\n").at(-1)!) as ExecStreamLine;
    expect(last).toMatchObject({ type: "exit", cancelled: true });
    await waitFor(() => {
      try {
        return sleepers().length === 0;
      } catch {
        return true; // pgrep exits 1 when nothing matches
      }
    }, { timeoutMs: 10_000, what: "every process of the group to be gone" });
  });

  it("an agent restarted with its state file reattaches to the same environment", async () => {
    const { id, agent, agentToken, parent, workspace } = await throughProxy("state", {}, ["--state-file", join(h.dir, "state-agent.json")]);
    expect((await h.admin.exec(id, { command: ["echo", "one"] })).stdout).toBe("one\n");
    await agent.stop("SIGTERM", 5_000);
    expect(agent.exit?.code).toBe(0);
    await h.admin.waitForEnvironment(id, (e) => !e.connected, { timeoutMs: 15_000 });
    await connectAgent(h, id, agentToken, workspace, { agent: { url: `http://127.0.0.1:${proxy.port}`, extraArgs: ["--state-file", join(h.dir, "state-agent.json")] } });
    expect((await h.admin.exec(id, { command: ["echo", "two"] })).stdout).toBe("two\n");
    expect(parent.length).toBeGreaterThan(0);
  });
});

describe("large files", () => {
  it("200 MB round-trips with an equal checksum while the agent's memory stays bounded", async () => {
    // A 48 MB heap: an agent that held the file (or an unbounded queue of it) would die here.
    const { id, agent } = await throughProxy("big", {}, [], { NODE_OPTIONS: "--max-old-space-size=48" });
    const size = 200 * 1024 * 1024;
    const block = createHash("sha256").update("outpost").digest(); // 32 bytes, repeated with a counter
    const source = () => {
      let sent = 0;
      const hash = createHash("sha256");
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent >= size) return controller.close();
          const n = Math.min(1024 * 1024, size - sent);
          const chunk = Buffer.alloc(n);
          for (let o = 0; o < n; o += 32) {
            block.copy(chunk, o, 0, Math.min(32, n - o));
            chunk.writeUInt32LE((sent + o) >>> 5, o);
          }
          sent += n;
          hash.update(chunk);
          controller.enqueue(chunk);
        },
      });
      return { stream, digest: () => hash.digest("hex") };
    };
    const up = source();
    const put = await h.admin.request("PUT", `/v1/environments/${id}/files?path=big.bin`, {
      body: up.stream,
      headers: { "content-length": String(size), "content-type": "application/octet-stream" },
      timeoutMs: 300_000,
    });
    expect(put.status, await put.clone().text()).toBe(200);
    const got = await h.admin.request("GET", `/v1/environments/${id}/files?path=big.bin`, { timeoutMs: 300_000 });
    expect(got.status).toBe(200);
    const down = createHash("sha256");
    let received = 0;
    for await (const chunk of got.body as unknown as AsyncIterable<Uint8Array>) {
      down.update(chunk);
      received += chunk.length;
    }
    expect(received).toBe(size);
    expect(down.digest("hex")).toBe(up.digest());
    expect(agent.exit).toBeNull(); // alive: the transfer never needed more than its small heap
    // Its peak resident memory over the whole transfer (Linux) stayed below the file's size.
    const status = execFileSync("cat", [`/proc/${agent.pid}/status`], { encoding: "utf8" });
    const hwmKb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
    expect(hwmKb).toBeGreaterThan(0);
    expect(hwmKb * 1024).toBeLessThan(size);
  });
});
