/**
 * The shape of what the chaos suite records (test/chaos/lib/figures.ts writes it, one JSON file per
 * test file) and scripts/reliability-report.ts reads back into docs/reliability.md: one definition
 * for both sides.
 */
import { join } from "node:path";
import { ROOT } from "./dev-vars.js";

/** Where each chaos file writes its figures: .outpost/chaos/<file>.json. */
export const RESULTS_DIR = join(ROOT, ".outpost", "chaos");

export interface Figure {
  /** The group in the report: "faults", "hostile input", "rate limits", "load". */
  section: string;
  /** What was done, in a few words. */
  name: string;
  /** Faults injected (kills, cuts, restarts, …); 0 for pure input cases. */
  faults: number;
  /** Requests, frames or operations tried. */
  cases: number;
  /** Messages, lines, files or requests lost or duplicated; the goal is 0. */
  lost: number;
  /** Outcomes counted by kind, e.g. { "401": 12, "403": 3 }. */
  outcomes?: Record<string, number>;
  /** Anything else measured (durations are reported, never asserted). */
  measured?: Record<string, number | string>;
}

/** One chaos test file's results, as written to RESULTS_DIR. */
export interface FileResult {
  file: string;
  /** `full` under `npm run test:chaos`, `ci` under `npm test`. */
  scale: string;
  startedAt: string;
  durationMs: number;
  /** The machine's load when the file ended (1, 5 and 15 minute averages). */
  loadavg?: number[];
  figures: Figure[];
}
