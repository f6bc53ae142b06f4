/**
 * 1. Relay round trip: one small request through HTTP → Worker → Durable Object → agent → back,
 * sequentially, against the raw relay doing the same (raw-relay/server.ts: HTTP → plain Node relay →
 * WebSocket → the same agent code → back). Two requests: exec `true` (the agent spawns a process,
 * on both sides) and file.stat (almost no work: the round trip itself). The raw relay's `echo`
 * (answered without touching the agent's code) is the floor of a two-hop relay on this machine.
 *
 * Both sides are asked for uncompressed answers (Accept-Encoding: identity): wrangler's local runtime
 * gzips JSON for a client that accepts it, as the edge does, and Node's fetch accepts it by default,
 * while the raw relay never compresses; the profile shows what gzip adds to a stat.
 *
 * A profile follows: the same stat sent straight to the Worker's workerd (bypassing wrangler's dev
 * proxy), and the hops one by one: the Worker alone (GET /v1/health), Worker + Durable Object
 * without the agent (GET metrics), and the whole path.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { OutpostClient } from "../scripts/lib/api.js";
import type { BenchContext } from "./lib/context.js";
import { interleaved } from "./lib/loop.js";
import { storageCost } from "./lib/metrics.js";
import type { Figure, SectionResult } from "./lib/report.js";
import { round, summarize, type Summary } from "./lib/stats.js";
import { directWorkerUrl } from "./lib/workerd.js";

const PROBE = "probe.txt";
/** The same wire on both sides: no compression (see above). */
const IDENTITY = { "accept-encoding": "identity" } as const;

async function ok(res: Response, what: string): Promise<void> {
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${what}: HTTP ${res.status}: ${text.slice(0, 300)}`);
}

export async function relaySection(ctx: BenchContext): Promise<SectionResult> {
  const t0 = performance.now();
  const h = await ctx.controlPlane();
  const served = await ctx.served();
  const raw = await ctx.rawRelay();
  await h.admin.writeFile(served.id, PROBE, "probe\n");
  writeFileSync(join(raw.workspace, PROBE), "probe\n");

  const execBody = JSON.stringify({ command: ["true"] });
  const exec = (c: OutpostClient, what: string) => async () => ok(await c.request("POST", `/v1/environments/${served.id}/exec`, { body: execBody, headers: { "content-type": "application/json", ...IDENTITY } }), what);
  const stat = (c: OutpostClient, what: string) => async () => ok(await c.request("GET", `/v1/environments/${served.id}/files/stat?path=${PROBE}`, { headers: IDENTITY }), what);
  // The Worker's own workerd (Miniflare's), without wrangler's dev proxy: the path the targets are judged on.
  const direct = ctx.smoke ? null : await directWorkerUrl(h.cp.pid, h.port);
  const d = direct ? new OutpostClient(direct, h.admin.token) : null;
  const baseline = {
    exec: async () => ok(await fetch(`${raw.url}/exec`, { method: "POST", body: execBody, headers: { "content-type": "application/json", ...IDENTITY } }), "raw exec"),
    stat: async () => ok(await fetch(`${raw.url}/files/stat?path=${PROBE}`, { headers: IDENTITY }), "raw stat"),
    echo: async () => ok(await fetch(`${raw.url}/echo`, { headers: IDENTITY }), "raw echo"),
  };

  const count = ctx.smoke ? 10 : ctx.quick ? 40 : 300;
  const warm = ctx.smoke ? 3 : ctx.quick ? 10 : 30;
  ctx.log(`relay: warm-up (${warm} each), then ${count} sequential calls each, interleaved in blocks of 25${direct ? `; the Worker's workerd is at ${direct}` : ""}`);
  const contenders: Record<string, () => Promise<void>> = {
    outpostExec: exec(h.admin, "outpost exec"),
    rawExec: baseline.exec,
    outpostStat: stat(h.admin, "outpost stat"),
    rawStat: baseline.stat,
    rawEcho: baseline.echo,
  };
  const statDirect = d ? stat(d, "outpost stat direct") : null;
  if (d && statDirect) Object.assign(contenders, { outpostExecDirect: exec(d, "outpost exec direct"), outpostStatDirect: statDirect });
  await interleaved(contenders, { count: warm, block: warm, maxMs: 60_000 });
  const main = summaries(await interleaved(contenders, { count, block: 25, maxMs: ctx.quick ? 40_000 : 200_000 }));

  // Profile: where the time goes.
  let profile: Record<string, Summary> | null = null;
  if (d && statDirect) {
    const profileCount = ctx.quick ? 30 : 150;
    ctx.log(`relay: profile (${profileCount} calls each)`);
    profile = summaries(
      await interleaved(
        {
          healthViaProxy: async () => ok(await h.admin.request("GET", "/v1/health", { headers: IDENTITY }), "health"),
          healthDirect: async () => ok(await d.request("GET", "/v1/health", { headers: IDENTITY }), "health direct"),
          metricsDirect: async () => ok(await d.request("GET", `/v1/environments/${served.id}/metrics`, { headers: IDENTITY }), "metrics direct"),
          statDirect,
          statGzip: async () => ok(await h.admin.request("GET", `/v1/environments/${served.id}/files/stat?path=${PROBE}`), "stat gzip"),
        },
        { count: profileCount, block: 25, maxMs: 60_000 },
      ),
    );
  }

  // What one request costs the object in storage: an exec logs an event (and the metrics row goes along).
  const perRequest = ctx.smoke ? null : { stat: await storageCost(h.admin, served.id, 20, contenders.outpostStat!), exec: await storageCost(h.admin, served.id, 20, contenders.outpostExec!) };

  const ratio = (a: number, b: number) => round(a / b);
  // The targets are judged on the Worker's own workerd when it was found; through wrangler's dev proxy otherwise.
  const judged = { exec: main.outpostExecDirect ?? main.outpostExec!, stat: main.outpostStatDirect ?? main.outpostStat! };
  const where = main.outpostStatDirect ? "the Worker's workerd" : "through wrangler dev";
  const execP50 = ratio(judged.exec.p50, main.rawExec!.p50);
  const statP50 = ratio(judged.stat.p50, main.rawStat!.p50);
  const figures: Figure[] = [
    { section: "relay", name: `exec \`true\` round trip p50, ${where}`, value: judged.exec.p50, unit: "ms", baseline: { name: "raw relay, same agent code", value: main.rawExec!.p50 }, ratio: execP50, target: "≤ 2× raw", met: execP50 <= 2 },
    { section: "relay", name: `exec \`true\` round trip p99, ${where}`, value: judged.exec.p99, unit: "ms", baseline: { name: "raw relay", value: main.rawExec!.p99 }, ratio: ratio(judged.exec.p99, main.rawExec!.p99) },
    { section: "relay", name: `file stat round trip p50, ${where}`, value: judged.stat.p50, unit: "ms", baseline: { name: "raw relay, same agent code", value: main.rawStat!.p50 }, ratio: statP50, target: "≤ 2× raw", met: statP50 <= 2 },
    { section: "relay", name: `file stat round trip p99, ${where}`, value: judged.stat.p99, unit: "ms", baseline: { name: "raw relay", value: main.rawStat!.p99 }, ratio: ratio(judged.stat.p99, main.rawStat!.p99) },
  ];
  if (main.outpostStatDirect) {
    figures.push(
      { section: "relay", name: "exec `true` p50 through wrangler dev's proxy", value: main.outpostExec!.p50, unit: "ms", baseline: { name: "raw relay", value: main.rawExec!.p50 }, ratio: ratio(main.outpostExec!.p50, main.rawExec!.p50) },
      { section: "relay", name: "file stat p50 through wrangler dev's proxy", value: main.outpostStat!.p50, unit: "ms", baseline: { name: "raw relay", value: main.rawStat!.p50 }, ratio: ratio(main.outpostStat!.p50, main.rawStat!.p50) },
    );
  }
  if (profile) {
    figures.push({ section: "relay", name: "file stat p50 through wrangler dev, gzip accepted (fetch's default)", value: profile.statGzip!.p50, unit: "ms", baseline: { name: "raw relay", value: main.rawStat!.p50 }, ratio: ratio(profile.statGzip!.p50, main.rawStat!.p50), note: "profile" });
  }
  if (perRequest) {
    figures.push({ section: "relay", name: "object entries / SQLite rows written per stat", value: perRequest.stat.entries, unit: `/ ${perRequest.stat.rowsWritten}`, note: "profile" });
    figures.push({ section: "relay", name: "object entries / SQLite rows written per exec", value: perRequest.exec.entries, unit: `/ ${perRequest.exec.rowsWritten}`, note: "profile" });
  }
  const notes = [
    `${main.outpostExec!.n} sequential calls each after ${warm} warm-up calls, Outpost and the raw relay interleaved in blocks of 25. The raw relay's floor (the agent answers without any work) is p50 ${main.rawEcho!.p50} ms, p99 ${main.rawEcho!.p99} ms.`,
    `The targets are judged ${main.outpostStatDirect ? "on requests sent to the Worker's own workerd (the Miniflare runtime wrangler dev runs it in), interleaved with the same requests through wrangler dev's proxy: that proxy is a second workerd process in front, there to reload the Worker when its sources change, and no deployed request crosses it" : "through wrangler dev (the Worker's own workerd was not found)"}.`,
    `Outpost adds over the raw relay at p50: ${round(judged.exec.p50 - main.rawExec!.p50)} ms per exec, ${round(judged.stat.p50 - main.rawStat!.p50)} ms per stat (${where}).`,
  ];
  if (profile) {
    notes.push(
      `Where it goes (p50): the Worker alone answers GET /v1/health in ${profile.healthViaProxy!.p50} ms through wrangler dev, ${profile.healthDirect!.p50} ms straight to its workerd, so the dev proxy costs ${round(profile.healthViaProxy!.p50 - profile.healthDirect!.p50)} ms per request; ` +
        `Worker + Durable Object without the agent (GET metrics, direct) ${profile.metricsDirect!.p50} ms; the whole stat path direct ${profile.statDirect!.p50} ms, so the agent hop (DO → WebSocket → agent → DO) adds about ${round(profile.statDirect!.p50 - profile.metricsDirect!.p50)} ms. ` +
        `All of these ask for an uncompressed answer, as the raw relay gives; a client that accepts gzip (fetch's default) gets a gzipped stat in ${profile.statGzip!.p50} ms through wrangler dev.`,
    );
  } else {
    notes.push(ctx.smoke ? "Smoke run: no profile." : "The Worker's own workerd port was not found, so the profile without wrangler's dev proxy was skipped.");
  }
  if (perRequest) {
    notes.push(
      `Each request enters the object ${perRequest.stat.entries} times (the RPC, then the agent's reply as a WebSocket message), and writes ${perRequest.stat.rowsWritten} SQLite row(s) per stat, ${perRequest.exec.rowsWritten} per exec: an exec logs an event, and its entry writes the object's metrics row along with it; a stat writes nothing, and its counts ride on the agent socket's attachment.`,
    );
  }
  if (execP50 > 2 || statP50 > 2) {
    notes.push(
      "Target missed for " + [execP50 > 2 ? `exec (${execP50}×)` : "", statP50 > 2 ? `stat (${statP50}×)` : ""].filter(Boolean).join(" and ") +
        `: the raw relay is one Node process doing JSON.parse and a socket write per hop, while every Outpost request crosses ${main.outpostStatDirect ? "" : "wrangler's proxy workerd, "}the Worker (JWT verify, zod), a DO RPC and (for exec) the event log's SQLite write; the closer to zero the agent's own work, the larger the ratio.`,
    );
  }
  return { id: "relay", title: "1. Relay round trip", figures, details: { samplesPerContender: count, warmup: warm, summaries: main, directWorkerUrl: direct, profile, perRequest }, notes, durationMs: performance.now() - t0 };
}

function summaries<K extends string>(samples: Record<K, number[]>): Record<string, Summary> {
  return Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarize(v as number[])]));
}
