/** Finding and ending processes by what their command line mentions (Linux /proc), and whether one still lives: leak checks for tests, scripts and the conformance kit. */
import { existsSync, readdirSync, readFileSync } from "node:fs";

/** Pids of live processes whose command line mentions `text` (Linux /proc; empty elsewhere). */
export function processesMentioning(text: string): number[] {
  if (!existsSync("/proc/self/cmdline")) return [];
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, "utf8");
      if (cmdline.includes(text)) pids.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** SIGKILLs whatever still mentions `text` (so a failed test leaks nothing) and returns those pids. */
export function killLeftovers(text: string): number[] {
  const pids = processesMentioning(text);
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  return pids;
}

/**
 * Whether the process still lives. On Linux a zombie (exited, not yet reaped by its parent) counts
 * as gone, as it runs nothing; elsewhere signal 0 decides (EPERM: it lives, under another user).
 */
export function pidAlive(pid: number): boolean {
  const stat = `/proc/${pid}/stat`;
  if (existsSync("/proc/self/stat")) {
    try {
      const state = readFileSync(stat, "utf8").replace(/^.*\) /s, "")[0];
      return state !== "Z" && state !== "X";
    } catch {
      return false;
    }
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
