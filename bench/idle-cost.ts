/**
 * 5. Idle cost: what an idle, running environment costs per hour, from each object's own counters
 * (GET /v1/environments/{id}/metrics: wake-ups, entries per entry point, alarm firings, SQLite rows
 * written), projected to dollars per month for 10,000 environments (cost-model.ts).
 *
 * An hour is measured in about two minutes by timing each idle event separately, on its own
 * environment, all connected to one fleet process (bench/fleet.ts) at the same moment T0:
 *   pings     heartbeat every 100 ms (100× the default), no health reports, no link check
 *   health    health report every 20 s (15× the default 300 s), default heartbeat, no link check
 *   alarms    link check (the idle alarm) every 20 s (15× the default 300 s), no health reports
 *   defaults  everything at its default (10 s heartbeat, 300 s health, 300 s link check), unscaled
 *   control   an agent without health reports or link checks: what reading the metrics costs by itself
 * Events 20 s apart leave the object time to hibernate in between (workerd evicts it 10 s after its
 * last event), as the default intervals do, so each event is measured as it happens in production:
 * it wakes the object. Metrics are read at T0 (twice: the second read is the start) and again at
 * T0 + k×20 s + 14 s, when every object has been asleep for at least 10 s; the control's change over
 * the same window is what the reads cost and is subtracted. Per event = change ÷ events; per hour =
 * per event × events in an hour at the defaults (360 pings, 12 health reports, 12 link checks), plus
 * the metrics row an idle object writes once per FLUSH_AT_LEAST_EVERY_MS (its counts ride on the
 * agent socket's attachment until then; see durable-objects/metrics.ts), which a window of two
 * minutes cannot see and is therefore added from that constant.
 */
import { join } from "node:path";
import { DEFAULT_IDLE_CHECK_MS, type EnvironmentMetrics } from "@outpost/protocol";
import { FLUSH_AT_LEAST_EVERY_MS } from "../durable-objects/metrics-policy.js";
import { DEFAULT_HEALTH_INTERVAL_MS } from "../provider-agent/src/services/health.js";
import { waitFor } from "../scripts/lib/wait.js";
import { monthlyCost, nonHibernating, PRICES, type HourlyUsage } from "./cost-model.js";
import type { BenchContext } from "./lib/context.js";
import { startFleet } from "./lib/fleet-client.js";
import { pause } from "./lib/loop.js";
import type { Figure, SectionResult } from "./lib/report.js";
import { round } from "./lib/stats.js";

const DAY_MS = 86_400_000;
const PHASE_MS = 20_000;
const DEFAULTS = { heartbeatMs: 10_000, healthMs: DEFAULT_HEALTH_INTERVAL_MS, idleCheckMs: DEFAULT_IDLE_CHECK_MS };
const PER_HOUR = { pings: 3_600_000 / DEFAULTS.heartbeatMs, health: 3_600_000 / DEFAULTS.healthMs, alarms: 3_600_000 / DEFAULTS.idleCheckMs };

type Key = "pings" | "health" | "alarms" | "defaults";
const SETUPS: Array<{ key: Key; lifecycle?: { heartbeatMs?: number; idleCheckMs?: number }; healthMs: number | null }> = [
  { key: "pings", lifecycle: { heartbeatMs: 100, idleCheckMs: DAY_MS }, healthMs: null },
  { key: "health", lifecycle: { idleCheckMs: DAY_MS }, healthMs: PHASE_MS },
  { key: "alarms", lifecycle: { idleCheckMs: PHASE_MS }, healthMs: null },
  { key: "defaults", healthMs: DEFAULTS.healthMs },
];

/** The counters that matter, as plain numbers. */
interface Counts {
  wakeups: number;
  entries: number;
  webSocketMessage: number;
  alarms: number;
  rowsWritten: number;
}

const counts = (m: EnvironmentMetrics): Counts => ({
  wakeups: m.wakeups,
  entries: Object.values(m.entries).reduce((a, b) => a + b, 0),
  webSocketMessage: m.entries.webSocketMessage ?? 0,
  alarms: m.alarms,
  rowsWritten: m.rowsWritten,
});
const minus = (a: Counts, b: Counts): Counts => ({
  wakeups: a.wakeups - b.wakeups,
  entries: a.entries - b.entries,
  webSocketMessage: a.webSocketMessage - b.webSocketMessage,
  alarms: a.alarms - b.alarms,
  rowsWritten: a.rowsWritten - b.rowsWritten,
});
const per = (c: Counts, events: number): Counts | null =>
  events > 0 ? { wakeups: round(c.wakeups / events), entries: round(c.entries / events), webSocketMessage: round(c.webSocketMessage / events), alarms: round(c.alarms / events), rowsWritten: round(c.rowsWritten / events) } : null;

export async function idleCostSection(ctx: BenchContext): Promise<SectionResult> {
  const t0 = performance.now();
  const h = await ctx.controlPlane();
  const k = ctx.quick ? 1 : 3;

  // The control has an agent too: an object whose agent is connected reads its metrics without
  // writing a row, one without an agent writes one, so only a connected control costs what a read does.
  const control = await h.admin.createEnvironment({ name: "idle-control", provider: "bench", lifecycle: { idleCheckMs: DAY_MS } });
  const envs = await Promise.all(
    SETUPS.map(async (s) => ({ ...s, created: await h.admin.createEnvironment({ name: `idle-${s.key}`, provider: "bench", ...(s.lifecycle ? { lifecycle: s.lifecycle } : {}) }) })),
  );
  const workspaces = h.mkdir("idle");
  const fleet = await startFleet(
    { url: h.url, agents: [...envs.map((e) => ({ token: e.created.agentToken, workspace: join(workspaces, e.key), healthMs: e.healthMs })), { token: control.agentToken, workspace: join(workspaces, "control"), healthMs: null }] },
    ctx.dir,
  );
  try {
    await waitFor(async () => (await fleet.stats()).welcomed === envs.length + 1, { timeoutMs: 30_000, what: "the idle agents to be welcomed" });
    const T0 = Date.now();
    const ids = [control.environment.id, ...envs.map((e) => e.created.environment.id)];
    const read = async (id: string) => {
      const s = performance.now();
      const res = await h.admin.request("GET", `/v1/environments/${id}/metrics`);
      if (res.status !== 200) throw new Error(`metrics of ${id}: HTTP ${res.status}`);
      const m = (await res.json()) as EnvironmentMetrics;
      return { m, ms: performance.now() - s };
    };
    const readAll = async () => {
      const out = new Map<string, { m: EnvironmentMetrics; ms: number }>();
      for (const id of ids) out.set(id, await read(id));
      return out;
    };
    await readAll(); // m0: may wake an object; the window starts at the next read
    const m1 = await readAll();
    const m1At = Date.now();
    const agents1 = await Promise.all(envs.map((_, i) => fleet.agent(i)));
    const endAt = T0 + k * PHASE_MS + 14_000;
    ctx.log(`idle: ${envs.length} agents idle until T0 + ${(endAt - T0) / 1000} s (every object asleep for 10 s by then)`);
    await pause(Math.max(0, endAt - Date.now()));
    const m2 = await readAll(); // each object is asleep: this read wakes it
    const m3 = await readAll(); // awake now: what a read costs without a wake
    const windowMs = Date.now() - m1At;
    const agents2 = await Promise.all(envs.map((_, i) => fleet.agent(i)));

    const delta = (id: string) => minus(counts(m2.get(id)!.m), counts(m1.get(id)!.m));
    const observe = delta(control.environment.id);
    const idle = Object.fromEntries(envs.map((e) => [e.key, minus(delta(e.created.environment.id), observe)])) as Record<Key, Counts>;
    const healthSent = (i: number) => Number(agents2[i]!.healthSent) - Number(agents1[i]!.healthSent);
    const events: Record<Key, number> = {
      pings: Math.floor(windowMs / 100),
      health: healthSent(1),
      alarms: idle.alarms.alarms,
      defaults: healthSent(3) + idle.defaults.alarms,
    };
    const perPing = per(idle.pings, events.pings);
    const perHealth = per(idle.health, events.health);
    const perAlarm = per(idle.alarms, events.alarms);
    /** The metrics row an idle object writes when its carried counts have waited their longest. */
    const flushesPerHour = 3_600_000 / FLUSH_AT_LEAST_EVERY_MS;

    const hourly = (f: (c: Counts) => number) =>
      round((perPing ? f(perPing) * PER_HOUR.pings : 0) + (perHealth ? f(perHealth) * PER_HOUR.health : 0) + (perAlarm ? f(perAlarm) * PER_HOUR.alarms : 0));
    const perHour = {
      wakeups: hourly((c) => c.wakeups),
      entries: hourly((c) => c.entries),
      webSocketMessages: hourly((c) => c.webSocketMessage),
      alarms: hourly((c) => c.alarms),
      rowsWritten: round(hourly((c) => c.rowsWritten) + flushesPerHour),
    };
    // Billed time per wake: no local measure of production duration exists; a wake-up read here took
    // m2's latency (HTTP, Worker and all), so that bounds a wake from above locally. Assume 50 ms or that.
    const asleepReadMs = Math.max(...envs.map((e) => m2.get(e.created.environment.id)!.ms));
    const awakeReadMs = Math.max(...envs.map((e) => m3.get(e.created.environment.id)!.ms));
    const billedPerWakeS = round(Math.max(0.05, asleepReadMs / 1000));
    const usage: HourlyUsage = {
      requests: perHour.alarms,
      // Health reports reach the object; pings are answered by the runtime, but count them as
      // WebSocket messages anyway (whether auto-responses are billed is not published).
      websocketMessages: perHour.webSocketMessages + PER_HOUR.pings,
      awakeSeconds: round(perHour.wakeups * billedPerWakeS),
      rowsWritten: perHour.rowsWritten,
      rowsRead: round((perHour.entries || 0) * 10),
    };
    const naive = nonHibernating(usage, DEFAULTS.heartbeatMs);
    const outpostMonth = monthlyCost(usage, 10_000);
    const naiveMonth = monthlyCost(naive, 10_000);
    const measuredDefaultsPerHour = { ...idle.defaults, windowMs, healthFrames: healthSent(3) };

    const figures: Figure[] = [
      { section: "idle", name: "wake-ups from heartbeats", value: idle.pings.wakeups, unit: `in ${events.pings} pings`, target: "0", met: idle.pings.wakeups === 0 && idle.pings.entries === 0 },
      { section: "idle", name: "rows written per heartbeat", value: perPing?.rowsWritten ?? null, unit: "rows", target: "0", met: idle.pings.rowsWritten === 0 },
      { section: "idle", name: "alarm firings per idle hour", value: round(PER_HOUR.alarms * (perAlarm?.alarms ?? 0)), unit: "/h", target: "≤ 12", met: PER_HOUR.alarms * (perAlarm?.alarms ?? 0) <= 12 },
      { section: "idle", name: "per health report: wake-ups / entries / rows", value: perHealth?.wakeups ?? null, unit: `/ ${perHealth?.entries ?? "n/a"} / ${perHealth?.rowsWritten ?? "n/a"}`, note: `${events.health} reports measured` },
      { section: "idle", name: "per link-check alarm: wake-ups / entries / rows", value: perAlarm?.wakeups ?? null, unit: `/ ${perAlarm?.entries ?? "n/a"} / ${perAlarm?.rowsWritten ?? "n/a"}`, note: `${events.alarms} alarms measured` },
      { section: "idle", name: "idle hour at defaults: wake-ups", value: perHour.wakeups, unit: "/h", note: `${PER_HOUR.health} health reports + ${PER_HOUR.alarms} link checks` },
      { section: "idle", name: "idle hour at defaults: DO requests (billed)", value: round(usage.requests + usage.websocketMessages / PRICES.websocketMessagesPerRequest), unit: "/h", baseline: { name: "non-hibernating, heartbeat written", value: round(naive.requests + naive.websocketMessages / PRICES.websocketMessagesPerRequest) } },
      { section: "idle", name: "idle hour at defaults: rows written", value: perHour.rowsWritten, unit: "/h", baseline: { name: "non-hibernating, heartbeat written", value: naive.rowsWritten } },
      { section: "idle", name: "10,000 idle environments, $/month", value: outpostMonth.dollars.total, unit: "$", baseline: { name: "non-hibernating, heartbeat written", value: naiveMonth.dollars.total }, note: `${round(naiveMonth.dollars.total / outpostMonth.dollars.total)}× cheaper; see docs/cost-model.md` },
    ];
    const notes = [
      `Window ${Math.round(windowMs / 1000)} s (k = ${k}); reading the metrics twice costs, by the control environment: ${observe.wakeups} wake-up(s), ${observe.entries} entr(ies), ${observe.rowsWritten} row(s); that was subtracted from each environment. An entry that writes nothing else leaves its counts on the agent socket's attachment (no row); the metrics row is written when other writes happen, or once every ${FLUSH_AT_LEAST_EVERY_MS / 60_000} min at the latest: ${round(flushesPerHour)} row(s) an hour added to the idle figures, which this window is too short to see.`,
      `Pings: ${events.pings} pings at 100 ms on one socket reached the object ${idle.pings.entries} time(s) (${idle.pings.webSocketMessage} webSocketMessage entries), woke it ${idle.pings.wakeups} time(s), wrote ${idle.pings.rowsWritten} row(s): the runtime's auto-response answers them.`,
      `Health reports: each wakes the object (${perHealth?.wakeups ?? "n/a"} wake-ups, ${perHealth?.entries ?? "n/a"} entries per report) and writes ${perHealth?.rowsWritten ?? "n/a"} row(s): the report is kept in the socket's attachment and so are the entry's counts. At the default interval that is ${PER_HOUR.health} wake-ups and ${round(PER_HOUR.health * (perHealth?.rowsWritten ?? 0))} rows per idle hour.`,
      `Link checks: each alarm costs ${perAlarm?.wakeups ?? "n/a"} wake-up(s), ${perAlarm?.entries ?? "n/a"} entr(ies), ${perAlarm?.rowsWritten ?? "n/a"} row(s) (each setAlarm that re-arms the check is counted as a row written: the alarm is kept in the object's storage); at the default idleCheckMs (300 s) that is ${PER_HOUR.alarms} firings an hour.`,
      `Directly at the defaults over the same ${Math.round(windowMs / 1000)} s: ${measuredDefaultsPerHour.healthFrames} health report(s) → ${idle.defaults.wakeups} wake-up(s), ${idle.defaults.entries} entr(ies), ${idle.defaults.alarms} alarm(s), ${idle.defaults.rowsWritten} counted row(s), as predicted by the per-event figures.`,
      `Dollars assume ${billedPerWakeS} s billed per wake (a read that woke an object took ${Math.round(asleepReadMs)} ms end to end here, ${Math.round(awakeReadMs)} ms when awake), pings billed as WebSocket messages (20:1) and 10 rows read per entry; prices of ${PRICES.asOf}, before the plan's included usage.`,
    ];
    return {
      id: "idle",
      title: "5. Idle cost",
      figures,
      details: { k, windowMs, observe, flushesPerHour, events, idle, perEvent: { ping: perPing, health: perHealth, alarm: perAlarm }, perHour, usage, naive, month: { outpost: outpostMonth, nonHibernating: naiveMonth }, billedPerWakeS, asleepReadMs, awakeReadMs, prices: PRICES },
      notes,
      durationMs: performance.now() - t0,
    };
  } finally {
    await fleet.stop();
  }
}
