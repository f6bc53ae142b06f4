/**
 * A private copy of the control plane's sources for one `wrangler dev`. wrangler dev watches every
 * file of the Worker's bundle (esbuild watch mode, always on in 4.x: there is no flag to turn it off),
 * the assets directory and wrangler.toml; on any change it rebuilds and restarts the Worker's
 * runtime. The restart drops every WebSocket and fails every request in flight, a POST with
 * wrangler's own 503 "Your worker restarted mid-request" (not our problem+json). In this repo the
 * sources change under a long run: a rebase in the worktree, helpers landing on main, `npm ci`
 * rewriting node_modules. A control plane started from a copy cannot be changed under it.
 *
 * The copy holds wrangler.toml, worker/, durable-objects/, protocol/, migrations/ and dashboard/
 * (the static assets), either as they are in the working tree or as committed at HEAD. Its
 * node_modules: the Worker's own dependencies (package.json "dependencies": hono, jose, zod) as
 * hard links file by file (npm replaces files rather than rewriting them, so a link keeps the old
 * file; copied where links cannot be made), @outpost/protocol pointing at the copied protocol, and
 * everything else as symlinks to the repo's (nothing of it is bundled).
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, cpSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./dev-vars.js";

export type SourceOf = "worktree" | "head";

export const CONTROL_PLANE_SOURCES = ["wrangler.toml", "worker", "durable-objects", "protocol", "migrations", "dashboard"];

/** The npm packages bundled into the Worker: the root package.json's dependencies. */
export function workerDependencies(): string[] {
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { dependencies?: Record<string, string> };
  return Object.keys(pkg.dependencies ?? {});
}

/** Copies the sources into `dir` and returns the copy's wrangler.toml. */
export function snapshotControlPlane(dir: string, from: SourceOf = "worktree"): string {
  mkdirSync(dir, { recursive: true });
  if (from === "head") {
    const tar = execFileSync("git", ["archive", "--format=tar", "HEAD", ...CONTROL_PLANE_SOURCES], { cwd: ROOT, maxBuffer: 256 * 1024 * 1024 });
    execFileSync("tar", ["-x", "-C", dir], { input: tar });
  } else {
    for (const entry of CONTROL_PLANE_SOURCES) cpSync(join(ROOT, entry), join(dir, entry), { recursive: true });
  }
  const modules = join(dir, "node_modules");
  mkdirSync(modules);
  const own = new Set(workerDependencies());
  for (const name of own) linkTree(join(ROOT, "node_modules", name), join(modules, name));
  for (const name of readdirSync(join(ROOT, "node_modules"))) {
    if (name === "@outpost" || name === ".bin" || own.has(name)) continue;
    symlinkSync(join(ROOT, "node_modules", name), join(modules, name));
  }
  mkdirSync(join(modules, "@outpost"));
  symlinkSync(join(dir, "protocol"), join(modules, "@outpost", "protocol"));
  return join(dir, "wrangler.toml");
}

/** `cp -al`: directories made, files hard-linked (copied where a link fails), symlinks kept as they are. */
function linkTree(from: string, to: string): void {
  const st = lstatSync(from);
  if (st.isSymbolicLink()) symlinkSync(readlinkSync(from), to);
  else if (st.isDirectory()) {
    mkdirSync(to, { recursive: true });
    for (const name of readdirSync(from)) linkTree(join(from, name), join(to, name));
  } else {
    try {
      linkSync(from, to);
    } catch {
      copyFileSync(from, to);
    }
  }
}
