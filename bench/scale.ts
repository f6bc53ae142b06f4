/**
 * 3. Scale and 4. reconnect storm, on a control plane of their own.
 *
 * Scale: N environments (1,000; 50 with --quick) are created over HTTP with bounded concurrency,
 * then N agents connect at once from one fleet process (bench/fleet.ts: the provider-agent's own
 * Link and Agent, default heartbeat 10 s and health reports every 5 min). Measured: the time until
 * the API's list `?state=running` counts all N, the control plane's memory (VmRSS of wrangler's
 * workerd processes, summed from /proc) with 0 and N environments connected, its CPU while the N
 * agents sit idle, and the exec round trip under that load beside the raw relay measured meanwhile.
 *
 * Reconnect storm: with the N agents connected and runs printing numbered lines in some of them,
 * wrangler is stopped and started again on the same state and port. Measured: the time until every
 * agent has been welcomed on a new connection and the API lists all N running again; and what was
 * lost: every run's lines must be in its event log exactly once, in order, with no gap; one exec
 * to every environment afterwards must be answered, and every agent's outbox must drain (each
 * frame acknowledged by the edge).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { BACKOFF_DEFAULTS } from "../provider-agent/src/backoff.js";
import type { OutpostClient } from "../scripts/lib/api.js";
import { waitFor } from "../scripts/lib/wait.js";
import type { BenchContext } from "./lib/context.js";
import { PROBE_FILE, type FleetStats } from "./fleet.js";
import { startFleet, type Fleet } from "./lib/fleet-client.js";
import type { BenchControlPlane } from "./lib/harness.js";
import { interleaved, mapLimit, pause } from "./lib/loop.js";
import { cpuMs, memoryBytes, processTree, toMiB } from "./lib/proc.js";
import type { Figure, SectionResult } from "./lib/report.js";
import { percentile, round, summarize } from "./lib/stats.js";
import { workerdProcesses } from "./lib/workerd.js";

/** Environments listed in `state`, over every page. */
async function countInState(client: OutpostClient, state: string): Promise<number> {
  let total = 0;
  let cursor: string | null = null;
  for (let page = 0; page < 100; page++) {
    const res = await client.request("GET", `/v1/environments?state=${state}&limit=500${cursor ? `&cursor=${cursor}` : ""}`, { timeoutMs: 15_000 });
    if (!res.ok) throw new Error(`list ?state=${state}: HTTP ${res.status}`);
    const body = (await res.json()) as { environments: unknown[]; nextCursor: string | null };
    total += body.environments.length;
    cursor = body.nextCursor;
    if (!cursor) break;
  }
  return total;
}

/** Summed VmRSS of the control plane's processes: workerd (both) and all of wrangler's tree. */
function controlPlaneMemory(h: BenchControlPlane): { workerdBytes: number; wranglerTreeBytes: number; workerdAnonBytes: number } {
  let workerdBytes = 0;
  let workerdAnonBytes = 0;
  for (const pid of workerdProcesses(h.cp.pid)) {
    const m = memoryBytes(pid);
    workerdBytes += m?.rss ?? 0;
    workerdAnonBytes += m?.anon ?? 0;
  }
  const wranglerTreeBytes = processTree(h.cp.pid).reduce((a, p) => a + (memoryBytes(p.pid)?.rss ?? 0), 0);
  return { workerdBytes, wranglerTreeBytes, workerdAnonBytes };
}

/** CPU used by the control plane's processes over `ms`, in % of one core. */
async function controlPlaneCpu(h: BenchControlPlane, ms: number): Promise<number> {
  const pids = processTree(h.cp.pid).map((p) => p.pid);
  const before = pids.map((p) => cpuMs(p) ?? 0);
  const t0 = performance.now();
  await pause(ms);
  const used = pids.reduce((a, p, i) => a + ((cpuMs(p) ?? before[i]!) - before[i]!), 0);
  return round((used / (performance.now() - t0)) * 100);
}

interface Storm {
  /** ms from `zero` until every link was open, null when not within the bound. */
  allOpenMs: number | null;
  /** ms from `zero` until every agent had been welcomed, null when not within the bound. */
  allWelcomedMs: number | null;
  /** [ms from `zero`, links open, agents welcomed since `since`] every 500 ms. */
  timeline: Array<[number, number, number]>;
  /** When the agents were welcomed, ms after `zero` (0 for those welcomed before it). */
  welcome: { first: number; p50: number; p90: number; p99: number; max: number } | null;
  /** CPU of the control plane's processes meanwhile, % of one core. */
  cpuPercent: number;
  final: FleetStats;
}

/**
 * Follows the fleet until every agent has been welcomed after `since` (epoch ms: the fleet's start,
 * or the moment the old control plane was gone), or `timeoutMs`; times are reported from `zero`
 * (the fleet's start, or the launch of the new control plane). Never throws: a storm that does not settle is a result too.
 */
async function followStorm(f: Fleet, h: BenchControlPlane, o: { n: number; since: number; zero: number; timeoutMs: number }): Promise<Storm> {
  const pids = processTree(h.cp.pid).map((p) => p.pid);
  const cpu0 = pids.map((p) => cpuMs(p) ?? 0);
  const t0 = Date.now();
  const timeline: Storm["timeline"] = [];
  let allOpenMs: number | null = null;
  let allWelcomedMs: number | null = null;
  let final = await f.stats(o.since);
  while (Date.now() - t0 < o.timeoutMs) {
    final = await f.stats(o.since);
    const at = Date.now() - o.zero;
    timeline.push([at, final.connected, final.welcomedSince]);
    if (allOpenMs === null && final.connected === o.n) allOpenMs = at;
    if (final.welcomedSince === o.n) {
      allWelcomedMs = at;
      break;
    }
    await pause(500);
  }
  const cpu = pids.reduce((a, p, i) => a + ((cpuMs(p) ?? cpu0[i]!) - cpu0[i]!), 0);
  const cpuPercent = round((cpu / Math.max(1, Date.now() - t0)) * 100);
  const rel = ((await f.stats(o.since, true)).welcomeTimes ?? []).map((t) => Math.max(0, t - o.zero));
  const welcome = rel.length ? { first: rel[0]!, p50: percentile(rel, 50), p90: percentile(rel, 90), p99: percentile(rel, 99), max: rel.at(-1)! } : null;
  return { allOpenMs, allWelcomedMs, timeline, welcome, cpuPercent, final };
}

type RunCheck = { runId: string; environmentId: string; lines: number; ok: boolean; problem?: string };

/** Reads a run's output from the event log and checks it is line-1 … line-L, each once, in order. */
async function checkRun(client: OutpostClient, environmentId: string, runId: string, expected: number): Promise<RunCheck> {
  let text = "";
  let after = 0;
  for (let page = 0; page < 50; page++) {
    const res = await client.request("GET", `/v1/environments/${environmentId}/events?after=${after}&limit=1000`);
    const body = (await res.json()) as { events: Array<{ seq: number; type: string; data: { runId?: string; text?: string; stream?: string } }>; next: number };
    for (const e of body.events) if (e.type === "run.output" && e.data.runId === runId && e.data.stream === "stdout") text += e.data.text ?? "";
    if (body.events.length < 1000) break;
    after = body.next;
  }
  const lines = text.split("\n").filter(Boolean);
  const bad = lines.findIndex((l, i) => l !== `line-${i + 1}`);
  const ok = bad === -1 && lines.length === expected;
  return { runId, environmentId, lines: lines.length, ok, ...(ok ? {} : { problem: bad === -1 ? `${lines.length} of ${expected} lines` : `line ${bad + 1} is '${lines[bad]}'` }) };
}

export async function scaleSections(ctx: BenchContext): Promise<SectionResult[]> {
  const t0 = performance.now();
  const n = ctx.environments ?? (ctx.quick ? 50 : 1000);
  const concurrency = 16;
  const h = await ctx.startControlPlane("scale");
  const raw = await ctx.rawRelay();
  let fleet: Fleet | null = null;
  /** What the section was doing, for its error: a failure says where, not only what. */
  let stage = "starting";
  /** The scale figures, once measured: a failure in the reconnect storm does not lose them. */
  let scaleResult: SectionResult | null = null;
  try {
    // ---- 3. Scale -----------------------------------------------------------------------------
    await pause(2_000);
    const memEmpty = controlPlaneMemory(h);
    stage = `creating ${n} environments`;
    ctx.log(`scale: creating ${n} environments over HTTP, ${concurrency} at a time`);
    const createStart = performance.now();
    // No retry: wrangler dev's 503 "Your worker restarted mid-request" had two causes, both fixed (the
    // control plane runs from a copy of the sources; a refused request's body is read), so one now is
    // a regression to see, and wrangler's reload count in the failure says which kind.
    const created = await mapLimit(Array.from({ length: n }, (_, i) => i), concurrency, async (i) => {
      const c = await h.admin.createEnvironment({ name: `fleet-${String(i).padStart(4, "0")}`, provider: "bench" });
      return { id: c.environment.id, token: c.agentToken };
    });
    const createMs = performance.now() - createStart;
    const memCreated = controlPlaneMemory(h);

    const workspaces = h.mkdir("fleet");
    ctx.log(`scale: ${n} environments created in ${Math.round(createMs)} ms; connecting ${n} agents from one fleet process`);
    const connectSince = Date.now();
    stage = `connecting ${n} agents (connect storm)`;
    fleet = await startFleet({ url: h.url, agents: created.map((c, i) => ({ token: c.token, workspace: join(workspaces, `a${i}`) })) }, ctx.dir);
    const f = fleet;
    const connect = await followStorm(f, h, { n, since: connectSince, zero: connectSince, timeoutMs: ctx.quick ? 60_000 : 150_000 });
    // The brief's measure: the API's own list (the D1 index) shows every environment running.
    let lastRunning = 0;
    await waitFor(async () => (lastRunning = await countInState(h.admin, "running")) === n, {
      timeoutMs: 30_000,
      intervalMs: 250,
      what: () => `all ${n} environments to be listed running`,
    }).catch(() => undefined);
    const connectMs = lastRunning === n ? Date.now() - connectSince : null;
    const afterConnect = await f.stats();
    ctx.log(`scale: ${lastRunning} of ${n} listed running after ${Date.now() - connectSince} ms; letting the fleet settle`);
    await pause(ctx.quick ? 3_000 : 10_000);
    const memConnected = controlPlaneMemory(h);
    const idleCpu = await controlPlaneCpu(h, ctx.quick ? 5_000 : 15_000);
    const fleetStats = await f.stats();

    // The round trip itself: a file stat (an exec would also time the fleet process forking `true`,
    // which grows with the fleet's heap and says nothing about the control plane).
    const count = ctx.quick ? 40 : 300;
    stage = "timing the stat round trip under load";
    ctx.log(`scale: stat round trip under load, ${count} sequential calls to random environments, beside the raw relay`);
    writeFileSync(join(raw.workspace, PROBE_FILE), "probe\n");
    const pick = () => created[Math.floor(Math.random() * created.length)]!.id;
    const loadFailures: string[] = [];
    const statOn = (id: () => string) => async () => {
      try {
        const res = await h.admin.request("GET", `/v1/environments/${id()}/files/stat?path=${PROBE_FILE}`);
        const text = await res.text();
        if (res.status !== 200) loadFailures.push(`HTTP ${res.status}: ${text.slice(0, 200)}`);
      } catch (err) {
        loadFailures.push(err instanceof Error ? err.message : String(err));
      }
    };
    const hot = created[0]!.id;
    const underLoad = await interleaved(
      {
        outpost: statOn(pick),
        hot: statOn(() => hot),
        raw: async () => void (await (await fetch(`${raw.url}/files/stat?path=${PROBE_FILE}`)).text()),
      },
      { count, block: 25, maxMs: ctx.quick ? 30_000 : 120_000 },
    );
    const loadSum = { outpost: summarize(underLoad.outpost), hot: summarize(underLoad.hot), raw: summarize(underLoad.raw) };

    const perEnvKiB = Math.round((memConnected.workerdBytes - memEmpty.workerdBytes) / n / 1024);
    const scaleFigures: Figure[] = [
      { section: "scale", name: `environments connected and listed running`, value: lastRunning, unit: `of ${n}`, target: "1,000 on this machine", met: n < 1000 ? null : lastRunning >= 1000 && afterConnect.welcomed >= 1000 },
      { section: "scale", name: `create ${n} environments (HTTP, ${concurrency} at a time)`, value: Math.round(createMs), unit: "ms", note: `${round(n / (createMs / 1000))} per second` },
      { section: "scale", name: `connect storm: ${n} agents at once → all listed running`, value: connectMs, unit: "ms", note: `all links open after ${connect.allOpenMs ?? "n/a"} ms, all welcomed after ${connect.allWelcomedMs ?? "n/a"} ms` },
      { section: "scale", name: `control plane RSS, ${n} connected`, value: toMiB(memConnected.workerdBytes), unit: "MiB", baseline: { name: "same, 0 environments", value: toMiB(memEmpty.workerdBytes) }, note: `≈ ${perEnvKiB} KiB per connected environment` },
      { section: "scale", name: `control plane CPU, ${n} idle agents`, value: idleCpu, unit: "% of a core" },
      { section: "scale", name: `stat round trip p50 under load`, value: loadSum.outpost.p50, unit: "ms", baseline: { name: "raw relay, same time", value: loadSum.raw.p50 }, ratio: round(loadSum.outpost.p50 / loadSum.raw.p50) },
      { section: "scale", name: `stat round trip p99 under load`, value: loadSum.outpost.p99, unit: "ms", baseline: { name: "raw relay, same time", value: loadSum.raw.p99 }, ratio: round(loadSum.outpost.p99 / loadSum.raw.p99) },
      { section: "scale", name: `stat calls under load that failed (error or timeout)`, value: loadFailures.length, unit: `of ${loadSum.outpost.n + loadSum.hot.n}`, target: "0", met: loadFailures.length === 0, note: "a failed call's time is in the percentiles above" },
      { section: "scale", name: `stat round trip p50 under load, one awake environment`, value: loadSum.hot.p50, unit: "ms", baseline: { name: "raw relay, same time", value: loadSum.raw.p50 }, ratio: round(loadSum.hot.p50 / loadSum.raw.p50), note: "profile" },
    ];
    const scaleNotes = [
      `The ${n} agents run in one process (bench/fleet.ts): the provider-agent's own Link and Agent modules, as the CLI wires them (minus the state file and diff base); ${toMiB(fleetStats.rssBytes)} MiB RSS for the whole fleet, ${round(fleetStats.rssBytes / n / 1024)} KiB per agent.`,
      `Control plane memory is VmRSS summed over wrangler's two workerd processes (its proxy and the Worker with its Durable Objects): ${toMiB(memEmpty.workerdBytes)} MiB with no environment, ${toMiB(memCreated.workerdBytes)} MiB after creating ${n}, ${toMiB(memConnected.workerdBytes)} MiB with ${n} agents connected (private: ${toMiB(memConnected.workerdAnonBytes)} MiB); wrangler's whole process tree: ${toMiB(memConnected.wranglerTreeBytes)} MiB.`,
      `Round trip under load: ${loadSum.outpost.n} sequential file stats (the request of section 1 that does no work) sent to environments picked at random while all ${n} agents stay connected with their heartbeats (${loadFailures.length} failed${loadFailures[0] ? `, first: ${loadFailures[0]}` : ""}); the raw relay was timed in alternating blocks during the same minutes. The same stat sent again and again to one environment, which stays awake, took p50 ${loadSum.hot.p50} ms, p99 ${loadSum.hot.p99} ms${loadSum.outpost.p50 > 1.5 * loadSum.hot.p50 ? ": a random environment has usually hibernated, so its call also pays a wake-up (the object's constructor, schema check and recovery)" : ""}.`,
      `Connect storm: the fleet opened ${n} links at once; all were open after ${connect.allOpenMs ?? "n/a"} ms, half the agents welcomed after ${connect.welcome?.p50 ?? "n/a"} ms, all after ${connect.allWelcomedMs ?? "n/a"} ms, and the API listed all running after ${connectMs ?? "n/a"} ms; the control plane used ${connect.cpuPercent}% of a core meanwhile. Locally all ${n} Durable Objects share one workerd process (one JavaScript thread) and one D1 file, so hellos are processed one after another.`,
    ];
    if (fleetStats.warnings) scaleNotes.push(`The fleet's agents logged ${fleetStats.warnings} warning(s); the last: ${fleetStats.lastWarning}`);
    scaleResult = {
      id: "scale",
      title: "3. Scale",
      figures: scaleFigures,
      details: { environments: n, concurrency, createMs, connectMs, connectStorm: { allOpenMs: connect.allOpenMs, allWelcomedMs: connect.allWelcomedMs, welcome: connect.welcome, cpuPercent: connect.cpuPercent, timeline: connect.timeline }, memory: { empty: memEmpty, created: memCreated, connected: memConnected }, idleCpuPercent: idleCpu, fleet: fleetStats, underLoad: loadSum, loadFailures: loadFailures.slice(0, 10), wranglerReloads: h.cp.reloads(), fleetMode: "in-process provider-agent Link + Agent (bench/fleet.ts)" },
      notes: scaleNotes,
      durationMs: performance.now() - t0,
    };

    // ---- 4. Reconnect storm ------------------------------------------------------------------------
    const runCount = Math.min(ctx.quick ? 5 : 20, n);
    const lines = ctx.quick ? 120 : 300;
    stage = `starting ${runCount} runs before the restart`;
    ctx.log(`reconnect: starting ${runCount} runs that print ${lines} numbered lines each (10 a second), then restarting the control plane`);
    const script = `i=1; while [ $i -le ${lines} ]; do echo line-$i; i=$((i+1)); sleep 0.1; done`;
    const runs = await mapLimit(created.slice(0, runCount), 8, async (c) => {
      const res = await h.admin.request("POST", `/v1/environments/${c.id}/runs`, { json: { agent: { command: ["sh", "-c", script] } } });
      if (res.status !== 201) throw new Error(`create run: HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`);
      return { environmentId: c.id, runId: ((await res.json()) as { run: { id: string } }).run.id };
    });
    await pause(2_000);
    const before = await f.stats();
    let goneAt = 0;
    stage = "restarting the control plane";
    const { stoppedMs, startedMs } = await h.restart({ beforeStart: () => void (goneAt = Date.now()) });
    const upAt = Date.now();
    ctx.log(`reconnect: stopped in ${Math.round(stoppedMs)} ms, started in ${Math.round(startedMs)} ms; waiting for ${n} agents`);
    stage = `waiting for ${n} agents to reconnect`;
    // Timed from the new control plane's launch: agents dialling while it starts queue their upgrades
    // ahead of its health check, which then answers late, so timing from that answer would flatter.
    const answeredMs = upAt - goneAt;
    const storm = await followStorm(f, h, { n, since: goneAt, zero: goneAt, timeoutMs: 120_000 });
    ctx.log(`reconnect: timeline [ms, open, welcomed] ${JSON.stringify(storm.timeline)}; welcome ${JSON.stringify(storm.welcome)}; agents welcomed before the health check answered: ${(await f.stats(goneAt, true)).welcomeTimes?.filter((t) => t < upAt).length ?? "n/a"}`);
    let listedRunning = 0;
    /** [ms from `zero`, listed running, listed disconnected] at each poll. */
    const listed: Array<[number, number, number]> = [];
    await waitFor(async () => {
      listedRunning = await countInState(h.admin, "running");
      const disconnected = await countInState(h.admin, "disconnected");
      listed.push([Date.now() - goneAt, listedRunning, disconnected]);
      return listedRunning === n && disconnected === 0;
    }, {
      timeoutMs: 30_000,
      intervalMs: 250,
      what: () => `all ${n} environments to be listed running again (${listedRunning})`,
    }).catch(() => undefined);
    const allRunningMs = storm.allWelcomedMs !== null && listedRunning === n ? Date.now() - goneAt : null;
    const reconnected = storm.final;
    const unanswered = reconnected.handshakeTimeouts - before.handshakeTimeouts;

    // What a returning object did, from its event log (an environment without a run).
    const sample = created[created.length - 1]!.id;
    const sampleEvents = (((await (await h.admin.request("GET", `/v1/environments/${sample}/events?limit=1000`)).json()) as { events: Array<{ type: string; data: Record<string, unknown> }> }).events ?? [])
      .slice(-6)
      .map((e) => (e.type === "state.changed" ? `${e.type} ${String(e.data.from)} → ${String(e.data.to)}${e.data.reason ? ` (${String(e.data.reason)})` : ""}` : e.type));
    const recoveredFirst = sampleEvents.some((e) => e.includes("running → disconnected (control plane restarted)"));

    // Losses: runs' lines, one exec everywhere, outboxes drained.
    stage = "checking what the restart lost";
    ctx.log(`reconnect: ${storm.final.welcomedSince} of ${n} welcomed again ${Date.now() - goneAt} ms after the launch; checking that nothing was lost`);
    await waitFor(
      async () => {
        const states = await mapLimit(runs, 8, async (r) => ((await (await h.admin.request("GET", `/v1/runs/${r.runId}`)).json()) as { run: { state: string } }).run.state);
        return states.every((s) => s !== "queued" && s !== "running");
      },
      { timeoutMs: (lines / 10) * 1000 + 60_000, intervalMs: 1_000, what: "the runs to finish" },
    );
    const runChecks = await mapLimit(runs, 8, (r) => checkRun(h.admin, r.environmentId, r.runId, lines));
    const beforeExec = await f.stats();
    let execOk = 0;
    /** Answered with an error status: the client knows, and may retry. */
    let execRefused = 0;
    /** No answer at all (timeout, connection error), or a wrong one. */
    let execUnanswered = 0;
    const execFailures: Array<{ environmentId: string; error: string; agent?: Record<string, unknown>; environment?: unknown }> = [];
    await mapLimit(created, concurrency, async (c, i) => {
      let error: string;
      try {
        const res = await h.admin.request("POST", `/v1/environments/${c.id}/exec`, { json: { command: ["echo", `after-${i}`] }, timeoutMs: 60_000 });
        const text = await res.text();
        if (res.status === 200 && (JSON.parse(text) as { stdout?: string }).stdout === `after-${i}\n`) return void execOk++;
        if (res.status === 200) execUnanswered++;
        else execRefused++;
        error = `HTTP ${res.status}: ${text.slice(0, 200)}`;
      } catch (err) {
        execUnanswered++;
        error = err instanceof Error ? err.message : String(err);
      }
      if (execFailures.length >= 10) return;
      const agent = await f.agent(i).catch(() => undefined);
      const environment = await h.admin.getEnvironment(c.id).catch((e: unknown) => String(e));
      execFailures.push({ environmentId: c.id, error, agent, environment });
    });
    if (execFailures.length) ctx.log(`reconnect: ${n - execOk} exec(s) failed; first: ${JSON.stringify(execFailures[0])}`);
    let drained = await f.stats();
    await waitFor(async () => (drained = await f.stats()).unacknowledged === 0, { timeoutMs: 15_000, intervalMs: 200, what: "every agent's outbox to drain" }).catch(() => undefined);
    const linesLost = runChecks.reduce((a, r) => a + Math.max(0, lines - r.lines), 0);
    const runsBroken = runChecks.filter((r) => !r.ok).length;
    const repliesNotSent = drained.requests - beforeExec.requests - (drained.replies - beforeExec.replies);
    // A reply the agent sent that did not reach the client as an answer is lost too.
    const repliesNotDelivered = Math.max(0, drained.replies - beforeExec.replies - execOk);
    const lost = linesLost + runsBroken + execUnanswered + drained.unacknowledged + Math.max(0, repliesNotSent) + repliesNotDelivered;

    const stormFigures: Figure[] = [
      { section: "reconnect", name: `restart → all ${n} agents welcomed again`, value: storm.allWelcomedMs, unit: "ms", target: "≤ 10 s", met: storm.allWelcomedMs !== null && storm.allWelcomedMs <= 10_000, note: `from the launch of the new control plane (wrangler dev); its health check answered after ${Math.round(answeredMs)} ms` },
      {
        section: "reconnect",
        name: `health check answered → all ${n} agents welcomed again`,
        value: storm.allWelcomedMs === null ? null : Math.max(0, Math.round(storm.allWelcomedMs - answeredMs)),
        unit: "ms",
        note: "how the section timed it before; agents dialling during the start queue their upgrades ahead of the check, which then answers late, so this alone flatters",
      },
      { section: "reconnect", name: `restart → all ${n} listed running again`, value: allRunningMs, unit: "ms", target: "≤ 10 s", note: "from the launch", met: allRunningMs !== null && allRunningMs <= 10_000 },
      { section: "reconnect", name: "restart → half of the agents welcomed again", value: storm.welcome?.p50 ?? null, unit: "ms", note: `p90 ${storm.welcome?.p90 ?? "n/a"} ms` },
      { section: "reconnect", name: "control plane down (stop + start)", value: Math.round(stoppedMs + startedMs), unit: "ms", note: `stop ${Math.round(stoppedMs)} ms, start ${Math.round(startedMs)} ms` },
      { section: "reconnect", name: "messages lost", value: lost, unit: "", target: "0", met: lost === 0 },
      { section: "reconnect", name: "requests refused with an error after the storm", value: execRefused, unit: `of ${n}`, note: "the client was told (retryable); counted apart from losses" },
    ];
    const stormNotes = [
      `${runCount} runs printed ${lines} numbered lines each (one every 100 ms) across the restart; ${runChecks.filter((r) => r.ok).length} of ${runCount} event logs hold every line exactly once, in order (${linesLost} line(s) missing). After the storm one exec went to each of the ${n} environments: ${execOk} answered correctly, ${execRefused} refused with an error status${execFailures[0] ? ` (first: ${execFailures[0].error.slice(0, 120)})` : ""}, ${execUnanswered} unanswered; the fleet received ${drained.requests - beforeExec.requests} requests and sent ${drained.replies - beforeExec.replies} replies; ${drained.unacknowledged} frame(s) left unacknowledged in the agents' outboxes. "Messages lost" sums missing or disordered run lines, unanswered execs, unacknowledged frames, requests without a reply and replies that did not reach their client; a request refused with an error status is counted apart: the client was told${drained.requests - beforeExec.requests === execOk + execUnanswered ? ", and none of them reached an agent (the fleet's request count equals the answered ones)" : `, though ${drained.requests - beforeExec.requests - execOk - execUnanswered} of them reached an agent`}.`,
      `Timeline from the new control plane's launch (its health check answered after ${Math.round(answeredMs)} ms): all ${n} links open after ${storm.allOpenMs ?? "n/a (not within 120 s)"} ms, half the agents welcomed after ${storm.welcome?.p50 ?? "n/a"} ms, 90% after ${storm.welcome?.p90 ?? "n/a"} ms, all after ${storm.allWelcomedMs ?? `n/a (${storm.final.welcomedSince} within 120 s)`} ms; the control plane's processes used ${storm.cpuPercent}% of a core meanwhile (timeline in latest.json). The agents retry with their default backoff (full jitter, ${BACKOFF_DEFAULTS.baseMs} ms doubling up to ${BACKOFF_DEFAULTS.promptMaxMs / 1000} s for the first ${BACKOFF_DEFAULTS.promptMs / 1000} s of an outage while nobody listens, ${BACKOFF_DEFAULTS.maxMs / 1000} s after that and after a failure of a control plane that was reached), so after the control plane's ${Math.round((stoppedMs + startedMs) / 100) / 10} s away a retry may come up to ${BACKOFF_DEFAULTS.promptMaxMs / 1000} s after it listens again.`,
    ];
    if (!(storm.allWelcomedMs !== null && storm.allWelcomedMs <= 10_000) && storm.welcome) {
      const w = storm.welcome;
      const rate = Math.round((0.99 * n - 1) / Math.max(0.001, (w.p99 - w.first) / 1000));
      stormNotes.push(
        `Target missed, for two reasons the timeline separates. (1) The control plane: the first agent was welcomed only ${w.first} ms after the new control plane's launch and 99% after ${w.p99} ms, about ${rate} hellos a second while its processes used ${storm.cpuPercent}% of a core. Locally every Durable Object runs in one workerd process (one JavaScript thread) and every state change writes the one local D1 file; each returning object is woken by its agent's upgrade${recoveredFirst ? ", runs its recovery first (running → disconnected: a D1 write and an event, as its event log shows) and then the hello (→ running: another D1 write and event)" : " and handles the hello"}. On Cloudflare the objects are spread over many machines. ` +
          `(2) The last ${n - Math.floor(0.99 * n)} agent(s) came back at ${w.max} ms. ${unanswered} connection attempt(s) during the storm got no answer to their upgrade and waited out the agent's opening-handshake timeout (30 s by default); a retry that failed while the control plane was down waits up to min(${BACKOFF_DEFAULTS.promptMaxMs / 1000} s, ${BACKOFF_DEFAULTS.baseMs} ms × 2^attempt) for the next one (${BACKOFF_DEFAULTS.maxMs / 1000} s once an outage has lasted ${BACKOFF_DEFAULTS.promptMs / 1000} s), and one that reached the control plane and still failed (refused, timed out, cut before its welcome) waits up to ${BACKOFF_DEFAULTS.maxMs / 1000} s at once, as an overloaded control plane needs.`,
      );
    }
    const mid = t0 + scaleResult.durationMs;
    return [
      scaleResult,
      {
        id: "reconnect",
        title: "4. Reconnect storm",
        figures: stormFigures,
        details: { wranglerOutput: h.notable().slice(-40), wranglerReloads: h.cp.reloads(), sampleEvents, listed, stoppedMs, startedMs, allOpenMs: storm.allOpenMs, allWelcomedMs: storm.allWelcomedMs, allRunningMs, welcome: storm.welcome, cpuPercent: storm.cpuPercent, timeline: storm.timeline, newWelcomes: reconnected.welcomes - before.welcomes, handshakeTimeouts: unanswered, runs: runChecks, execOk, execRefused, execUnanswered, execFailures, fleetBefore: before, fleetAfter: drained, linesLost, runsBroken, repliesNotSent, repliesNotDelivered },
        notes: stormNotes,
        durationMs: performance.now() - mid,
      },
    ];
  } catch (err) {
    const error = failure(stage, err, h, fleet);
    if (!scaleResult) throw new Error(await error);
    ctx.log(`reconnect storm failed; the scale figures stand`);
    return [scaleResult, { id: "reconnect", title: "4. Reconnect storm", figures: [], details: { wranglerOutput: h.notable().slice(-40) }, notes: [], error: await error, durationMs: performance.now() - t0 - scaleResult.durationMs }];
  } finally {
    await fleet?.stop().catch(() => undefined);
    await h.close();
  }
}

/** An error that says what the section was doing, what the fleet saw and what wrangler last said. */
async function failure(stage: string, err: unknown, h: BenchControlPlane, fleet: Fleet | null): Promise<string> {
  const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
  const stats = fleet ? await fleet.stats().catch(() => null) : null;
  const fleetLine = stats ? `\nthe fleet: ${stats.connected} of ${stats.agents} links open, ${stats.welcomed} welcomed, ${stats.requests} requests, ${stats.replies} replies, ${stats.unacknowledged} unacknowledged, ${stats.warnings} warning(s) logged${stats.lastWarning ? `, the last: ${stats.lastWarning}` : ""}` : "";
  const wrangler = h.notable().slice(-15);
  const reloads = `\nwrangler restarted the Worker ${h.cp.reloads()} time(s) since this control plane (re)started${h.cp.reloads() ? " (a source file changed)" : ""}`;
  return `failed while ${stage}: ${message}${fleetLine}${reloads}${wrangler.length ? `\nwrangler's last lines (other than request logs):\n${wrangler.join("\n")}` : ""}`;
}

