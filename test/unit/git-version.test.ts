/**
 * Snapshots need git 2.38 or newer: the version line is parsed and compared, and the snapshot
 * service refuses to start with a clear error when the environment's git is older or missing
 * (a stand-in `git` on PATH plays the old one).
 */
import { chmodSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { isRecentEnough, parseGitVersion, requireGit } from "../../provider-agent/src/services/git-version.js";
import { tempDir } from "./helpers.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

/** A directory holding only a `git` that prints `line`, to be the whole PATH. */
async function fakeGit(line: string): Promise<string> {
  const t = await tempDir("outpost-fake-git-");
  cleanups.push(t.cleanup);
  const file = path.join(t.dir, "git");
  writeFileSync(file, `#!/bin/sh\necho '${line}'\n`);
  chmodSync(file, 0o755);
  return t.dir;
}

describe("git version", () => {
  it("parses version lines and compares them with 2.38", () => {
    expect(parseGitVersion("git version 2.39.5\n")).toEqual([2, 39, 5]);
    expect(parseGitVersion("git version 2.40.0.windows.1")).toEqual([2, 40, 0]);
    expect(parseGitVersion("git version 2.38")).toEqual([2, 38, 0]);
    expect(parseGitVersion("hello")).toBeNull();
    expect(isRecentEnough([2, 38, 0])).toBe(true);
    expect(isRecentEnough([2, 45, 1])).toBe(true);
    expect(isRecentEnough([3, 0, 0])).toBe(true);
    expect(isRecentEnough([2, 37, 9])).toBe(false);
    expect(isRecentEnough([1, 99, 0])).toBe(false);
  });

  it("accepts this machine's git", async () => {
    expect(parseGitVersion(`git version ${await requireGit()}`)).not.toBeNull();
  });

  it("refuses an old git, naming both versions", async () => {
    const dir = await fakeGit("git version 2.30.2");
    await expect(requireGit("git", { PATH: dir })).rejects.toMatchObject({
      code: "invalid_state",
      message: expect.stringMatching(/need git 2\.38 or newer.*has git 2\.30\.2/),
    });
  });

  it("refuses a missing git, saying to install it", async () => {
    const t = await tempDir("outpost-no-git-");
    cleanups.push(t.cleanup);
    await expect(requireGit("git", { PATH: t.dir })).rejects.toMatchObject({ code: "invalid_state", message: expect.stringMatching(/need git 2\.38 or newer.*install git/) });
  });
});
