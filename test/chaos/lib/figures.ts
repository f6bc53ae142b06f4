/**
 * What each chaos file measured: faults injected, cases tried, what was lost. Each file writes its
 * own JSON under .outpost/chaos/ when it ends; scripts/reliability-report.ts turns the set into
 * docs/reliability.md. Figures are counted by the tests as they run, never typed by hand.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { type FileResult, type Figure, RESULTS_DIR } from "../../../scripts/lib/reliability-figures.js";

/** `full` under `npm run test:chaos`; `ci` (smaller counts, same assertions) under `npm test`. */
export const SCALE: "full" | "ci" = process.env.OUTPOST_CHAOS === "full" ? "full" : "ci";
export const FULL = SCALE === "full";

export class Figures {
  private readonly list: Figure[] = [];
  private readonly started = Date.now();

  constructor(private readonly file: string) {}

  add(f: Figure): Figure {
    this.list.push(f);
    return f;
  }

  /** Called from afterAll: writes .outpost/chaos/<file>.json. */
  write(): void {
    mkdirSync(RESULTS_DIR, { recursive: true });
    // The machine's load when the file ended (1, 5 and 15 minute averages): the suite shares its cores.
    const out: FileResult = { file: this.file, scale: SCALE, startedAt: new Date(this.started).toISOString(), durationMs: Date.now() - this.started, loadavg: loadavg(), figures: this.list };
    writeFileSync(join(RESULTS_DIR, `${this.file}.json`), `${JSON.stringify(out, null, 2)}\n`);
  }
}

/** Counts outcomes by key: tally(map, "401"). */
export function tally(map: Record<string, number>, key: string | number): void {
  map[String(key)] = (map[String(key)] ?? 0) + 1;
}
