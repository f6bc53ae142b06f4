/**
 * deploy/agent/outpost-agent@.service, checked by systemd itself: `systemd-analyze verify` in a
 * throwaway root (the system's own units copied in, and an executable where ExecStart points) must
 * load an instance with no complaint, and must complain once the program is missing, which shows
 * the check is real. The settings the unit hands the agent must be ones the agent reads.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../../scripts/lib/dev-vars.js";

const UNIT = join(ROOT, "deploy", "agent", "outpost-agent@.service");
const text = readFileSync(UNIT, "utf8");
const execStart = /^ExecStart=(\S+)/m.exec(text)?.[1] ?? "";

let root = "";
beforeAll(() => {
  execFileSync("systemd-analyze", ["--version"], { stdio: "ignore" }); // .ci/run installs systemd when it is missing
  root = mkdtempSync(join(tmpdir(), "outpost-unit-"));
  mkdirSync(join(root, "usr", "lib", "systemd"), { recursive: true });
  cpSync("/usr/lib/systemd/system", join(root, "usr", "lib", "systemd", "system"), { recursive: true, verbatimSymlinks: true });
  mkdirSync(join(root, "etc", "systemd", "system"), { recursive: true });
  writeFileSync(join(root, "etc", "systemd", "system", "outpost-agent@.service"), text);
  mkdirSync(join(root, execStart, ".."), { recursive: true });
});
afterAll(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

function verify(): { status: number | null; complaints: string[] } {
  const r = spawnSync("systemd-analyze", ["verify", `--root=${root}`, "--man=no", "outpost-agent@myenv.service"], { encoding: "utf8", timeout: 30_000 });
  // Only what is said about our unit counts (the host's own units may draw remarks of their own).
  const complaints = `${r.stdout}\n${r.stderr}`.split("\n").filter((l) => l.includes("outpost-agent"));
  return { status: r.status, complaints };
}

describe("the provider-agent's systemd unit", () => {
  it("points ExecStart at where npm install -g puts the agent, with no token on the command line", () => {
    expect(execStart).toBe("/usr/local/bin/outpost-agent");
    expect(text).not.toMatch(/^ExecStart=.*(token|TOKEN)/m);
    expect(text).toMatch(/^EnvironmentFile=\/etc\/outpost-agent\/%i\.env$/m);
  });

  it("passes systemd-analyze verify with no complaint", () => {
    writeFileSync(join(root, execStart), "#!/bin/sh\nexit 0\n");
    chmodSync(join(root, execStart), 0o755);
    expect(verify()).toEqual({ status: 0, complaints: [] });
  });

  it("fails verification when the program is missing (the check is real)", () => {
    rmSync(join(root, execStart));
    const r = verify();
    expect(r.status).not.toBe(0);
    expect(r.complaints.join("\n")).toMatch(/is not executable/);
  });

  it("sets only variables the agent reads, with the state file and spool outside the workspace", () => {
    const cli = readFileSync(join(ROOT, "provider-agent", "src", "cli.ts"), "utf8");
    const vars = [...text.matchAll(/^Environment=([A-Z_]+)=(.*)$/gm)].map((m) => ({ name: m[1]!, value: m[2]! }));
    expect(vars.map((v) => v.name)).toEqual(["OUTPOST_WORKSPACE", "OUTPOST_STATE_FILE", "OUTPOST_SPOOL_DIR"]);
    for (const v of vars) expect(cli, `${v.name} is documented by outpost-agent --help`).toContain(`env: ${v.name}`);
    const workspace = vars[0]!.value;
    for (const v of vars.slice(1)) expect(v.value.startsWith(`${workspace}/`)).toBe(false);
    expect(text).toMatch(/^StateDirectory=outpost-agent\/%i$/m);
    expect(workspace.startsWith("/var/lib/outpost-agent/%i/")).toBe(true);
  });
});
