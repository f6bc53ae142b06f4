/** Finding and ending processes by what their command line mentions (Linux /proc): leak checks for tests and the conformance kit. */
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
