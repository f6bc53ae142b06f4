/**
 * The `outpost` CLI's own logic, in process: --help for the whole CLI, each group and each command;
 * usage errors; where configuration comes from; how API failures become messages with a next step;
 * exit codes of remote commands; progress lines. The end-to-end test (test/e2e/outpost-cli.test.ts)
 * runs the built bundle against the real Worker.
 */
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { ApiError } from "@outpost/client";
import { runCli, type Runtime } from "../../cli/src/cli.js";
import { duration } from "../../cli/src/command.js";
import { COMMANDS } from "../../cli/src/commands/index.js";
import { exitCodeOf } from "../../cli/src/commands/exec.js";
import { location } from "../../cli/src/commands/files.js";
import { resolveConfig } from "../../cli/src/config.js";
import { explain } from "../../cli/src/errors.js";
import { counted, progress, progressLine } from "../../cli/src/progress.js";

async function cli(argv: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (d: Buffer) => (out += d.toString()));
  stderr.on("data", (d: Buffer) => (err += d.toString()));
  const rt: Runtime = { stdin: new PassThrough(), stdout, stderr, env, cwd: "/", onSignal: () => () => undefined };
  const code = await runCli(argv, rt, COMMANDS);
  return { code, stdout: out, stderr: err };
}

describe("outpost --help", () => {
  it("lists every command at the top level, exit 0", async () => {
    for (const argv of [["--help"], ["-h"], ["help"]]) {
      const r = await cli(argv);
      expect(r.code).toBe(0);
      for (const c of COMMANDS) expect(r.stdout).toContain(`  ${c.name} `);
      expect(r.stdout).toContain("OUTPOST_URL/OUTPOST_TOKEN");
    }
    expect((await cli([])).code).toBe(2); // no command: the list, but as a usage error
  });

  it("answers for every group and every command, naming its usage, options and global options", async () => {
    for (const group of ["env", "runs", "providers", "hosts", "tokens", "gateway", "routes", "snapshots", "children", "objectives", "threads"]) {
      const r = await cli([group, "--help"]);
      expect(r.code, group).toBe(0);
      expect(r.stdout).toContain(`Usage: outpost ${group} SUBCOMMAND`);
    }
    for (const c of COMMANDS) {
      for (const argv of [[...c.name.split(" "), "--help"], ["help", ...c.name.split(" ")]]) {
        const r = await cli(argv);
        expect(r.code, argv.join(" ")).toBe(0);
        expect(r.stdout).toContain(`Usage: outpost ${c.name}`);
        expect(r.stdout).toContain(c.summary);
        expect(r.stdout).toContain("--profile FILE");
        for (const name of Object.keys(c.options ?? {})) expect(r.stdout).toContain(`--${name}`);
        if (c.json) expect(r.stdout).toContain("--json");
      }
    }
  });

  it("every read command (list, get, ls, diff, logs, health) is marked read and takes --json", () => {
    const named = COMMANDS.filter((c) => /(^| )(list|get|ls|diff|logs|health)$/.test(c.name)).map((c) => c.name);
    expect(COMMANDS.filter((c) => c.read).map((c) => c.name).sort()).toEqual(named.sort());
    expect(named.length).toBeGreaterThanOrEqual(14);
    for (const c of COMMANDS.filter((x) => x.read)) expect(c.json, c.name).toBe(true);
  });
});

describe("usage errors exit 2 and say what to do", () => {
  it("unknown command, missing argument, unknown option", async () => {
    const unknown = await cli(["frobnicate"]);
    expect(unknown).toMatchObject({ code: 2 });
    expect(unknown.stderr).toContain("'frobnicate' is not an outpost command");
    const missing = await cli(["env", "get"], { OUTPOST_URL: "http://x", OUTPOST_TOKEN: "t" });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("Usage: outpost env get ENV");
    const option = await cli(["env", "list", "--nope"]);
    expect(option.code).toBe(2);
    expect(option.stderr).toContain("--nope");
    const state = await cli(["env", "list", "--state", "sleeping"], { OUTPOST_URL: "http://x", OUTPOST_TOKEN: "t" });
    expect(state.code).toBe(2);
    expect(state.stderr).toContain("States: created, starting, running");
  });
});

describe("options hold what their help says", () => {
  /** Nothing listens on port 9: an option the CLI accepts gets as far as the network and fails there (exit 1). */
  const unreachable = { OUTPOST_URL: "http://127.0.0.1:9", OUTPOST_TOKEN: "t" };
  const help = async (name: string) => (await cli([...name.split(" "), "--help"])).stdout;

  it("tokens host --ttl: seconds or 30d/12h/90m, one year by default, at most five years", async () => {
    expect(await help("tokens host")).toMatch(/--ttl DURATION .*default one year, 365 days; at most five years, 1825 days; at least 60 s/);
    expect(duration("3600", "--ttl", { min: 60, max: 86400 })).toBe(3600);
    expect(duration("7d", "--ttl", { min: 60, max: 8 * 86400 })).toBe(7 * 86400);
    expect(duration("90m", "--ttl", { min: 60, max: 86400 })).toBe(5400);
    expect(duration("12h", "--ttl", { min: 60, max: 86400 })).toBe(43200);
    for (const bad of ["1826d", "59", "7w", "1.5d", "0d", ""]) {
      const r = await cli(["tokens", "host", "box", "--ttl", bad], unreachable);
      expect(r.code, bad).toBe(2);
      expect(r.stderr).toContain("--ttl must be seconds or a number with s, m, h or d");
    }
    expect((await cli(["tokens", "host", "box", "--ttl", "1825d"], unreachable)).stderr).toContain("cannot reach the control plane");
  });

  it("tokens user: --role is required, --ttl up to 90 days", async () => {
    expect(await help("tokens user")).toMatch(/--ttl DURATION .*default 30 days; at most 90 days; at least 60 s/);
    const none = await cli(["tokens", "user"], unreachable);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("--role must be viewer, operator or admin");
    expect((await cli(["tokens", "user", "--role", "owner"], unreachable)).stderr).toContain("not 'owner'");
    expect((await cli(["tokens", "user", "--role", "viewer", "--ttl", "91d"], unreachable)).code).toBe(2);
    expect((await cli(["tokens", "user", "--role", "viewer", "--ttl", "90d"], unreachable)).stderr).toContain("cannot reach the control plane");
  });

  it("routes set --ack-timeout-ms and --max-hops: their defaults and limits, as the API's routing schema has them", async () => {
    const text = await help("routes set");
    expect(text).toMatch(/--ack-timeout-ms MS .*default 10000; 100 to 600000/);
    expect(text).toMatch(/--max-hops N .*default 8, at most 32/);
    for (const [flag, bad] of [["--ack-timeout-ms", "99"], ["--ack-timeout-ms", "600001"], ["--ack-timeout-ms", "soon"], ["--max-hops", "33"], ["--max-hops", "0"]] as const) {
      const r = await cli(["routes", "set", "web", "--rule", "exec=gpu", flag, bad], unreachable);
      expect(r.code, `${flag} ${bad}`).toBe(2);
      expect(r.stderr).toContain(flag);
    }
    expect((await cli(["routes", "set", "web", "--ack-timeout-ms", "600000", "--max-hops", "32"], unreachable)).stderr).toContain("cannot reach the control plane");
  });

  it("numbers with a server-side limit say it in their help", async () => {
    expect(await help("exec")).toMatch(/--timeout MS .*default 60000, a minute; at most 86400000, a day/);
    expect(await help("forward")).toMatch(/--timeout MS .*at most 86400000/);
    expect(await help("children scope")).toMatch(/--max-children N .*default 4, at most 1000/);
    expect(await help("children scope")).toMatch(/--max-depth N .*default 1, at most 16/);
    expect(await help("ls")).toMatch(/--max N .*default 10000, at most 100000/);
    expect(await help("runs list")).toMatch(/--limit N .*default 100, at most 500/);
    expect(await help("logs")).toMatch(/--tail N .*at most 10000/);
  });
});

describe("configuration", () => {
  const files: Record<string, string> = {
    "/home/me/repo/.outpost/profile.json": JSON.stringify({ url: "http://profile:1", token: "profile-token" }),
    "/elsewhere/p.json": JSON.stringify({ url: "http://explicit:1", token: "explicit-token" }),
    "/bad.json": "{nope",
  };
  const io = { read: (p: string) => files[p] ?? (() => { throw Object.assign(new Error("ENOENT"), { code: "ENOENT" }); })(), exists: (p: string) => p in files };

  it("flags win, then an explicit --profile, then OUTPOST_URL/OUTPOST_TOKEN, then the nearest discovered profile", () => {
    const env = { OUTPOST_URL: "http://env:1", OUTPOST_TOKEN: "env-token" };
    const cwd = "/home/me/repo/src/deep";
    expect(resolveConfig({ flags: {}, env: {}, cwd, ...io })).toMatchObject({ url: "http://profile:1", token: "profile-token", profilePath: "/home/me/repo/.outpost/profile.json" });
    expect(resolveConfig({ flags: {}, env, cwd, ...io })).toMatchObject({ url: "http://env:1", token: "env-token" });
    expect(resolveConfig({ flags: { profile: "/elsewhere/p.json" }, env, cwd, ...io })).toMatchObject({ url: "http://explicit:1", token: "explicit-token" });
    expect(resolveConfig({ flags: { token: "flag-token" }, env, cwd, ...io })).toMatchObject({ url: "http://env:1", token: "flag-token", source: { token: "--url/--token", url: "OUTPOST_URL/OUTPOST_TOKEN" } });
    expect(resolveConfig({ flags: {}, env: { OUTPOST_HOME: "/home/me/repo" }, cwd: "/tmp", ...io })).toMatchObject({ token: "profile-token" });
  });

  it("names the problem and the fix when nothing or something broken is configured", () => {
    expect(() => resolveConfig({ flags: {}, env: {}, cwd: "/tmp", ...io })).toThrow(/no control plane URL/);
    expect(() => resolveConfig({ flags: { url: "http://x" }, env: {}, cwd: "/tmp", ...io })).toThrow(/no token/);
    expect(() => resolveConfig({ flags: { profile: "/bad.json" }, env: {}, cwd: "/", ...io })).toThrow(/not valid JSON/);
    expect(() => resolveConfig({ flags: { profile: "/missing.json" }, env: {}, cwd: "/", ...io })).toThrow(/cannot read the profile \/missing.json: ENOENT/);
    expect(() => resolveConfig({ flags: { url: "not a url", token: "t" }, env: {}, cwd: "/tmp", ...io })).toThrow(/is not a URL/);
  });
});

describe("errors say what to do next", () => {
  const problem = (status: number, code: string, detail: string) => new ApiError(status, code, detail, { type: "t", title: "x", status, detail, code });

  it("maps problem+json codes to hints", () => {
    expect(explain(problem(401, "unauthorized", "The token has expired; get a new one."), { tokenSource: "OUTPOST_URL/OUTPOST_TOKEN" })).toMatchObject({
      message: "The token has expired; get a new one. (HTTP 401, unauthorized)",
      hint: expect.stringContaining("from OUTPOST_URL/OUTPOST_TOKEN was refused"),
      exitCode: 1,
    });
    expect(explain(problem(409, "agent_not_connected", "No agent."), { environment: "web" }).hint).toContain("outpost env get web");
    expect(explain(problem(404, "not_found", "No environment named 'x'."), { environment: "x" }).hint).toContain("outpost env list");
    expect(explain(problem(403, "forbidden", "needs operator")).hint).toContain("role");
    expect(explain(problem(500, "internal", "boom")).hint).toContain("wrangler.log");
    expect(explain(problem(404, "not_found", "No snapshot snap_x.")).hint).toContain("outpost snapshots list");
    expect(explain(problem(422, "integrity_failed", "Truncated.")).hint).toContain("outpost snapshots export");
    expect(explain(problem(409, "children_limit", "At the limit."), { environment: "web" }).hint).toContain("web's spawn scope");
    expect(explain(problem(409, "hop_limit", "Too many hops."), { environment: "web" }).hint).toContain("outpost gateway get web");
    const invalid = new ApiError(400, "bad_request", "Invalid", { type: "t", title: "x", status: 400, detail: "Invalid request body", code: "bad_request", errors: [{ path: "name", message: "too long" }] });
    expect(explain(invalid).hint).toContain("name: too long");
  });

  it("an unreachable control plane names the URL and how to start one", () => {
    const err = new TypeError("fetch failed", { cause: { code: "ECONNREFUSED" } });
    expect(explain(err, { url: "http://127.0.0.1:9" })).toMatchObject({ message: "cannot reach the control plane at http://127.0.0.1:9 (ECONNREFUSED)", hint: expect.stringContaining("npm start"), exitCode: 1 });
  });
});

describe("pieces", () => {
  it("exit codes of remote commands: their own, 128+signal, 124 on timeout", () => {
    expect(exitCodeOf({ exitCode: 0 })).toBe(0);
    expect(exitCodeOf({ exitCode: 7 })).toBe(7);
    expect(exitCodeOf({ exitCode: null, signal: "SIGKILL" })).toBe(137);
    expect(exitCodeOf({ exitCode: null, signal: "SIGTERM", timedOut: true })).toBe(124);
    expect(exitCodeOf({ exitCode: null, signal: null })).toBe(1);
  });

  it("ENV:PATH names a workspace path, anything else a local one", () => {
    expect(location("web:src/a.ts")).toEqual({ env: "web", path: "src/a.ts" });
    expect(location("env_abcdefghij0123456789:x")).toEqual({ env: "env_abcdefghij0123456789", path: "x" });
    expect(location("web:")).toEqual({ env: "web", path: "." });
    expect(location("./web:a")).toEqual({ local: "./web:a" });
    expect(location("C:\\x")).toEqual({ local: "C:\\x" });
  });

  it("progress lines with and without a known size", () => {
    expect(progressLine("a.bin →", 512 * 1024, 1024 * 1024, 10)).toBe("a.bin → [#####-----]  50% 512 KiB/1.0 MiB");
    expect(progressLine("a.bin ←", 2048, null)).toBe("a.bin ← 2.0 KiB");
  });

  it("a transfer's bar is drawn on a terminal only, and counts the bytes that pass", async () => {
    const writes: string[] = [];
    const tty = { isTTY: true, write: (s: string) => writes.push(s) > 0 } as unknown as NodeJS.WritableStream & { isTTY: boolean };
    let clock = 0;
    const bar = progress(tty, "f →", 300, { now: () => (clock += 1000) });
    const source = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 3; i++) c.enqueue(new Uint8Array(100));
        c.close();
      },
    });
    let total = 0;
    for await (const chunk of counted(source, bar)) total += chunk.byteLength;
    bar.done();
    expect(total).toBe(300);
    expect(writes.at(-2)).toContain("100% 300 B/300 B");
    expect(writes.at(-1)).toBe("\n");
    const quiet: string[] = [];
    const pipe = { isTTY: false, write: (s: string) => quiet.push(s) > 0 } as unknown as NodeJS.WritableStream;
    const none = progress(pipe, "f →", 300);
    none.add(300);
    none.done();
    expect(quiet).toEqual([]);
  });
});
