/**
 * What the snapshot and diff tests (unit and e2e) compare workspaces with: checksums of the files,
 * a fingerprint of a whole tree, and git run with a fixed identity and no user or system config.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { lstat, readdir, readFile, readlink } from "node:fs/promises";
import { join } from "node:path";

/** sha256 of every file under `dir` (a symlink as `link:<target>`) by relative path, except what `ignore` matches: by default the user's .git; null, nothing. */
export async function checksums(dir: string, ignore: RegExp | null = /^\.git(\/|$)/): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await readdir(dir, { recursive: true })).sort()) {
    if (ignore?.test(name)) continue;
    const full = join(dir, name);
    const st = await lstat(full);
    if (st.isSymbolicLink()) out[name] = `link:${await readlink(full)}`;
    else if (st.isFile()) out[name] = createHash("sha256").update(await readFile(full)).digest("hex");
  }
  return out;
}

/** Every byte, mode and mtime under a directory: proof that nothing touched it. */
export async function fingerprint(dir: string): Promise<string> {
  const hash = createHash("sha256");
  for (const name of (await readdir(dir, { recursive: true })).sort()) {
    const full = join(dir, name);
    const st = await lstat(full);
    hash.update(`${name}\0${st.mode}\0${st.mtimeMs}\0${st.size}\0`);
    if (st.isFile()) hash.update(await readFile(full));
  }
  return hash.digest("hex");
}

/** git's environment for tests: a fixed author and committer, no global or system config. */
export const gitEnv = { ...process.env, GIT_CONFIG_GLOBAL: "/dev/null", GIT_CONFIG_NOSYSTEM: "1", GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@example.com", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@example.com" };

/** Runs git in `cwd` and returns its stdout. */
export const git = (cwd: string, ...args: string[]): string => execFileSync("git", ["-C", cwd, ...args], { stdio: "pipe", env: gitEnv }).toString();
