/**
 * Faults under real agents and the real Worker: agents killed with SIGKILL in the middle of an exec
 * and of a run, the control plane killed and restarted over its persisted state mid-stream, the
 * agent's TCP link delayed, blackholed and cut, a full disk in the workspace, and a watcher that
 * never reads. Each test asserts the documented outcome and counts what was lost (by sequence).
 */
import { execFileSync } from "node:child_process";
import { mkdir, readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { Client, EventStreamClosed, type EventStream, type WebSocketLike } from "@outpost/client";
import { CLOSE, resumeCursor, WATCH_WINDOW, type EnvironmentEvent } from "@outpost/protocol";
import { startTcpProxy, type TcpProxy } from "../../scripts/lib/tcp-proxy.js";
import { sleep } from "../../scripts/lib/wait.js";
import { connectAgent, type AgentExtras } from "../e2e/environments.js";
import { exitWithin, startHarness, unlessExited, waitFor, type Harness } from "../e2e/helpers.js";
import { Figures, FULL } from "./lib/figures.js";
import { LineReader, numbered } from "./lib/lines.js";
import { openSocket, type RawSocket } from "./lib/socket.js";
import { limitedDisk, type LimitedDisk } from "./lib/small-disk.js";

const figures = new Figures("faults");
let h: Harness;
let proxy: TcpProxy;
beforeAll(async () => {
  h = await startHarness();
  proxy = await startTcpProxy(h.port);
});
afterAll(async () => {
  figures.write();
  await proxy?.close();
  await h?.close();
});

const FAST = { heartbeatMs: 400, idleCheckMs: 1000, graceMs: 60_000 };

async function environment(name: string, o: { lifecycle?: Record<string, unknown>; viaProxy?: boolean; workspace?: string; wrapper?: string[] } = {}) {
  const created = await h.admin.createEnvironment({ name, provider: "local", lifecycle: { ...FAST, ...o.lifecycle } });
  const id = created.environment.id;
  const workspace = o.workspace ?? (await h.workspace()).workspace;
  // Its own state file, so that an agent started again (start()) resumes as the one before it.
  const extras: AgentExtras = { ...(o.viaProxy ? { url: `http://127.0.0.1:${proxy.port}` } : {}), ...(o.wrapper ? { wrapper: o.wrapper } : {}), extraArgs: ["--state-file", join(h.dir, `${name}.state.json`)] };
  const start = () => h.agent({ ...extras, token: created.agentToken, workspace });
  const { agent } = await connectAgent(h, id, created.agentToken, workspace, { agent: extras });
  return { id, agent, workspace, start };
}

async function allEvents(id: string): Promise<EnvironmentEvent[]> {
  const out: EnvironmentEvent[] = [];
  for (let after = 0; ; ) {
    const page = (await (await h.admin.request("GET", `/v1/environments/${id}/events?after=${after}&limit=1000`)).json()) as { events: EnvironmentEvent[]; next: number };
    out.push(...page.events);
    if (page.events.length < 1000) return out;
    after = page.next;
  }
}

async function run(runId: string): Promise<{ state: string; exitCode: number | null; error?: string | null }> {
  return ((await (await h.admin.request("GET", `/v1/runs/${runId}`)).json()) as { run: { state: string; exitCode: number | null; error?: string | null } }).run;
}

async function startRun(id: string, script: string): Promise<string> {
  const res = await h.admin.request("POST", `/v1/environments/${id}/runs`, { json: { agent: { command: ["sh", "-c", script] } } });
  expect(res.status, await res.clone().text()).toBe(201);
  return ((await res.json()) as { run: { id: string } }).run.id;
}

function runText(events: EnvironmentEvent[], runId: string): string {
  return events.filter((e) => e.type === "run.output" && e.data.runId === runId).map((e) => e.data.text as string).join("");
}

/** Kills whatever still runs a command line containing `marker` (processes an agent killed with SIGKILL leaves behind). */
function killMarked(marker: string): number {
  let pids: string[] = [];
  try {
    pids = execFileSync("pgrep", ["-f", marker], { encoding: "utf8" }).trim().split("\n").filter(Boolean);
  } catch {
    return 0; // none
  }
  for (const p of pids) {
    try {
      process.kill(Number(p), "SIGKILL");
    } catch {
      // gone
    }
  }
  return pids.length;
}

describe("an agent killed with SIGKILL", () => {
  it("mid-exec: the exec ends with a clean error when another agent process takes over, or by its timeout when none does", async () => {
    const e = await environment("kill-exec");
    const marker = `${Math.floor(Math.random() * 1e6) + 1000}.25`;
    const res = await h.admin.request("POST", `/v1/environments/${e.id}/exec`, {
      json: { command: ["sh", "-c", `echo started; sleep ${marker}`], timeoutMs: 60_000 },
      headers: { accept: "application/x-ndjson" },
      timeoutMs: 90_000,
    });
    const stream = new LineReader(res);
    await stream.until(() => stream.stdout().includes("started"));
    e.agent.kill();
    await exitWithin(e.agent);
    const again = e.start();
    const lines = await stream.rest(60_000);
    expect(lines.at(-1)).toMatchObject({ type: "error", code: "agent_error" });
    await h.admin.waitForEnvironment(e.id, (x) => x.state === "running" && x.connected, { timeoutMs: 30_000, failIf: unlessExited(again) });
    expect((await h.admin.exec(e.id, { command: ["echo", "after"] })).stdout).toBe("after\n");
    // The new agent process killed the exec's process group, left running by the killed one, before it connected.
    const orphans = killMarked(`sleep ${marker}`);
    expect(orphans).toBe(0);

    // No agent comes back: a plain exec ends by its own timeout (504) or when the environment gives up (409).
    const lonely = await environment("kill-exec-lonely", { lifecycle: { graceMs: 2_000, restart: { policy: "never" } } });
    const pending = h.admin.request("POST", `/v1/environments/${lonely.id}/exec`, { json: { command: ["sleep", "20"], timeoutMs: 5_000 }, timeoutMs: 60_000 });
    await sleep(500);
    lonely.agent.kill();
    const answer = await pending;
    expect([409, 504]).toContain(answer.status);
    expect(answer.headers.get("content-type")).toMatch(/problem\+json/);
    const state = (await h.admin.waitForEnvironment(lonely.id, (x) => x.state === "unconnectable", { timeoutMs: 30_000 })).state;
    figures.add({ section: "faults", name: "agent SIGKILLed mid-exec (then another process takes over / none does)", faults: 2, cases: 2, lost: 0, outcomes: { [`stream: error ${(lines.at(-1) as { code?: string }).code}`]: 1, [`plain exec: ${answer.status}`]: 1, [`environment: ${state}`]: 1 }, measured: { "commands still running after the restart (the new agent kills them)": orphans } });
  });

  it("mid-run: the run is marked lost, the output it sent arrived once each and in order", async () => {
    const kills = FULL ? 3 : 1;
    let orphans = 0;
    let lostRuns = 0;
    let missingOrDup = 0;
    let linesSeen = 0;
    const e = await environment("kill-run");
    const tag = `kill-run-${process.pid}-${Date.now()}`; // names this test's commands for pgrep, apart from any other run's
    let agent = e.agent;
    for (let k = 0; k < kills; k++) {
      const runId = await startRun(e.id, `: ${tag}; for i in $(seq 400); do echo k${k}-$i; sleep 0.02; done`);
      await waitFor(async () => runText(await allEvents(e.id), runId).includes(`k${k}-20\n`), { timeoutMs: 30_000, what: "20 lines of the run" });
      agent.kill();
      await exitWithin(agent);
      agent = e.start();
      const final = await waitFor(async () => {
        const r = await run(runId);
        return ["succeeded", "failed", "lost", "cancelled"].includes(r.state) ? r : null;
      }, { timeoutMs: 30_000, what: "the run to be settled", failIf: unlessExited(agent) });
      expect(final.state).toBe("lost");
      lostRuns++;
      const text = runText(await allEvents(e.id), runId);
      const n = numbered(text, `k${k}`, 400);
      // What arrived is a prefix of 1..400 with no duplicate: the tail died with the agent.
      expect(n.duplicated).toBe(0);
      expect(n.outOfOrder).toBe(0);
      expect(n.got).toBeGreaterThanOrEqual(20);
      expect(n.missing).toBe(400 - n.got);
      missingOrDup += n.duplicated + n.outOfOrder;
      linesSeen += n.got;
      orphans += killMarked(tag);
    }
    await h.admin.waitForEnvironment(e.id, (x) => x.state === "running" && x.connected, { timeoutMs: 30_000, failIf: unlessExited(agent) });
    expect(orphans).toBe(0); // each run's process group was killed by the next agent process
    figures.add({ section: "faults", name: "agent SIGKILLed mid-run, a new agent process started", faults: kills, cases: kills, lost: missingOrDup, outcomes: { "run lost": lostRuns }, measured: { "run lines delivered before the kill (prefix, no gap, no duplicate)": linesSeen, "run commands still running after the restart": orphans } });
  });
});

describe("the control plane killed with SIGKILL and restarted over its persisted state", () => {
  it("mid-stream: run output and the event stream lose nothing and repeat nothing (checked by sequence)", async () => {
    const e = await environment("cp-crash");
    const total = FULL ? 600 : 250;
    const crashes = FULL ? 3 : 1;
    const runId = await startRun(e.id, `for i in $(seq 1 ${total}); do echo line-$i; sleep 0.03; done`);
    const url = `${h.cp.url}/v1/environments/${e.id}/events/stream`;
    const seen: EnvironmentEvent[] = [];
    const watch = async (after: number): Promise<RawSocket> => {
      const s = await openSocket(`${url}?after=${after}`, h.admin.token);
      s.ws.on("message", (d) => void seen.push((JSON.parse(d.toString()) as { event: EnvironmentEvent }).event));
      return s;
    };
    let watcher = await watch(0);
    for (let c = 0; c < crashes; c++) {
      const before = seen.length;
      await waitFor(() => seen.length > before + 20, { timeoutMs: 30_000, what: "more run output to stream", failIf: unlessExited(e.agent) });
      await h.restart({ crash: true });
      await watcher.closed;
      watcher = await watch(seen.at(-1)?.seq ?? 0);
    }
    const final = await waitFor(async () => {
      const r = await run(runId);
      return ["succeeded", "failed", "lost", "cancelled"].includes(r.state) ? r : null;
    }, { timeoutMs: 90_000, what: "the run to finish", failIf: unlessExited(e.agent) });
    expect(final).toMatchObject({ state: "succeeded", exitCode: 0 });
    const events = await allEvents(e.id);
    await waitFor(() => (seen.at(-1)?.seq ?? 0) >= (events.at(-1)?.seq ?? 0), { timeoutMs: 15_000, what: "the watcher to catch up" });
    watcher.ws.close();
    // The log: every line once, in order; seqs strictly increasing with no duplicate.
    const n = numbered(runText(events, runId), "line", total);
    expect(n).toMatchObject({ missing: 0, duplicated: 0, outOfOrder: 0 });
    const seqs = events.map((x) => x.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
    // The watcher, across reconnects with its cursor: exactly the log (no gap, no duplicate).
    const watched = seen.map((x) => x.seq);
    const fromLog = events.filter((x) => x.seq >= (watched[0] ?? 0)).map((x) => x.seq);
    expect(watched).toEqual(fromLog);
    expect(e.agent.exit).toBeNull();
    figures.add({
      section: "faults",
      name: "control plane SIGKILLed and restarted mid-run, watcher resuming by cursor",
      faults: crashes,
      cases: total,
      lost: n.missing + n.duplicated + n.outOfOrder + (watched.length - new Set(watched).size),
      measured: { "run lines": total, "events watched": watched.length },
    });
  });
});

describe("the agent's TCP link delayed, blackholed and cut", () => {
  it("a streamed exec delivers every line once and in order through all of them", async () => {
    const e = await environment("link-chaos", { viaProxy: true });
    const total = FULL ? 20_000 : 5_000;
    const script = `let i=0;const t=setInterval(()=>{for(let k=0;k<20;k++){if(++i>${total}){clearInterval(t);return;}process.stdout.write('n-'+i+'\\n')}},2)`;
    const res = await h.admin.request("POST", `/v1/environments/${e.id}/exec`, {
      json: { command: [process.execPath, "-e", script], timeoutMs: 240_000 },
      headers: { accept: "application/x-ndjson" },
      timeoutMs: 300_000,
    });
    const stream = new LineReader(res);
    const reading = stream.rest(280_000);
    let faults = 0;
    const rounds = FULL ? 4 : 1;
    for (let r = 0; r < rounds && !stream.done; r++) {
      proxy.delay(150);
      await sleep(800);
      proxy.delay(0);
      proxy.blackhole(true);
      await sleep(1_500);
      proxy.blackhole(false);
      proxy.cut();
      await sleep(400);
      proxy.cut();
      faults += 4;
    }
    const lines = await reading;
    expect(lines.at(-1)).toMatchObject({ type: "exit", exitCode: 0 });
    const n = numbered(stream.stdout(), "n", total);
    expect(n).toMatchObject({ missing: 0, duplicated: 0, outOfOrder: 0 });
    expect(e.agent.exit).toBeNull();
    figures.add({ section: "faults", name: "TCP link delayed 150 ms, blackholed 1.5 s, cut twice, during a streamed exec", faults, cases: total, lost: n.missing + n.duplicated + n.outOfOrder, measured: { "proxy connections accepted": proxy.accepted } });
  });
});

describe("a full disk in the workspace", () => {
  let disk: LimitedDisk | null = null;
  afterAll(async () => {
    await disk?.release();
  });

  it("an upload that does not fit is refused clearly (507), leaves no half-written file, and the old file is intact", async (ctx) => {
    try {
      disk = await limitedDisk(join(h.dir, "small-disk"), 2 * 1024 * 1024);
    } catch (err) {
      // Never silent: the reason is printed and the case is reported as skipped.
      console.warn(`full-disk case skipped: ${err instanceof Error ? err.message : String(err)}`);
      return ctx.skip();
    }
    const e = await environment("full-disk", { workspace: disk.workspace, ...(disk.agentWrapper ? { wrapper: disk.agentWrapper } : {}) });
    await h.admin.writeFile(e.id, "kept.txt", "original\n");
    const big = new Uint8Array(4 * 1024 * 1024).fill(7);
    const cases: Array<[string, string]> = [
      ["new.bin", "a new file"],
      ["kept.txt", "over an existing file"],
    ];
    const outcomes: Record<string, number> = {};
    for (const [path] of cases) {
      const res = await h.admin.request("PUT", `/v1/environments/${e.id}/files?path=${path}`, { body: big, headers: { "content-type": "application/octet-stream" }, timeoutMs: 60_000 });
      const text = await res.text();
      outcomes[`${path}: ${res.status}`] = 1;
      expect(res.status, text).toBe(507);
      expect(res.headers.get("content-type")).toMatch(/problem\+json/);
      expect((JSON.parse(text) as { code: string }).code).toBe("no_space");
    }
    // No temp file, no partial new.bin, the old kept.txt untouched.
    const left = await readdir(disk.workspace);
    expect(left.filter((f) => f.includes("outpost-tmp") || f === "new.bin")).toEqual([]);
    expect(await readFile(join(disk.workspace, "kept.txt"), "utf8")).toBe("original\n");
    // A command that fills the disk fails with its own error, and the disk is usable again afterwards.
    const dd = await h.admin.exec(e.id, { command: ["sh", "-c", "head -c 8388608 /dev/zero > fill.bin; echo $?; rm -f fill.bin"] });
    expect(dd.stdout.trim()).not.toBe("0");
    await h.admin.writeFile(e.id, "small.txt", "fits\n");
    expect((await h.admin.readFile(e.id, "small.txt")).toString()).toBe("fits\n");
    figures.add({ section: "faults", name: `full disk in the workspace (${disk.how})`, faults: 3, cases: 4, lost: 0, outcomes });
  });
});

describe("a watcher that never reads", () => {
  it("is closed as a slow consumer after its window (the object sends it no more), while a watcher that acks gets every event once across its own slow-consumer closes", async () => {
    const e = await environment("slow-watcher");
    const url = `${h.cp.url}/v1/environments/${e.id}/events/stream`;
    const top0 = (await allEvents(e.id)).at(-1)?.seq ?? 0;
    // Stops reading at once: the kernel's buffers fill, and whatever else the object sends it would pile up.
    const stuck = await openSocket(`${url}?after=${top0}&window=${WATCH_WINDOW.events}`, h.admin.token);
    (stuck.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    // A legacy watcher (asks for no window, never acks) that reads: cut off after a window, it resumes by cursor.
    const legacySeqs: number[] = [];
    let legacyCloses = 0;
    let legacy = await openSocket(`${url}?after=${top0}`, h.admin.token);
    const followLegacy = (s: RawSocket) => s.ws.on("message", (d) => void legacySeqs.push((JSON.parse(d.toString()) as { event: { seq: number } }).event.seq));
    followLegacy(legacy);
    // A well-behaved watcher: the client library, which acks as it consumes and resumes from its cursor.
    const client = new Client(h.cp.url, h.admin.token, { webSocket: (u, headers) => new WebSocket(u, { headers }) as unknown as WebSocketLike });
    const healthySeqs: number[] = [];
    let healthyCloses = 0;
    let stopHealthy = false;
    let stream: EventStream | null = null;
    const following = (async () => {
      for (let attempt = 0; attempt < 50 && !stopHealthy; attempt++) {
        try {
          stream = await client.streamEvents(e.id, { after: healthySeqs.at(-1) ?? top0 });
          for await (const ev of stream) {
            healthySeqs.push(ev.seq);
            if (healthySeqs.length % 200 === 0) await sleep(150); // slower than the run, now and then
          }
          return;
        } catch (err) {
          if (!(err instanceof EventStreamClosed) || err.code !== CLOSE.slowConsumer) throw err;
          healthyCloses++;
        }
      }
    })();
    following.catch(() => undefined); // awaited below; a failure meanwhile is not an unhandled rejection
    const lines = FULL ? 4000 : 1500;
    const pad = "x".repeat(1000);
    const runId = await startRun(e.id, `i=0; while [ $i -lt ${lines} ]; do i=$((i+1)); echo "w-$i ${pad}"; done`);
    const final = await waitFor(async () => {
      const r = await run(runId);
      if (legacy.closeFrame()?.code === CLOSE.slowConsumer) {
        legacyCloses++;
        legacy.ws.terminate();
        legacy = await openSocket(`${url}?after=${legacySeqs.at(-1) ?? top0}`, h.admin.token);
        followLegacy(legacy);
      }
      return ["succeeded", "failed", "lost"].includes(r.state) ? r : null;
    }, { timeoutMs: 120_000, intervalMs: 100, what: "the run to finish" });
    expect(final.state).toBe("succeeded");
    const events = (await allEvents(e.id)).filter((x) => x.seq > top0);
    const last = events.at(-1)!.seq;
    await waitFor(async () => {
      if (legacy.closeFrame()?.code === CLOSE.slowConsumer) {
        legacyCloses++;
        legacy.ws.terminate();
        legacy = await openSocket(`${url}?after=${legacySeqs.at(-1) ?? top0}`, h.admin.token);
        followLegacy(legacy);
      }
      return (healthySeqs.at(-1) ?? 0) >= last && (legacySeqs.at(-1) ?? 0) >= last;
    }, { timeoutMs: 60_000, intervalMs: 100, what: () => `the watchers to see every event (healthy at ${healthySeqs.at(-1)}, legacy at ${legacySeqs.at(-1)}, last ${last})` });
    stopHealthy = true;
    (stream as EventStream | null)?.close();
    await following;
    legacy.ws.close();
    const expected = events.map((x) => x.seq);
    expect(healthySeqs).toEqual(expected);
    expect(legacySeqs).toEqual(expected);
    // The object answers promptly meanwhile.
    const t0 = Date.now();
    expect((await h.admin.exec(e.id, { command: ["true"] })).exitCode).toBe(0);
    const execMs = Date.now() - t0;
    // Now the stuck watcher reads what was sent to it: at most a window, then the slow-consumer close naming its cursor.
    (stuck.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    // ws reports the close only once the TCP connection ends; the close frame's code and reason are known as soon as it arrives.
    const wsState = stuck.ws as unknown as { _closeFrameReceived: boolean; _closeCode: number; _closeMessage: Buffer };
    await waitFor(() => wsState._closeFrameReceived || stuck.close !== null, { timeoutMs: 30_000, intervalMs: 50, what: () => `the stuck watcher's close (read ${stuck.frames.length} frames)` });
    const closed = stuck.close ?? { code: wsState._closeCode, reason: wsState._closeMessage.toString() };
    expect(closed.code).toBe(CLOSE.slowConsumer);
    expect(resumeCursor(closed.reason)).toBe(top0);
    const stuckBytes = stuck.frames.reduce((n, f) => n + f.length, 0);
    expect(stuck.frames.length).toBeLessThanOrEqual(WATCH_WINDOW.events);
    expect(stuckBytes).toBeLessThanOrEqual(WATCH_WINDOW.bytes + 2048);
    expect(stuck.frames.map((f) => (JSON.parse(f) as { event: { seq: number } }).event.seq)).toEqual(expected.slice(0, stuck.frames.length));
    stuck.ws.terminate();
    const lost = expected.length * 2 - healthySeqs.length - legacySeqs.length;
    figures.add({
      section: "faults",
      name: "a watcher that never reads beside an acking one and a legacy one, during a run of ~1 KB lines",
      faults: 1 + healthyCloses + legacyCloses,
      cases: lines,
      lost,
      outcomes: { [`stuck watcher: closed ${closed.code}`]: 1, "acking watcher: slow-consumer closes, resumed": healthyCloses, "legacy watcher: closes after a window, resumed": legacyCloses },
      measured: { events: events.length, "events the object sent the stuck watcher": stuck.frames.length, "bytes the object sent the stuck watcher": stuckBytes, "exec round trip afterwards (ms)": execMs },
    });
  });
});
