/**
 * A workspace on a disk that fills up: a tmpfs of the given size when we may mount one (root), else
 * a plain directory whose agent runs under RLIMIT_FSIZE (prlimit --fsize: no file may grow past the
 * size, writes fail with EFBIG, which the agent reports as no_space like ENOSPC). OUTPOST_CHAOS_DISK=rlimit
 * forces the fallback (to test it as root). With neither, limitedDisk throws and says why.
 */
import { execFileSync } from "node:child_process";
import { mkdir, rm } from "node:fs/promises";

export interface LimitedDisk {
  workspace: string;
  how: string;
  /** Runs the agent under the limit (the fallback); absent for a tmpfs. */
  agentWrapper?: string[];
  release(): Promise<void>;
}

function has(command: string): boolean {
  try {
    execFileSync(command, ["--version"], { stdio: "pipe" });
    return true;
  } catch {
    return false;
  }
}

export async function limitedDisk(dir: string, bytes: number): Promise<LimitedDisk> {
  await mkdir(dir, { recursive: true });
  const mib = bytes / 1024 / 1024;
  let mountError = "OUTPOST_CHAOS_DISK=rlimit";
  if (process.env.OUTPOST_CHAOS_DISK !== "rlimit") {
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", `size=${bytes},mode=0755`, "tmpfs", dir], { stdio: "pipe" });
      return {
        workspace: dir,
        how: `a ${mib} MiB tmpfs`,
        async release() {
          try {
            execFileSync("umount", ["-l", dir], { stdio: "pipe" });
          } finally {
            await rm(dir, { recursive: true, force: true });
          }
        },
      };
    } catch (err) {
      mountError = err instanceof Error ? err.message.split("\n")[0]! : String(err);
    }
  }
  if (!has("prlimit")) throw new Error(`no small disk: cannot mount a tmpfs (${mountError}) and there is no prlimit for the RLIMIT_FSIZE fallback`);
  return {
    workspace: dir,
    how: `files limited to ${mib} MiB (RLIMIT_FSIZE on the agent; no tmpfs: ${mountError})`,
    agentWrapper: ["prlimit", `--fsize=${bytes}`, "--"],
    release: () => rm(dir, { recursive: true, force: true }),
  };
}
