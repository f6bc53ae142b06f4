/**
 * `npm run bench`: every benchmark on this machine, each figure beside a baseline measured in the
 * same run; one table on stdout, JSON and markdown under bench/results/. Benchmarks report, they do
 * not gate: the exit code is 0 whatever the figures are, and non-zero only when a section failed.
 *
 *   npm run bench                         everything (5 to 10 minutes)
 *   npm run bench -- --quick              scaled down: a few minutes
 *   npm run bench -- --smoke              smaller still, for the CI smoke test (shape, not figures)
 *   npm run bench -- --only relay,footprint
 *   npm run bench -- --environments 300   fewer (or more) environments for scale and reconnect
 *   npm run bench -- --out DIR            where latest.json and latest.md go (default bench/results)
 *   npm run bench -- --source head        measure the control plane as committed (default: the
 *                                         working tree, copied when the run starts)
 */
import { execFileSync } from "node:child_process";
import { loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ROOT } from "../scripts/lib/dev-vars.js";
import { footprintSection } from "./footprint.js";
import { idleCostSection } from "./idle-cost.js";
import { createContext, type BenchContext } from "./lib/context.js";
import { describeMachine } from "./lib/machine.js";
import { renderText, writeResults, type BenchResult, type SectionResult } from "./lib/report.js";
import { relaySection } from "./relay.js";
import { scaleSections } from "./scale.js";
import { streamingSection } from "./streaming.js";

type Section = { id: string; title: string; run: (ctx: BenchContext) => Promise<SectionResult[]> };

/** In order of running; scale also produces the reconnect storm. */
export const SECTIONS: Section[] = [
  { id: "relay", title: "1. Relay round trip", run: async (ctx) => [await relaySection(ctx)] },
  { id: "streaming", title: "2. Streaming", run: async (ctx) => [await streamingSection(ctx)] },
  { id: "footprint", title: "6. Agent footprint", run: async (ctx) => [await footprintSection(ctx)] },
  { id: "idle", title: "5. Idle cost", run: async (ctx) => [await idleCostSection(ctx)] },
  {
    id: "scale",
    title: "3-4. Scale and reconnect storm",
    // On a control plane of its own; the shared one would only take memory and CPU from it.
    run: async (ctx) => (await ctx.releaseControlPlane(), scaleSections(ctx)),
  },
];

const USAGE = `Usage: npm run bench -- [--quick | --smoke] [--only ${SECTIONS.map((s) => s.id).join(",")}] [--out DIR] [--source worktree|head] [--environments N]`;

function gitState(): { commit: string; dirty: boolean } {
  try {
    const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--", "worker", "durable-objects", "protocol", "provider-agent/src", "wrangler.toml"], { cwd: ROOT, encoding: "utf8" }).trim() !== "";
    return { commit, dirty };
  } catch {
    return { commit: "unknown", dirty: false };
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { quick: { type: "boolean" }, smoke: { type: "boolean" }, only: { type: "string" }, out: { type: "string" }, source: { type: "string" }, environments: { type: "string" }, help: { type: "boolean", short: "h" } } });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const only = values.only?.split(",").map((s) => s.trim()).filter(Boolean);
  const unknown = only?.filter((id) => !SECTIONS.some((s) => s.id === id)) ?? [];
  if (unknown.length) {
    process.stderr.write(`unknown section(s): ${unknown.join(", ")}\n${USAGE}\n`);
    return 2;
  }
  const source = values.source ?? "worktree";
  if (source !== "worktree" && source !== "head") {
    process.stderr.write(`--source must be worktree or head\n${USAGE}\n`);
    return 2;
  }
  const smoke = values.smoke ?? false;
  const quick = (values.quick ?? false) || smoke;
  const environments = values.environments === undefined ? undefined : Number(values.environments);
  if (environments !== undefined && !(Number.isInteger(environments) && environments > 0 && environments <= 5000)) {
    process.stderr.write(`--environments must be a whole number from 1 to 5000\n${USAGE}\n`);
    return 2;
  }
  const outDir = values.out ?? join(ROOT, "bench", "results");
  const started = Date.now();
  const log = (line: string) => process.stderr.write(`[bench +${((Date.now() - started) / 1000).toFixed(0)}s] ${line}\n`);
  const ctx = createContext({ quick, smoke, environments, source, log });
  const result: BenchResult = { startedAt: new Date(started).toISOString(), finishedAt: "", quick, smoke, load: { start: loadavg()[0] ?? 0, end: 0 }, machine: describeMachine(), git: { ...gitState(), source }, sections: [] };
  const onSignal = () => {
    log("interrupted: stopping everything the bench started");
    void ctx.close().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  let failed = 0;
  try {
    for (const section of SECTIONS.filter((s) => !only || only.includes(s.id))) {
      log(`section ${section.title}`);
      const t0 = performance.now();
      try {
        const results = await section.run(ctx);
        // A section may measure part of what it runs and report the rest as failed (scale, then the storm).
        for (const r of results.filter((x) => x.error)) log(`section ${r.title} failed: ${r.error}`);
        failed += results.filter((r) => r.error).length;
        result.sections.push(...results);
      } catch (err) {
        failed++;
        const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
        log(`section ${section.title} failed: ${message}`);
        result.sections.push({ id: section.id, title: section.title, figures: [], details: {}, notes: [], error: message, durationMs: performance.now() - t0 });
      }
    }
  } finally {
    await ctx.close();
  }
  result.finishedAt = new Date().toISOString();
  result.load.end = loadavg()[0] ?? 0;
  writeResults(result, join(outDir, "latest.json"), join(outDir, "latest.md"));
  process.stdout.write(`${renderText(result)}\n\nResults: ${join(outDir, "latest.json")} and latest.md (${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
