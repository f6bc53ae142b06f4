/**
 * The process groups this agent started (each exec and run is its own group), recorded in a file
 * beside the state file so that an agent killed with SIGKILL (no exit hook runs) does not leave
 * them running: the next agent process reads the file and kills the leftovers before it connects.
 *
 * Each entry is the group id and its leader's start time (from /proc/<pid>/stat), so a pid the
 * kernel has since given to another process is never killed: a group whose leader still lives is
 * ours only if the start time matches; a group whose leader is gone is ours, because its id cannot
 * be reused while any member is left. Writes are atomic (temp file + rename) and synchronous.
 */
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import * as z from "zod";
import { errnoCode } from "./errors.js";
import { alive } from "./host/processes.js";
import type { Logger } from "./log.js";

const Ledger = z.array(z.object({ pgid: z.number().int().positive(), start: z.string() }));
type Entry = z.infer<typeof Ledger>[number];

let file: string | null = null;
const groups = new Map<number, string>();

/** The leader's start time in clock ticks since boot, or null when there is no such process (or no /proc). */
function startTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

function save(): void {
  if (!file) return;
  const entries: Entry[] = [...groups].map(([pgid, start]) => ({ pgid, start }));
  const tmp = `${file}.tmp`;
  try {
    writeFileSync(tmp, JSON.stringify(entries), { mode: 0o600 });
    renameSync(tmp, file);
  } catch {
    // Best effort (a full disk, say): the command still runs; only the cleanup after a SIGKILL may miss it.
  }
}

/**
 * Kills the groups a previous agent process recorded in `ledgerFile` and left running, then keeps
 * recording this process's groups there. Returns how many groups were killed.
 */
export function reapLeftoverGroups(ledgerFile: string, log: Logger): number {
  let entries: Entry[] = [];
  try {
    const parsed = Ledger.safeParse(JSON.parse(readFileSync(ledgerFile, "utf8")));
    if (parsed.success) entries = parsed.data;
    else log.warn(`the process-group file ${ledgerFile} is malformed; ignoring it`);
  } catch (err) {
    if (errnoCode(err) !== "ENOENT") log.warn(`cannot read the process-group file ${ledgerFile}: ${err instanceof Error ? err.message : String(err)}`);
  }
  let killed = 0;
  for (const { pgid, start } of entries) {
    const leader = startTime(pgid);
    const ours = leader === null ? alive(-pgid) : leader === start;
    if (!ours) continue;
    try {
      process.kill(-pgid, "SIGKILL");
      killed++;
      log.warn(`killed process group ${pgid}, left running by a previous agent process`);
    } catch {
      // gone meanwhile
    }
  }
  file = ledgerFile;
  groups.clear();
  save();
  return killed;
}

/** Records a group this agent started (its leader's pid); a no-op until reapLeftoverGroups named the file. */
export function recordGroup(pid: number | undefined): void {
  if (!file || pid === undefined) return;
  const start = startTime(pid);
  if (start === null) return; // already gone, or no /proc to tell a reused pid apart
  groups.set(pid, start);
  save();
}

export function forgetGroup(pid: number | undefined): void {
  if (!file || pid === undefined || !groups.delete(pid)) return;
  save();
}
