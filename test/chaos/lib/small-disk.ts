/**
 * A workspace on a disk that fills up: a tmpfs of the given size when we may mount one (root), else
 * a directory whose agent runs under RLIMIT_FSIZE (files may not grow past the size: EFBIG).
 */
import { execFileSync } from "node:child_process";
import { mkdir, rm } from "node:fs/promises";

export interface LimitedDisk {
  workspace: string;
  how: string;
  release(): Promise<void>;
}

export async function limitedDisk(dir: string, bytes: number): Promise<LimitedDisk> {
  await mkdir(dir, { recursive: true });
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${bytes},mode=0755`, "tmpfs", dir], { stdio: "pipe" });
    return {
      workspace: dir,
      how: `a ${bytes / 1024 / 1024} MiB tmpfs`,
      async release() {
        try {
          execFileSync("umount", ["-l", dir], { stdio: "pipe" });
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      },
    };
  } catch {
    throw new Error("cannot mount a tmpfs here (not root?); the RLIMIT_FSIZE fallback is not wired yet");
  }
}
