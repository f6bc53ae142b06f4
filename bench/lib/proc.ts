/**
 * Process figures from Linux /proc: resident memory (VmRSS) and CPU time (utime + stime) of one
 * process or of a process tree. Elsewhere every reading is null and the bench says so.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";

/** Kernel clock ticks per second for /proc/PID/stat times (`getconf CLK_TCK`; 100 on Linux). */
export const CLK_TCK = 100;

export const hasProc = () => existsSync("/proc/self/stat");

/** VmRSS of one process in bytes, or null when it is gone. */
export function rssBytes(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/**
 * VmRSS split: RssAnon (the process's own heap and stacks) and RssFile (mapped files: the node
 * binary, shared); and VmHWM, the kernel's record of the highest VmRSS the process ever had.
 */
export function memoryBytes(pid: number): { rss: number; anon: number; file: number; peak: number } | null {
  try {
    const text = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, "m").exec(text)?.[1] ?? Number.NaN) * 1024;
    return { rss: kb("VmRSS"), anon: kb("RssAnon"), file: kb("RssFile"), peak: kb("VmHWM") };
  } catch {
    return null;
  }
}

interface Stat {
  pid: number;
  comm: string;
  ppid: number;
  /** utime + stime, in clock ticks. */
  cpuTicks: number;
}

function readStat(pid: number): Stat | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm is in parentheses and may itself contain spaces or parentheses: split after the last ')'.
    const close = text.lastIndexOf(")");
    const comm = text.slice(text.indexOf("(") + 1, close);
    const rest = text.slice(close + 2).split(" ");
    // Fields after comm, numbered from 3 (state): ppid is 4, utime 14, stime 15.
    return { pid, comm, ppid: Number(rest[1]), cpuTicks: Number(rest[11]) + Number(rest[12]) };
  } catch {
    return null;
  }
}

/** CPU time (user + system) one process has used so far, in milliseconds. */
export function cpuMs(pid: number): number | null {
  const s = readStat(pid);
  return s ? (s.cpuTicks * 1000) / CLK_TCK : null;
}

/** `root` and every live descendant, with their command names. */
export function processTree(root: number): Array<{ pid: number; comm: string }> {
  if (!hasProc()) return [];
  const stats: Stat[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const s = readStat(Number(name));
    if (s) stats.push(s);
  }
  const children = new Map<number, Stat[]>();
  for (const s of stats) children.set(s.ppid, [...(children.get(s.ppid) ?? []), s]);
  const self = stats.find((s) => s.pid === root);
  const out: Array<{ pid: number; comm: string }> = self ? [{ pid: root, comm: self.comm }] : [];
  const queue = [root];
  while (queue.length) {
    for (const c of children.get(queue.shift()!) ?? []) {
      out.push({ pid: c.pid, comm: c.comm });
      queue.push(c.pid);
    }
  }
  return out;
}

/** Summed VmRSS of the processes under `root` whose command name matches (all when no filter). */
export function treeRss(root: number, comm?: RegExp): { bytes: number; processes: Array<{ pid: number; comm: string; rssBytes: number }> } {
  const processes = processTree(root)
    .filter((p) => !comm || comm.test(p.comm))
    .map((p) => ({ ...p, rssBytes: rssBytes(p.pid) ?? 0 }));
  return { bytes: processes.reduce((a, p) => a + p.rssBytes, 0), processes };
}

export const MiB = 1024 * 1024;
export const toMiB = (bytes: number) => Math.round((bytes / MiB) * 10) / 10;
