/**
 * The benchmarks still run: `npm run bench -- --smoke` for the relay and footprint sections, against
 * a real control plane and agent, writes results of the expected shape. Figures are not checked:
 * benchmarks report, they do not gate.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ROOT } from "../../scripts/lib/dev-vars.js";
import { spawnGroup } from "../../scripts/lib/process-group.js";
import { exitWithin } from "./helpers.js";

let out: string;
beforeAll(async () => {
  out = await mkdtemp(join(tmpdir(), "outpost-bench-smoke-"));
});
afterAll(async () => {
  await rm(out, { recursive: true, force: true });
});

it("npm run bench -- --smoke writes a table and JSON of the expected shape", async () => {
  const bench = spawnGroup(process.execPath, ["--import", "tsx", "bench/run.ts", "--smoke", "--only", "relay,footprint", "--out", out], { cwd: ROOT });
  const exit = await exitWithin(bench, 80_000).finally(() => bench.stop("SIGTERM", 5_000).catch(() => bench.kill()));
  expect(exit.code, bench.output()).toBe(0);
  expect(bench.output()).toMatch(/Outpost benchmarks \(--smoke\)/);

  const result = JSON.parse(await readFile(join(out, "latest.json"), "utf8")) as {
    smoke: boolean;
    machine: Record<string, unknown>;
    git: { commit: string };
    sections: Array<{ id: string; error?: string; figures: Array<Record<string, unknown>>; notes: string[] }>;
  };
  expect(result.smoke).toBe(true);
  expect(result.machine).toEqual(expect.objectContaining({ cpus: expect.any(Number), cpuModel: expect.any(String), memoryBytes: expect.any(Number), node: process.version, wrangler: expect.any(String) }));
  expect(result.sections.map((s) => s.id)).toEqual(["relay", "footprint"]);
  for (const section of result.sections) {
    expect(section.error).toBeUndefined();
    expect(section.figures.length).toBeGreaterThan(0);
    for (const f of section.figures) {
      expect(f).toEqual(expect.objectContaining({ name: expect.any(String), unit: expect.any(String) }));
      expect(f.value === null || typeof f.value === "number").toBe(true);
    }
  }
  const names = result.sections.flatMap((s) => s.figures.map((f) => f.name));
  expect(names).toEqual(expect.arrayContaining(["exec `true` round trip p50, through wrangler dev", "agent idle RSS", "agent peak RSS since start (VmHWM)", "process start → running"]));
  expect(await readFile(join(out, "latest.md"), "utf8")).toMatch(/^\| section \| figure \| Outpost \|/m);
});
