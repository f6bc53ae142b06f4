/**
 * The agent's record of the process groups it started (provider-agent/src/process-groups.ts): a
 * later agent process kills the groups a killed one left running, and never a group whose id the
 * kernel has given to another process since. Real processes, real signals.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { forgetGroup, reapLeftoverGroups, recordGroup } from "../../provider-agent/src/process-groups.js";
import { silentLogger } from "../../provider-agent/src/log.js";
import { waitFor } from "../../scripts/lib/wait.js";

function alive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

function group(): number {
  // A leader with a child of its own: both must go.
  const child = spawn("sh", ["-c", "sleep 30 & sleep 30; wait"], { detached: true, stdio: "ignore" });
  child.unref();
  return child.pid!;
}

describe("process groups left by a killed agent", () => {
  it("a later agent process kills the recorded groups that still run, and forgets finished ones", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "outpost-groups-")), "agent.json.groups.json");
    expect(reapLeftoverGroups(file, silentLogger)).toBe(0);
    const left = group();
    const finished = group();
    recordGroup(left);
    recordGroup(finished);
    forgetGroup(finished);
    expect((JSON.parse(readFileSync(file, "utf8")) as Array<{ pgid: number }>).map((e) => e.pgid)).toEqual([left]);
    // The agent is killed here (nothing runs on SIGKILL); the next one starts with the same file.
    expect(reapLeftoverGroups(file, silentLogger)).toBe(1);
    await waitFor(() => !alive(left), { timeoutMs: 5_000, what: "the leftover group to die" });
    expect(alive(finished)).toBe(true);
    process.kill(-finished, "SIGKILL");
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual([]);
  });

  it("leaves alone a group whose leader's start time differs (a reused pid), and ignores a malformed file", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "outpost-groups-")), "agent.json.groups.json");
    const other = group();
    writeFileSync(file, JSON.stringify([{ pgid: other, start: "1" }]));
    expect(reapLeftoverGroups(file, silentLogger)).toBe(0);
    expect(alive(other)).toBe(true);
    process.kill(-other, "SIGKILL");
    writeFileSync(file, "{not json");
    expect(reapLeftoverGroups(file, silentLogger)).toBe(0);
  });
});
