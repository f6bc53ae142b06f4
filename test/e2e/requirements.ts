/**
 * What some end-to-end tests need from the machine (bubblewrap that can make namespaces, a Docker
 * daemon with the local base image), checked once; a test file that cannot run says why, out loud.
 * CI provides both (.ci/run), so there these never skip.
 */
import { execFileSync } from "node:child_process";

function fails(file: string, args: string[]): string | null {
  try {
    execFileSync(file, args, { stdio: "pipe", timeout: 20_000 });
    return null;
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    return (e.stderr?.toString().trim() || e.message).split("\n")[0] ?? e.message;
  }
}

/** Why the sandbox provider cannot run here, or null. */
export function bwrapUnavailable(): string | null {
  const why = fails("bwrap", ["--unshare-all", "--share-net", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--", "true"]);
  return why ? `bubblewrap cannot create a sandbox here (${why}); apt-get install bubblewrap` : null;
}

export const DOCKER_IMAGE = process.env.OUTPOST_DOCKER_IMAGE ?? "outpost-agent-base:latest";

/** Why the docker provider cannot run here, or null. */
export function dockerUnavailable(): string | null {
  if (process.env.OUTPOST_DOCKER === "off") return "OUTPOST_DOCKER=off";
  const daemon = fails("docker", ["info", "--format", "{{.ServerVersion}}"]);
  if (daemon) return `no Docker daemon (${daemon}); start dockerd --bridge=none --iptables=false`;
  const image = fails("docker", ["image", "inspect", DOCKER_IMAGE]);
  return image ? `the image ${DOCKER_IMAGE} is missing; run scripts/docker-base-image.sh` : null;
}

/** The reason, printed, so a skipped file is never silent. */
export function skipReason(what: string, why: string | null): boolean {
  if (why) console.warn(`skipping ${what}: ${why}`);
  return why !== null;
}
