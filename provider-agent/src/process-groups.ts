/**
 * The process groups this agent started (each exec and run is its own group), recorded in a file
 * beside the state file so that an agent killed with SIGKILL (no exit hook runs) does not leave
 * them running: the next agent process reads the file and kills the leftovers before it connects.
 *
 * Each entry is the group id and its leader's start time (from /proc/<pid>/stat), so a pid the
 * kernel has since given to another process is never killed: a group whose leader still lives is
 * ours only if the start time matches; a group whose leader is gone is ours, because its id cannot
 * be reused while any member is left.
 *
 * Every write replaces the whole file (temp file + rename), so a crash never leaves half of one.
 * A new group is written at once (synchronously, before its command can outlive a killed agent);
 * a group that is gone is dropped with the next write or, at the latest, FORGET_FLUSH_MS later,
 * without blocking (and at exit): the forgets of a burst of commands share one write, and a quick
 * command's forget usually rides on the next command's record. An entry left over for a group
 * that no longer exists is harmless (see above); only an agent killed within FORGET_FLUSH_MS of a
 * command's end also kills what that command left running in its group. Callers forget a stopped
 * group only after its SIGKILL, so a member that ignores SIGTERM stays listed until it is gone.
 */
import { readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import * as z from "zod";
import { errnoCode } from "./errors.js";
import { alive } from "./host/processes.js";
import type { Logger } from "./log.js";

const Ledger = z.array(z.object({ pgid: z.number().int().positive(), start: z.string() }));
type Entry = z.infer<typeof Ledger>[number];

/** How long a forgotten group may stay in the file when no new group comes to write it out sooner. */
export const FORGET_FLUSH_MS = 250;

let file: string | null = null;
const groups = new Map<number, string>();
/** Bumped by every write; a deferred write that finds it moved on is stale and is dropped. */
let generation = 0;
let flushTimer: NodeJS.Timeout | null = null;
let exitHooked = false;
/** Writes so far (tests and the bench read it). */
let writes = 0;

/** The leader's start time in clock ticks since boot, or null when there is no such process (or no /proc). */
function startTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

function contents(): string {
  const entries: Entry[] = [...groups].map(([pgid, start]) => ({ pgid, start }));
  return JSON.stringify(entries);
}

function cancelFlush(): void {
  if (flushTimer) clearTimeout(flushTimer);
  flushTimer = null;
}

/** Writes the ledger now (temp file + rename); any deferred write becomes unnecessary. */
function saveNow(): void {
  if (!file) return;
  cancelFlush();
  generation++;
  writes++;
  const tmp = `${file}.tmp`;
  try {
    writeFileSync(tmp, contents(), { mode: 0o600 });
    renameSync(tmp, file);
  } catch {
    // Best effort (a full disk, say): the command still runs; only the cleanup after a SIGKILL may miss it.
  }
}

/** Writes the ledger within FORGET_FLUSH_MS without blocking, unless a write comes sooner. */
function saveLater(): void {
  if (!file || flushTimer) return;
  flushTimer = setTimeout(() => {
    flushTimer = null;
    void flush();
  }, FORGET_FLUSH_MS);
  flushTimer.unref();
}

async function flush(): Promise<void> {
  const target = file;
  if (!target) return;
  const mine = ++generation;
  writes++;
  const tmp = `${target}.${process.pid}.later.tmp`;
  try {
    await writeFile(tmp, contents(), { mode: 0o600 });
    // A write that happened meanwhile holds newer contents: never put older ones over it.
    if (mine === generation && file === target) renameSync(tmp, target);
    else unlinkSync(tmp);
  } catch {
    // best effort, as in saveNow
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
  saveNow();
  if (!exitHooked) {
    exitHooked = true;
    process.on("exit", flushGroups);
  }
  return killed;
}

/** Records a group this agent started (its leader's pid); a no-op until reapLeftoverGroups named the file. */
export function recordGroup(pid: number | undefined): void {
  if (!file || pid === undefined) return;
  const start = startTime(pid);
  if (start === null) return; // already gone, or no /proc to tell a reused pid apart
  groups.set(pid, start);
  saveNow();
}

/** Drops a group that is gone (exited, or sent SIGKILL); written out with the next write or soon after. */
export function forgetGroup(pid: number | undefined): void {
  if (!file || pid === undefined || !groups.delete(pid)) return;
  saveLater();
}

/** Writes a pending forget now (a clean exit; tests). */
export function flushGroups(): void {
  if (flushTimer) saveNow();
}

/** How many times the ledger has been written by this process. */
export function ledgerWrites(): number {
  return writes;
}
