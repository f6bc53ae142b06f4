/**
 * The control plane's sources, copied once at the start of a run: wrangler dev watches its sources
 * and restarts the Worker on every edit, which would break a transfer or a latency series if someone
 * edits the repo while the bench runs, and would mix two versions in one result. The copy holds
 * wrangler.toml, worker/, durable-objects/, protocol/, migrations/ and dashboard/ (the static assets), either as they are in the
 * working tree or as committed at HEAD, and a node_modules of links to the repo's, except that
 * @outpost/protocol points at the copied protocol.
 */
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, readdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../../scripts/lib/dev-vars.js";

export type SourceOf = "worktree" | "head";

export const CONTROL_PLANE_SOURCES = ["wrangler.toml", "worker", "durable-objects", "protocol", "migrations", "dashboard"];

/** Copies the sources into `dir` and returns the copy's wrangler.toml. */
export function snapshotControlPlane(dir: string, from: SourceOf): string {
  mkdirSync(dir, { recursive: true });
  if (from === "head") {
    const tar = execFileSync("git", ["archive", "--format=tar", "HEAD", ...CONTROL_PLANE_SOURCES], { cwd: ROOT, maxBuffer: 256 * 1024 * 1024 });
    execFileSync("tar", ["-x", "-C", dir], { input: tar });
  } else {
    for (const entry of CONTROL_PLANE_SOURCES) cpSync(join(ROOT, entry), join(dir, entry), { recursive: true });
  }
  const modules = join(dir, "node_modules");
  mkdirSync(modules);
  for (const name of readdirSync(join(ROOT, "node_modules"))) {
    if (name === "@outpost" || name === ".bin") continue;
    symlinkSync(join(ROOT, "node_modules", name), join(modules, name));
  }
  mkdirSync(join(modules, "@outpost"));
  symlinkSync(join(dir, "protocol"), join(modules, "@outpost", "protocol"));
  return join(dir, "wrangler.toml");
}
