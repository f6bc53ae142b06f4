/**
 * The docker base image's git exec-path (scripts/lib/git-exec-path.sh): git's builtins are found
 * whether this machine ships them as symlinks, hard links or copies of the git program, and each
 * becomes a symlink to the one copied `git`; programs of their own are left out. The copy is then
 * used as git's exec-path for a real commit, bundle and fetch (upload-pack and pack-objects run
 * from it by name).
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, linkSync, lstatSync, mkdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, expect, it } from "vitest";
import { gitEnv } from "../lib/workspace-files.js";
import { tempDir } from "./helpers.js";

const SCRIPT = path.join(import.meta.dirname, "..", "..", "scripts", "lib", "git-exec-path.sh");
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

it("recognises builtins shipped as symlinks, hard links and copies; leaves other programs out; the copy works as git's exec-path", async () => {
  const t = await tempDir("outpost-git-exec-path-");
  cleanups.push(t.cleanup);
  const realExecPath = execFileSync("git", ["--exec-path"]).toString().trim();
  const src = path.join(t.dir, "src");
  mkdirSync(src);
  copyFileSync(path.join(realExecPath, "git"), path.join(src, "git"));
  symlinkSync("git", path.join(src, "git-add")); // Debian
  linkSync(path.join(src, "git"), path.join(src, "git-upload-pack")); // git's own make install, Fedora
  copyFileSync(path.join(src, "git"), path.join(src, "git-pack-objects")); // a plain copy
  copyFileSync(path.join(src, "git"), path.join(src, "git-index-pack"));
  writeFileSync(path.join(src, "git-sh-setup"), "# a shell library\n");
  writeFileSync(path.join(src, "git-remote-http"), "#!/bin/sh\necho another program\n", { mode: 0o755 });
  symlinkSync("git-remote-http", path.join(src, "git-remote-https"));
  symlinkSync("nowhere", path.join(src, "git-dangling"));

  const dest = path.join(t.dir, "root", "usr", "lib", "git-core");
  execFileSync("bash", [SCRIPT, src, dest]);

  expect(lstatSync(path.join(dest, "git")).isFile()).toBe(true);
  expect(readFileSync(path.join(dest, "git")).equals(readFileSync(path.join(src, "git")))).toBe(true);
  for (const name of ["git-add", "git-upload-pack", "git-pack-objects", "git-index-pack"]) {
    expect(lstatSync(path.join(dest, name)).isSymbolicLink(), name).toBe(true);
    expect(readlinkSync(path.join(dest, name)), name).toBe("git");
  }
  for (const name of ["git-sh-setup", "git-remote-http", "git-remote-https", "git-dangling"]) {
    expect(() => lstatSync(path.join(dest, name)), name).toThrow();
  }

  // The copy as git's exec-path: a commit, a bundle, and fetches from the bundle and from a repository.
  const env = { ...gitEnv, GIT_EXEC_PATH: dest };
  const git = (cwd: string, ...args: string[]) => execFileSync(path.join(dest, "git"), args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] }).toString();
  const a = path.join(t.dir, "a");
  const b = path.join(t.dir, "b");
  mkdirSync(a);
  mkdirSync(b);
  git(a, "init", "-q", "-b", "main");
  writeFileSync(path.join(a, "f.txt"), "x\n");
  git(a, "add", "f.txt");
  git(a, "commit", "-qm", "check");
  git(a, "bundle", "create", "-q", path.join(t.dir, "a.bundle"), "HEAD");
  git(b, "init", "-q");
  git(b, "fetch", "-q", path.join(t.dir, "a.bundle"), "HEAD");
  git(b, "fetch", "-q", a, "main");
  expect(git(b, "rev-parse", "FETCH_HEAD")).toBe(git(a, "rev-parse", "HEAD"));
});
