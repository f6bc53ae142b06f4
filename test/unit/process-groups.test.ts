/**
 * The agent's record of the process groups it started (provider-agent/src/process-groups.ts): a
 * later agent process kills the groups a killed one left running (a real kill -9 of a real
 * process), and never a group whose id the kernel has given to another process since; a stopped
 * command's group stays listed until its SIGKILL, so a member that ignores SIGTERM cannot escape;
 * finished commands cost no write of their own. Real processes, real signals.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { realClock } from "../../provider-agent/src/clock.js";
import { flushGroups, forgetGroup, ledgerWrites, reapLeftoverGroups, recordGroup } from "../../provider-agent/src/process-groups.js";
import { silentLogger } from "../../provider-agent/src/log.js";
import { KILL_GRACE_MS, runExec } from "../../provider-agent/src/services/exec.js";
import { RunManager } from "../../provider-agent/src/services/runs.js";
import { groupAlive } from "../../scripts/lib/process-group.js";
import { waitFor } from "../../scripts/lib/wait.js";

const listed = (file: string) => (JSON.parse(readFileSync(file, "utf8")) as Array<{ pgid: number }>).map((e) => e.pgid);
const ledger = () => join(mkdtempSync(join(tmpdir(), "outpost-groups-")), "agent.json.groups.json");

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
    flushGroups();
    expect(listed(file)).toEqual([left]);
    // The agent is killed here (nothing runs on SIGKILL); the next one starts with the same file.
    expect(reapLeftoverGroups(file, silentLogger)).toBe(1);
    await waitFor(() => !groupAlive(left), { timeoutMs: 5_000, what: "the leftover group to die" });
    expect(groupAlive(finished)).toBe(true);
    process.kill(-finished, "SIGKILL");
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual([]);
  });

  it("leaves alone a group whose leader's start time differs (a reused pid), and ignores a malformed file", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "outpost-groups-")), "agent.json.groups.json");
    const other = group();
    writeFileSync(file, JSON.stringify([{ pgid: other, start: "1" }]));
    expect(reapLeftoverGroups(file, silentLogger)).toBe(0);
    expect(groupAlive(other)).toBe(true);
    process.kill(-other, "SIGKILL");
    writeFileSync(file, "{not json");
    expect(reapLeftoverGroups(file, silentLogger)).toBe(0);
  });

  it("an agent killed with kill -9 right after it started a command: the next agent kills the command's group", async () => {
    const file = ledger();
    // A real agent-like process: names the ledger, starts a group, records it, then is killed.
    const script = join(mkdtempSync(join(tmpdir(), "outpost-groups-agent-")), "agent.ts");
    const module = resolve("provider-agent/src/process-groups.ts");
    writeFileSync(
      script,
      `import { spawn } from "node:child_process";
import { reapLeftoverGroups, recordGroup } from ${JSON.stringify(module)};
reapLeftoverGroups(${JSON.stringify(file)}, { debug() {}, info() {}, warn() {}, error() {} } as never);
const child = spawn("sh", ["-c", "sleep 30 & sleep 30; wait"], { detached: true, stdio: "ignore" });
recordGroup(child.pid);
console.log(child.pid);
setInterval(() => {}, 1000);
`,
    );
    // One process (node with tsx's loader), so SIGKILL hits the process that recorded the group.
    const agent = spawn(process.execPath, ["--import", "tsx", script], { cwd: resolve("."), stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    agent.stdout.on("data", (b: Buffer) => (out += b.toString()));
    const pgid = Number(await waitFor(() => /^\d+\n/.exec(out)?.[0], { timeoutMs: 20_000, what: "the agent to start its command" }));
    agent.kill("SIGKILL");
    await new Promise((r) => agent.once("exit", r));
    expect(groupAlive(pgid)).toBe(true);
    expect(listed(file)).toEqual([pgid]);
    expect(reapLeftoverGroups(file, silentLogger)).toBe(1);
    await waitFor(() => !groupAlive(pgid), { timeoutMs: 5_000, what: "the leftover group to die" });
  });

  it("a stopped command's group stays listed until its SIGKILL, so a member that ignores SIGTERM cannot escape a killed agent", async () => {
    const file = ledger();
    reapLeftoverGroups(file, silentLogger);
    const workspace = mkdtempSync(join(tmpdir(), "outpost-groups-ws-"));
    // The leader dies of SIGTERM; a member of its group ignores it.
    const command = ["sh", "-c", "(trap '' TERM; exec sleep 30 >/dev/null 2>&1) & exec sleep 30"];
    const result = await runExec({ command, timeoutMs: 300 }, { workspace, clock: realClock() });
    expect(result.timedOut).toBe(true);
    flushGroups();
    const [pgid] = listed(file);
    expect(pgid).toBeGreaterThan(0);
    // Here, within the grace, an agent killed with SIGKILL leaves the member listed: the next one kills it.
    expect(groupAlive(pgid!)).toBe(true);
    await waitFor(() => !groupAlive(pgid!), { timeoutMs: KILL_GRACE_MS + 5_000, what: "the SIGKILL after the grace" });
    flushGroups();
    expect(listed(file)).toEqual([]);
  });

  it("a cancelled run's group stays listed until its SIGKILL", async () => {
    const file = ledger();
    reapLeftoverGroups(file, silentLogger);
    const workspace = mkdtempSync(join(tmpdir(), "outpost-groups-ws-"));
    const runs = new RunManager({ workspace, out: { sendPaced: async () => {} }, killGraceMs: 500 });
    try {
      const { pid } = await runs.start({ runId: "run_1", command: ["sh", "-c", "(trap '' TERM; exec sleep 30 >/dev/null 2>&1) & exec sleep 30"] });
      await waitFor(() => readFileSync(`/proc/${pid}/cmdline`, "utf8").startsWith("sleep"), { timeoutMs: 5_000, what: "the run to start" });
      runs.cancel("run_1");
      await waitFor(() => runs.reports()[0]?.state === "exited", { timeoutMs: 5_000, what: "the run's leader to exit" });
      flushGroups();
      expect(listed(file)).toEqual([pid]);
      expect(groupAlive(pid)).toBe(true);
      await waitFor(() => !groupAlive(pid), { timeoutMs: 5_000, what: "the SIGKILL after the grace" });
      flushGroups();
      expect(listed(file)).toEqual([]);
    } finally {
      runs.dispose();
    }
  });

  it("finished commands cost one ledger write each (their record), not two", async () => {
    const file = ledger();
    reapLeftoverGroups(file, silentLogger);
    // No await between the calls, so the deferred write cannot come in between: the count is exact.
    const [a, b] = [group(), group()];
    try {
      const before = ledgerWrites();
      recordGroup(a);
      forgetGroup(a);
      expect(ledgerWrites() - before).toBe(1);
      expect(listed(file)).toEqual([a]);
      // The forget rides on the next record.
      recordGroup(b);
      expect(ledgerWrites() - before).toBe(2);
      expect(listed(file)).toEqual([b]);
      forgetGroup(b);
    } finally {
      for (const pgid of [a, b]) process.kill(-pgid, "SIGKILL");
    }
    // Real commands: the last forget is written by the deferred write, with no record after it.
    const workspace = mkdtempSync(join(tmpdir(), "outpost-groups-ws-"));
    for (let i = 0; i < 10; i++) expect((await runExec({ command: ["true"] }, { workspace, clock: realClock() })).exitCode).toBe(0);
    await waitFor(() => listed(file).length === 0, { timeoutMs: 5_000, what: "the last forget to be written" });
  });
});
