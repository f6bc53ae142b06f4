/**
 * 2. Streaming: bytes through the relay, Outpost against the raw relay moving the same volume.
 * - exec output: a command prints 200 MiB of text, read by the HTTP client as ndjson lines
 *   (`Accept: application/x-ndjson`); MB/s counts the output bytes the client got.
 * - upload: a 64 MiB file PUT into the workspace; download: the same file GET back (its bytes are
 *   checked against what was sent).
 * MB/s is 10^6 bytes per second, from the request's start to its last byte. Each transfer runs
 * `reps` times, alternating Outpost and the raw relay; the median is reported. The Worker's workerd
 * resident memory is sampled during the Outpost transfers: credit keeps it bounded.
 */
import { createHash, randomBytes } from "node:crypto";
import type { BenchContext } from "./lib/context.js";
import { readMetrics } from "./lib/metrics.js";
import { MiB, rssBytes, toMiB } from "./lib/proc.js";
import type { Figure, SectionResult } from "./lib/report.js";
import { mbps, round } from "./lib/stats.js";
import { OutpostClient } from "../scripts/lib/api.js";
import { directWorkerUrl, workerdProcesses } from "./lib/workerd.js";

/** Reads an ndjson exec stream to its end: output bytes, and the final line. */
async function readExecStream(res: Response): Promise<{ bytes: number; last: Record<string, unknown> | null }> {
  if (res.status !== 200 || !res.body) throw new Error(`exec stream: HTTP ${res.status}: ${(await res.text()).slice(0, 300)}`);
  const decoder = new TextDecoder();
  let partial = "";
  let bytes = 0;
  let last: Record<string, unknown> | null = null;
  const take = (line: string) => {
    if (!line) return;
    const parsed = JSON.parse(line) as { type: string; data?: string };
    if (parsed.type === "stdout" || parsed.type === "stderr") bytes += Buffer.byteLength(parsed.data ?? "");
    else last = parsed;
  };
  for await (const piece of res.body as unknown as AsyncIterable<Uint8Array>) {
    const lines = (partial + decoder.decode(piece, { stream: true })).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) take(line);
  }
  take(partial + decoder.decode());
  return { bytes, last };
}

/** Peak summed RSS of the given processes while `work` runs (sampled every 100 ms). */
async function withPeakRss<T>(pids: number[], work: Promise<T>): Promise<{ value: T; peakBytes: number }> {
  let peak = 0;
  const sample = () => (peak = Math.max(peak, pids.reduce((a, pid) => a + (rssBytes(pid) ?? 0), 0)));
  sample();
  const timer = setInterval(sample, 100);
  try {
    return { value: await work, peakBytes: peak };
  } finally {
    clearInterval(timer);
    sample();
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

export async function streamingSection(ctx: BenchContext): Promise<SectionResult> {
  const t0 = performance.now();
  const h = await ctx.controlPlane();
  const served = await ctx.served();
  const raw = await ctx.rawRelay();
  const execBytes = (ctx.quick ? 20 : 200) * MiB;
  const fileBytes = (ctx.quick ? 8 : 64) * MiB;
  const reps = ctx.quick ? 1 : 2;
  const workerd = workerdProcesses(h.cp.pid);
  // Printable text, so JSON carries it byte for byte: `yes` is far faster than the link.
  const execBody = JSON.stringify({ command: [`yes 'outpost streaming benchmark 0123456789abcdefghijklmnopqrstuvwxyz' | head -c ${execBytes}`], shell: true, timeoutMs: 300_000 });
  const file = randomBytes(fileBytes);
  const fileHash = createHash("sha256").update(file).digest("hex");
  const path = "stream.bin";

  const outpost = {
    exec: async () =>
      readExecStream(await h.admin.request("POST", `/v1/environments/${served.id}/exec`, { body: execBody, headers: { "content-type": "application/json", accept: "application/x-ndjson" }, timeoutMs: 300_000 })),
    put: async () => {
      const res = await h.admin.request("PUT", `/v1/environments/${served.id}/files?path=${path}`, { body: file, headers: { "content-type": "application/octet-stream" }, timeoutMs: 300_000 });
      if (res.status !== 200) throw new Error(`outpost upload: HTTP ${res.status}: ${(await res.text()).slice(0, 300)}`);
      await res.text();
    },
    get: async () => {
      const res = await h.admin.request("GET", `/v1/environments/${served.id}/files?path=${path}`, { timeoutMs: 300_000 });
      if (res.status !== 200) throw new Error(`outpost download: HTTP ${res.status}: ${(await res.text()).slice(0, 300)}`);
      return Buffer.from(await res.arrayBuffer());
    },
  };
  const baseline = {
    exec: async () => readExecStream(await fetch(`${raw.url}/exec`, { method: "POST", body: execBody, headers: { "content-type": "application/json", accept: "application/x-ndjson" }, signal: AbortSignal.timeout(300_000) })),
    put: async () => {
      const res = await fetch(`${raw.url}/files?path=${path}`, { method: "PUT", body: file, headers: { "content-type": "application/octet-stream" }, signal: AbortSignal.timeout(300_000) });
      if (res.status !== 200) throw new Error(`raw upload: HTTP ${res.status}: ${(await res.text()).slice(0, 300)}`);
      await res.text();
    },
    get: async () => {
      const res = await fetch(`${raw.url}/files?path=${path}`, { signal: AbortSignal.timeout(300_000) });
      if (res.status !== 200) throw new Error(`raw download: HTTP ${res.status}`);
      return Buffer.from(await res.arrayBuffer());
    },
  };

  const rates = { outpostExec: [] as number[], rawExec: [] as number[], outpostPut: [] as number[], rawPut: [] as number[], outpostGet: [] as number[], rawGet: [] as number[] };
  let workerdPeak = 0;
  const timed = async <T>(work: () => Promise<T>) => {
    const s = performance.now();
    const value = await work();
    return { value, ms: performance.now() - s };
  };
  const checkExec = (r: { bytes: number; last: Record<string, unknown> | null }, who: string) => {
    if (r.bytes !== execBytes || r.last?.type !== "exit" || r.last.exitCode !== 0) throw new Error(`${who} exec stream: got ${r.bytes} of ${execBytes} bytes, last line ${JSON.stringify(r.last)}`);
  };
  const checkFile = (b: Buffer, who: string) => {
    if (b.length !== fileBytes || createHash("sha256").update(b).digest("hex") !== fileHash) throw new Error(`${who} download: ${b.length} bytes, not the ${fileBytes} uploaded`);
  };

  const m0 = await readMetrics(h.admin, served.id);
  for (let rep = 0; rep < reps; rep++) {
    ctx.log(`streaming: rep ${rep + 1}/${reps}: exec ${execBytes / MiB} MiB, upload and download ${fileBytes / MiB} MiB, Outpost then raw relay`);
    const oe = await withPeakRss(workerd, timed(outpost.exec));
    checkExec(oe.value.value, "outpost");
    rates.outpostExec.push(mbps(execBytes, oe.value.ms));
    const re = await timed(baseline.exec);
    checkExec(re.value, "raw");
    rates.rawExec.push(mbps(execBytes, re.ms));

    const op = await withPeakRss(workerd, timed(outpost.put));
    rates.outpostPut.push(mbps(fileBytes, op.value.ms));
    const rp = await timed(baseline.put);
    rates.rawPut.push(mbps(fileBytes, rp.ms));

    const og = await withPeakRss(workerd, timed(outpost.get));
    checkFile(og.value.value, "outpost");
    rates.outpostGet.push(mbps(fileBytes, og.value.ms));
    const rg = await timed(baseline.get);
    checkFile(rg.value, "raw");
    rates.rawGet.push(mbps(fileBytes, rg.ms));
    workerdPeak = Math.max(workerdPeak, oe.peakBytes, op.peakBytes, og.peakBytes);
  }

  // Storage the transfers cost the object: entries (one per chunk frame from the agent) and rows.
  const m1 = await readMetrics(h.admin, served.id);
  const entries = (m: typeof m0) => Object.values(m.entries).reduce((a, b) => a + b, 0);
  const movedMiB = (reps * (execBytes + 2 * fileBytes)) / MiB;
  const storage = { entries: entries(m1) - entries(m0), rowsWritten: m1.rowsWritten - m0.rowsWritten, movedMiB, rowsPerMiB: round((m1.rowsWritten - m0.rowsWritten) / movedMiB) };

  // Profile: the same transfers straight to the Worker's workerd, without wrangler's dev proxy.
  const directUrl = await directWorkerUrl(h.cp.pid, h.port);
  const direct: Record<string, number> = {};
  if (directUrl) {
    ctx.log(`streaming: profile, once each, straight to the Worker's workerd at ${directUrl}`);
    const d = new OutpostClient(directUrl, h.admin.token);
    const de = await timed(async () =>
      readExecStream(await d.request("POST", `/v1/environments/${served.id}/exec`, { body: execBody, headers: { "content-type": "application/json", accept: "application/x-ndjson" }, timeoutMs: 300_000 })),
    );
    checkExec(de.value, "outpost (direct)");
    direct.exec = mbps(execBytes, de.ms);
    const dp = await timed(async () => {
      const res = await d.request("PUT", `/v1/environments/${served.id}/files?path=${path}`, { body: file, headers: { "content-type": "application/octet-stream" }, timeoutMs: 300_000 });
      if (res.status !== 200) throw new Error(`direct upload: HTTP ${res.status}`);
      await res.text();
    });
    direct.put = mbps(fileBytes, dp.ms);
    const dg = await timed(async () => Buffer.from(await (await d.request("GET", `/v1/environments/${served.id}/files?path=${path}`, { timeoutMs: 300_000 })).arrayBuffer()));
    checkFile(dg.value, "outpost (direct)");
    direct.get = mbps(fileBytes, dg.ms);
  }

  const fig = (name: string, o: number[], r: number[]): Figure => {
    const value = round(median(o));
    const base = round(median(r));
    return { section: "streaming", name, value, unit: "MB/s", baseline: { name: "raw relay, same bytes", value: base }, ratio: round(base / value), target: "≥ ½ raw", met: value >= base / 2 };
  };
  const figures: Figure[] = [
    fig(`exec output, ${execBytes / MiB} MiB as ndjson`, rates.outpostExec, rates.rawExec),
    fig(`upload (PUT), ${fileBytes / MiB} MiB`, rates.outpostPut, rates.rawPut),
    fig(`download (GET), ${fileBytes / MiB} MiB`, rates.outpostGet, rates.rawGet),
    ...(directUrl
      ? [
          { section: "streaming", name: "exec output, dev proxy bypassed", value: direct.exec ?? null, unit: "MB/s", baseline: { name: "raw relay", value: round(median(rates.rawExec)) }, note: "profile" },
          { section: "streaming", name: "upload, dev proxy bypassed", value: direct.put ?? null, unit: "MB/s", baseline: { name: "raw relay", value: round(median(rates.rawPut)) }, note: "profile" },
          { section: "streaming", name: "download, dev proxy bypassed", value: direct.get ?? null, unit: "MB/s", baseline: { name: "raw relay", value: round(median(rates.rawGet)) }, note: "profile" },
        ]
      : []),
    { section: "streaming", name: "SQLite rows written per MiB moved", value: storage.rowsPerMiB, unit: "rows", note: "profile" },
    { section: "streaming", name: "workerd RSS peak during transfers", value: toMiB(workerdPeak), unit: "MiB", note: "both workerd processes of wrangler dev" },
  ];
  const notes = [
    `Median of ${reps} run(s) each, Outpost and raw relay alternating; ratio = raw MB/s ÷ Outpost MB/s. Every transfer was checked: all ${execBytes / MiB} MiB of output and an exit line; the downloaded file's sha256 equals the uploaded one's.`,
    `Both sides move chunks of 256 KiB as base64 inside JSON frames with a credit window of 16 chunks; the raw relay leaves out the Worker, the Durable Object, seq/ack and wrangler's dev proxy.`,
  ];
  notes.push(
    `The Outpost transfers (${Math.round(movedMiB)} MiB) entered the object ${storage.entries} times and wrote ${storage.rowsWritten} SQLite rows: every chunk frame from the agent is a WebSocket message; while a transfer is in flight its entries write nothing, and the metrics row is written (with the transfer's event, if any) when it ends.`,
  );
  const missed = figures.filter((f) => f.met === false).map((f) => f.name);
  if (missed.length) {
    notes.push(`Below half the raw relay: ${missed.join("; ")}. Each chunk crosses two workerd processes locally (wrangler's proxy and the Worker), and is base64-decoded and re-encoded by the Durable Object; with 2 cores shared by the client, workerd, the agent and \`yes\`, CPU is the limit.`);
  }
  return { id: "streaming", title: "2. Streaming", figures, details: { execBytes, fileBytes, reps, rates, storage, direct, directWorkerUrl: directUrl, workerdPeakBytes: workerdPeak }, notes, durationMs: performance.now() - t0 };
}
