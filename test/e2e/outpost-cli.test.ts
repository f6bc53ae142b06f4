/**
 * The typed client and the `outpost` CLI against the real Worker (wrangler dev) with a real
 * provider-agent: the CLI runs as its built bundle in a child process, exactly as `npx outpost`.
 * Each test sets up what it needs (the shared environments are made once, by whichever test asks
 * first), so any one of them runs alone (`-t`) or in another order.
 */
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync, realpathSync, writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiError, Client, queryTokenWebSocket } from "@outpost/client";
import { ACK_TIMEOUT_LIMITS_MS, type ExecStreamLine } from "@outpost/protocol";
import { COMMANDS } from "../../cli/src/commands/index.js";
import { ROOT } from "../../scripts/lib/dev-vars.js";
import { git as gitIn } from "../lib/workspace-files.js";
import { decodeJwt } from "jose";
import { connectAgent, startEnvironment } from "./environments.js";
import { exitWithin, startHarness, type Harness } from "./helpers.js";

let h: Harness;
let bundle = "";
const NAME = "cli-e2e";
const OTHER = `${NAME}-b`;

interface Ran {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs the CLI bundle to completion (bounded), with only the OUTPOST_* variables given. */
function outpost(args: string[], o: { env?: Record<string, string>; stdin?: Buffer; cwd?: string; timeoutMs?: number } = {}): Promise<Ran> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("OUTPOST_")));
  const child = spawn(process.execPath, [bundle, ...args], { cwd: o.cwd ?? h.dir, env: { ...base, ...o.env }, stdio: ["pipe", "pipe", "pipe"] });
  const out: Buffer[] = [];
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => out.push(d));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  child.stdin.end(o.stdin);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`outpost ${args.join(" ")} did not finish in time:\n${stderr}`));
    }, o.timeoutMs ?? 30_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr });
    });
  });
}

const as = (token: string) => ({ OUTPOST_URL: h.cp.url, OUTPOST_TOKEN: token });
const admin = () => as(h.admin.token);
const parsed = (r: Ran) => {
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout.toString("utf8")) as Record<string, any>;
};

/** Made on first use and shared after; a failure is remembered, so later tests fail with it too. */
function once<T>(make: () => Promise<T>): () => Promise<T> {
  let made: Promise<T> | undefined;
  return () => (made ??= make());
}

/** Creates an environment with `outpost env create --json`, starts its agent and waits until it is running. */
async function runningEnvironment(name: string, extra: string[] = []) {
  const created = parsed(await outpost(["env", "create", name, "--provider", "local", ...extra, "--json"], { env: admin() }));
  const { workspace } = await h.workspace();
  const { agent } = await connectAgent(h, created.environment.id, created.agentToken, workspace);
  return { created, id: created.environment.id as string, workspace, agent };
}
/** The environment most tests work in, and a second one for forwarding, snapshots and merges. */
const primary = once(() => runningEnvironment(NAME, ["--metadata", "team=cli"]));
const second = once(() => runningEnvironment(OTHER));

beforeAll(async () => {
  h = await startHarness();
  bundle = join(h.dir, "outpost.js");
  const build = spawn(process.execPath, [join(ROOT, "cli", "build.mjs"), "--outfile", bundle], { cwd: join(ROOT, "cli"), stdio: "inherit" });
  expect(await new Promise((r) => build.on("close", r))).toBe(0);
}, 180_000);
afterAll(async () => {
  await h?.close();
});

// Each CLI call is a fresh node process loading the bundle: on a loaded machine a test of ten calls takes a while.
describe("the outpost CLI and the typed client, against the real Worker and agent", { timeout: 240_000 }, () => {
  it("env create --json creates an environment; its agent makes it running", async () => {
    const { created, id } = await primary();
    expect(created.environment).toMatchObject({ name: NAME, provider: "local", state: "created", metadata: { team: "cli" } });

    const list = parsed(await outpost(["env", "list", "--json"], { env: admin() }));
    expect(list.environments.map((e: { id: string }) => e.id)).toContain(id);
    const got = parsed(await outpost(["env", "get", NAME, "--json"], { env: admin() }));
    expect(got.environment).toMatchObject({ id, state: "running", connected: true });
    const text = await outpost(["env", "list"], { env: admin() });
    expect(text.stdout.toString()).toMatch(new RegExp(`${id}\\s+${NAME}\\s+running\\s+local`));
  });

  it("exec streams stdout and stderr and passes the command's exit code through", async () => {
    await primary();
    const r = await outpost(["exec", NAME, "--", "sh", "-c", "echo out; echo err >&2; exit 7"], { env: admin() });
    expect(r.code).toBe(7);
    expect(r.stdout.toString()).toBe("out\n");
    expect(r.stderr).toBe("err\n");
    const ok = await outpost(["exec", NAME, "-e", "GREETING=hi there", "--", "sh", "-c", 'printf "%s" "$GREETING"'], { env: admin() });
    expect(ok).toMatchObject({ code: 0, stderr: "" });
    expect(ok.stdout.toString()).toBe("hi there");
    const piped = await outpost(["exec", NAME, "-i", "--", "wc", "-c"], { env: admin(), stdin: Buffer.from("12345") });
    expect(piped.stdout.toString().trim()).toBe("5");
    const json = await outpost(["exec", NAME, "--json", "--", "sh", "-c", "echo j; exit 3"], { env: admin() });
    expect(json.code).toBe(3);
    expect(JSON.parse(json.stdout.toString())).toMatchObject({ exitCode: 3, stdout: "j\n" });
  });

  it("put then cat round-trips bytes exactly; cp copies both ways and within the workspace", async () => {
    await primary();
    const data = randomBytes(700 * 1024 + 3); // several 256 KiB chunks and a ragged end
    const local = join(h.dir, "blob.bin");
    writeFileSync(local, data);
    const put = await outpost(["put", NAME, local, "data/blob.bin"], { env: admin() });
    expect(put.code, put.stderr).toBe(0);
    expect(put.stderr).not.toMatch(/\r|%/); // no progress bar when stderr is not a terminal
    const cat = await outpost(["cat", NAME, "data/blob.bin"], { env: admin() });
    expect(cat.code, cat.stderr).toBe(0);
    expect(cat.stdout.equals(data)).toBe(true);

    expect((await outpost(["put", NAME, "-", "notes/hi.txt"], { env: admin(), stdin: Buffer.from("hi\n") })).code).toBe(0);
    expect((await outpost(["cp", `${NAME}:notes/hi.txt`, `${NAME}:notes/copy.txt`], { env: admin() })).code).toBe(0);
    const down = join(h.dir, "down");
    await mkdir(down);
    const cp = await outpost(["cp", `${NAME}:notes/copy.txt`, down], { env: admin() });
    expect(cp.code, cp.stderr).toBe(0);
    expect(readFileSync(join(down, "copy.txt"), "utf8")).toBe("hi\n");

    const ls = parsed(await outpost(["ls", NAME, "notes", "--json"], { env: admin() }));
    expect(ls.entries.map((e: { path: string }) => e.path).sort()).toEqual(["notes/copy.txt", "notes/hi.txt"]);
    expect((await outpost(["rm", NAME, "notes/copy.txt"], { env: admin() })).code).toBe(0);
    const diff = parsed(await outpost(["diff", NAME, "--json"], { env: admin() }));
    expect(diff.files.map((f: { path: string }) => f.path)).toEqual(expect.arrayContaining(["notes/hi.txt"]));
  });

  it("runs create/get/list/cancel", async () => {
    await primary();
    const created = parsed(await outpost(["runs", "create", NAME, "--json", "-m", "hello run", "--", "sh", "-c", "cat; sleep 30"], { env: admin() }));
    const runId = created.run.id as string;
    expect(runId).toMatch(/^run_/);
    const list = parsed(await outpost(["runs", "list", NAME, "--json"], { env: admin() }));
    expect(list.runs.map((r: { id: string }) => r.id)).toContain(runId);
    const cancelled = parsed(await outpost(["runs", "cancel", runId, "--json"], { env: admin() }));
    expect(cancelled.run.id).toBe(runId);
    const got = parsed(await outpost(["runs", "get", runId, "--json"], { env: admin() }));
    expect(got.run).toMatchObject({ id: runId, command: ["sh", "-c", "cat; sleep 30"] });
  });

  it("logs shows the event log; logs -f follows new events live until Ctrl-C", async () => {
    await primary();
    await h.admin.writeFile(NAME, "notes/logged.txt", "logged");
    const all = parsed(await outpost(["logs", NAME, "--json"], { env: admin() }));
    const types = (all.events as Array<{ type: string }>).map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(["file.write"]));
    const last = all.next as number;

    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("OUTPOST_")));
    const child = spawn(process.execPath, [bundle, "logs", NAME, "-f", "--json", "--after", String(last)], { cwd: h.dir, env: { ...base, ...admin() }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const closed = new Promise<number | null>((r) => child.on("close", r));
    try {
      await h.admin.writeFile(NAME, "notes/live.txt", "live");
      const deadline = Date.now() + 20_000;
      while (!out.includes("notes/live.txt") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      const lines = out.trim().split("\n").map((l) => JSON.parse(l) as { seq: number; type: string; data: Record<string, unknown> });
      expect(lines.find((e) => e.type === "file.write" && e.data.path === "notes/live.txt"), err).toBeDefined();
      expect(lines.every((e) => e.seq > last)).toBe(true);
      child.kill("SIGINT");
      expect(await closed).toBe(0);
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("says what to do next: a bad token, an unknown environment, no configuration, a wrong usage", async () => {
    const bad = await outpost(["env", "list"], { env: as(`${h.admin.token.slice(0, -4)}AAAA`) });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/HTTP 401, unauthorized/);
    expect(bad.stderr).toMatch(/OUTPOST_URL\/OUTPOST_TOKEN.*was refused|was refused/);
    expect(bad.stderr).toContain("npm run -s token");

    const unknown = await outpost(["exec", "no-such-env", "--", "true"], { env: admin() });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/No environment named 'no-such-env'.*HTTP 404/);
    expect(unknown.stderr).toContain("outpost env list");

    const viewer = await h.client("viewer");
    const denied = await outpost(["exec", NAME, "--", "true"], { env: as(viewer.token) });
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/operator/);

    const none = await outpost(["env", "list"]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no control plane URL.*\n.*npm start/);

    const usage = await outpost(["exec", NAME, "ls", "-la"], { env: admin() });
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("after --");
  });

  it("reads its URL and token from a profile file (--profile), flags winning over it", async () => {
    const { id } = await primary();
    const profile = join(h.dir, "profile.json");
    writeFileSync(profile, JSON.stringify({ url: h.cp.url, token: h.admin.token }));
    const r = await outpost(["env", "get", NAME, "--json", "--profile", profile]);
    expect(parsed(r).environment.id).toBe(id);
    const flagged = await outpost(["env", "get", NAME, "--profile", profile, "--token", "not-a-token"]);
    expect(flagged.code).toBe(1);
    expect(flagged.stderr).toMatch(/--url\/--token/);
    // discovered: the nearest .outpost/profile.json above the working directory, as npm start writes it
    const project = join(h.dir, "project");
    await mkdir(join(project, ".outpost"), { recursive: true });
    await mkdir(join(project, "sub"));
    writeFileSync(join(project, ".outpost", "profile.json"), JSON.stringify({ url: h.cp.url, token: h.admin.token }));
    expect(parsed(await outpost(["env", "get", NAME, "--json"], { cwd: join(project, "sub") })).environment.id).toBe(id);
  });

  it("client: execStream yields started, output pieces and the exit, in order", async () => {
    await primary();
    const client = new Client(h.cp.url, h.admin.token);
    const lines: ExecStreamLine[] = [];
    for await (const line of client.execStream(NAME, { command: ["sh", "-c", "echo a; echo b >&2; exit 4"] })) lines.push(line);
    expect(lines[0]).toMatchObject({ type: "started", execId: expect.any(String) });
    expect(lines.at(-1)).toMatchObject({ type: "exit", exitCode: 4 });
    const text = (t: string) => lines.filter((l): l is Extract<ExecStreamLine, { data: string }> => l.type === t).map((l) => l.data).join("");
    expect(text("stdout")).toBe("a\n");
    expect(text("stderr")).toBe("b\n");
  });

  it("client: streamEvents replays after a seq then delivers live events; refusals are ApiErrors", async () => {
    await primary();
    const client = new Client(h.cp.url, h.admin.token, { webSocket: (url, headers) => new WebSocket(url, { headers }) });
    const page = await client.listEvents(NAME, { limit: 1000 });
    const from = page.events.at(-3)?.seq ?? 0;
    const stream = await client.streamEvents(NAME, { after: from });
    const seen: number[] = [];
    await client.writeFile(NAME, "notes/stream.txt", "x");
    for await (const e of stream) {
      seen.push(e.seq);
      if (e.type === "file.write" && e.data.path === "notes/stream.txt") break;
    }
    stream.close();
    expect(seen[0]).toBe(from + 1);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(new Set(seen).size).toBe(seen.length);

    // the browser way: the token in ?access_token= (no headers)
    const browser = new Client(h.cp.url, h.admin.token, { webSocket: queryTokenWebSocket(WebSocket) });
    const viaQuery = await browser.streamEvents(NAME, { after: 0 });
    const first = await viaQuery[Symbol.asyncIterator]().next();
    expect(first.value?.seq).toBe(1);
    viaQuery.close();

    await expect(client.streamEvents("no-such-env")).rejects.toMatchObject({ status: 404, code: "not_found" });
    const refused = new Client(h.cp.url, "bad.token.here", { webSocket: (url, headers) => new WebSocket(url, { headers }) });
    await expect(refused.streamEvents(NAME)).rejects.toBeInstanceOf(ApiError);
  });

  it("forward (chained exec): a command runs in another environment through this one; output and exit code come back", async () => {
    await primary();
    const { workspace } = await second();
    const other = OTHER;
    await outpost(["gateway", "set", other, "--closed"], { env: admin() });

    const closed = await outpost(["forward", NAME, "--to", other, "--", "true"], { env: admin() });
    expect(closed.code).toBe(1);
    expect(closed.stderr).toMatch(/HTTP 403|gateway|forbidden/i);

    const gw = parsed(await outpost(["gateway", "set", other, "--accept", "--allow-from", NAME, "--json"], { env: admin() }));
    expect(gw.gateway).toMatchObject({ accept: true, allowFrom: [NAME] });
    const r = await outpost(["forward", NAME, "--to", other, "--", "sh", "-c", "echo from-b; pwd; exit 5"], { env: admin() });
    expect(r.code, r.stderr).toBe(5);
    expect(r.stdout.toString()).toBe(`from-b\n${realpathSync(workspace)}\n`);

    const lines = (await outpost(["forward", NAME, "--to", other, "--json", "--", "echo", "j"], { env: admin() })).stdout
      .toString()
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string; route?: string[] });
    expect(lines[0]?.type).toBe("started");
    expect(lines.at(-1)).toMatchObject({ type: "exit", exitCode: 0 });
    expect(lines.at(-1)?.route?.length).toBe(2);

    const set = parsed(await outpost(["routes", "set", NAME, "--rule", `exec=${other}`, "--ack-timeout-ms", "15000", "--json"], { env: admin() }));
    expect(set.routing).toMatchObject({ rules: [{ match: "exec", to: other }], maxHops: 8, ackTimeoutMs: 15_000 });
    const byRule = await outpost(["forward", NAME, "--", "sh", "-c", "exit 9"], { env: admin() });
    expect(byRule.code, byRule.stderr).toBe(9);
    const got = parsed(await outpost(["gateway", "get", NAME, "--json"], { env: admin() }));
    expect(got.routing).toMatchObject({ rules: [{ match: "exec", to: other }], ackTimeoutMs: 15_000 });
    expect((await outpost(["gateway", "get", NAME], { env: admin() })).stdout.toString()).toMatch(/^ack timeout\s+15000 ms$/m);
    const refused = await outpost(["routes", "set", NAME, "--ack-timeout-ms", "5"], { env: admin() });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`--ack-timeout-ms must be a whole number of at least ${ACK_TIMEOUT_LIMITS_MS.min}`);
  });

  it("snapshots: create, export -o (downloaded, sha256 checked), list, and import into another environment", async () => {
    const { id } = await primary();
    await second();
    await h.admin.writeFile(NAME, "notes/hi.txt", "hi\n");
    const created = parsed(await outpost(["snapshots", "create", NAME, "-m", "from the cli", "--json"], { env: admin(), timeoutMs: 60_000 }));
    const snapId = created.snapshot.id as string;
    expect(created.snapshot).toMatchObject({ environmentId: id, message: "from the cli" });
    const file = join(h.dir, "snap.bundle");
    const exported = parsed(await outpost(["snapshots", "export", snapId, "-o", file, "--json"], { env: admin(), timeoutMs: 60_000 }));
    const bytes = readFileSync(file);
    expect(bytes.length).toBe(exported.export.size);
    expect(createHash("sha256").update(bytes).digest("hex")).toBe(exported.export.sha256);
    const list = parsed(await outpost(["snapshots", "list", "--env", id, "--json"], { env: admin() }));
    expect(list.snapshots.map((x: { id: string }) => x.id)).toContain(snapId);
    const other = OTHER;
    const imported = parsed(await outpost(["snapshots", "import", snapId, other, "--json"], { env: admin(), timeoutMs: 60_000 }));
    expect(imported.import).toMatchObject({ snapshotId: snapId, strategy: "replace", conflicts: [] });
    const cat = await outpost(["cat", other, "notes/hi.txt"], { env: admin() });
    expect(cat.stdout.toString()).toBe("hi\n");
    const got = parsed(await outpost(["snapshots", "get", snapId, "--json"], { env: admin() }));
    expect(got.snapshot.environments.length).toBe(2);

    // a change made after the snapshot: diff shows it as a patch, merge brings it into the other environment
    expect((await outpost(["put", NAME, "-", "notes/later.txt"], { env: admin(), stdin: Buffer.from("later\n") })).code).toBe(0);
    const patch = await outpost(["snapshots", "diff", snapId, NAME], { env: admin(), timeoutMs: 60_000 });
    expect(patch.code, patch.stderr).toBe(0);
    expect(patch.stdout.toString()).toMatch(/^\+\+\+ b\/notes\/later\.txt$/m);
    const merged = parsed(await outpost(["snapshots", "merge", NAME, other, "--json"], { env: admin(), timeoutMs: 60_000 }));
    expect(merged.import.conflicts).toEqual([]);
    expect((await outpost(["cat", other, "notes/later.txt"], { env: admin() })).stdout.toString()).toBe("later\n");
  });

  it("snapshots branch: a branch in an environment's own git repository; a workspace that is not a git checkout is refused at once", async () => {
    await primary();
    await h.admin.writeFile(NAME, "notes/hi.txt", "hi\n");
    const snapId = (await h.admin.createSnapshot({ environment: NAME, message: "for a branch" })).id;
    // NAME's workspace is not a git checkout; by default the branch goes to the snapshot's own environment.
    const refused = await outpost(["snapshots", "branch", snapId, "--name", "cli-pr"], { env: admin(), timeoutMs: 30_000 });
    expect(refused.code, refused.stderr).toBe(1);
    expect(refused.stderr).toMatch(/^outpost: not a git repository: .*git init.*--mail.*\(HTTP 409, invalid_state\)/s);

    const repo = `${NAME}-repo`;
    const { id: repoId, workspace } = await startEnvironment(h, repo, {
      prepare: (w) => {
        gitIn(w, "init", "-q", "-b", "main");
        writeFileSync(join(w, "README.md"), "# repo\n");
        gitIn(w, "add", ".");
        gitIn(w, "commit", "-qm", "base");
      },
    });
    const git = (...a: string[]) => gitIn(workspace, ...a);
    // A snapshot taken elsewhere: a workspace without .git is refused before the snapshot is carried over.
    const fromRepo = (await h.admin.createSnapshot({ environment: repo })).id;
    const notThere = await outpost(["snapshots", "branch", fromRepo, "--env", NAME], { env: admin(), timeoutMs: 30_000 });
    expect(notThere.code).toBe(1);
    expect(notThere.stderr).toMatch(/not a git repository/);
    expect((await h.admin.getSnapshot(fromRepo)).environments).toEqual([repoId]);

    const made = parsed(await outpost(["snapshots", "branch", snapId, "--env", repo, "--name", "cli-pr", "--json"], { env: admin(), timeoutMs: 60_000 }));
    expect(made.branch).toMatchObject({ branch: "outpost/cli-pr", environmentId: repoId, changed: expect.arrayContaining(["notes/hi.txt"]) });
    expect(git("rev-parse", "outpost/cli-pr").trim()).toBe(made.branch.commit);
    expect(git("rev-parse", "outpost/cli-pr^").trim()).toBe(git("rev-parse", "main").trim());
    expect(git("status", "--porcelain")).toBe("");
    const text = await outpost(["snapshots", "branch", snapId, "--env", repo, "--name", "cli-pr-2"], { env: admin(), timeoutMs: 60_000 });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout.toString()).toMatch(new RegExp(`^outpost/cli-pr-2 in ${repo}: [0-9a-f]{12} on [0-9a-f]{12}, \\d+ files? changed\n$`));
    const again = await outpost(["snapshots", "branch", snapId, "--env", repo, "--name", "cli-pr"], { env: admin(), timeoutMs: 60_000 });
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already exists.*\(HTTP 409, conflict\)/s);
  });

  it("objectives and threads: created, then a snapshot on the thread is listed under it", async () => {
    await primary();
    const objectiveId = parsed(await outpost(["objectives", "create", "cli objective", "-d", "from the e2e test", "--json"], { env: admin() })).objective.id;
    const created = await outpost(["threads", "create", "--objective", objectiveId, "--title", "cli thread"], { env: admin() });
    expect(created.code, created.stderr).toBe(0);
    const threadId = created.stdout.toString().trim();
    expect(threadId).toMatch(/^thr_/);
    const snap = parsed(await outpost(["snapshots", "create", NAME, "--thread", threadId, "-m", "on the thread", "--json"], { env: admin(), timeoutMs: 60_000 }));
    const shown = await outpost(["threads", "get", threadId], { env: admin() });
    expect(shown.stdout.toString()).toContain(`snapshot  ${snap.snapshot.id} on the thread`);
    expect((await outpost(["objectives", "get", objectiveId], { env: admin() })).stdout.toString()).toMatch(new RegExp(`^${threadId}\\s+cli thread\\s+${objectiveId}`, "m"));
  });

  it("every read command prints JSON with --json: the API's own record, under its key", async () => {
    // What the reads read, made here: a run, a snapshot, an objective with a thread.
    await primary();
    const runId = (await h.admin.createRun(NAME, { agent: { command: ["true"] } })).id;
    const snapId = (await h.admin.createSnapshot({ environment: NAME, message: "for --json" })).id;
    const objectiveId = (await h.admin.createObjective({ title: "json objective" })).id;
    const threadId = (await h.admin.createThread({ objectiveId, title: "json thread" })).id;
    /** The arguments each read command gets here and the key its JSON must have; a new read command must be added. */
    const cases: Record<string, { args: string[]; key: string }> = {
      "env list": { args: [], key: "environments" },
      "env get": { args: [NAME], key: "environment" },
      "runs list": { args: [NAME], key: "runs" },
      "runs get": { args: [runId], key: "run" },
      "providers list": { args: [], key: "providers" },
      "hosts list": { args: [], key: "hosts" },
      health: { args: [], key: "version" },
      "gateway get": { args: [NAME], key: "gateway" },
      "snapshots list": { args: [], key: "snapshots" },
      "snapshots get": { args: [snapId], key: "snapshot" },
      "snapshots diff": { args: [snapId, NAME], key: "patch" },
      ls: { args: [NAME], key: "entries" },
      diff: { args: [NAME], key: "files" },
      logs: { args: [NAME], key: "events" },
      "children list": { args: [NAME], key: "tree" },
      "objectives list": { args: [], key: "objectives" },
      "objectives get": { args: [objectiveId], key: "threads" },
      "threads list": { args: ["--objective", objectiveId], key: "threads" },
      "threads get": { args: [threadId], key: "snapshots" },
    };
    const reads = COMMANDS.filter((c) => c.read).map((c) => c.name);
    expect(reads.filter((n) => !(n in cases)), "read commands this test does not run").toEqual([]);
    for (const name of reads) {
      const { args, key } = cases[name]!;
      const r = await outpost([...name.split(" "), ...args, "--json"], { env: admin() });
      expect(r.code, `${name}: ${r.stderr}`).toBe(0);
      expect(JSON.parse(r.stdout.toString()), name).toHaveProperty(key);
    }
  });

  it("client: objectives and threads, a snapshot's narrative, diff and merge, the spawn scope and children", async () => {
    await primary();
    await second();
    const client = new Client(h.cp.url, h.admin.token);
    const objective = await client.createObjective({ title: "ship the cli" });
    const thread = await client.createThread({ objectiveId: objective.id, title: "first try" });
    expect((await client.listObjectives()).map((o) => o.id)).toContain(objective.id);
    expect((await client.listThreads({ objectiveId: objective.id })).map((t) => t.id)).toEqual([thread.id]);
    expect((await client.getObjective(objective.id)).threads.map((t) => t.id)).toEqual([thread.id]);

    await client.writeFile(NAME, "notes/merged.txt", "merged\n");
    const snap = await client.createSnapshot({ environment: NAME, threadId: thread.id, message: "for the thread", export: { format: "bundle" } });
    expect((await client.getThread(thread.id)).snapshots.map((x) => x.id)).toEqual([snap.id]);
    expect(await client.getSnapshotNarrative(snap.id)).toMatchObject({ objective: { id: objective.id } });
    const other = OTHER;
    const patch = await client.diffSnapshots({ from: { environment: other }, to: { snapshotId: snap.id } });
    expect(patch).toContain("notes/merged.txt");
    const merged = await client.mergeSnapshot({ into: other, from: { snapshotId: snap.id } });
    expect(merged.import.conflicts).toEqual([]);
    expect(new TextDecoder().decode(await client.readFile(other, "notes/merged.txt"))).toBe("merged\n");

    expect(await client.setSpawnScope(NAME, null)).toMatchObject({ spawn: null, agentToken: expect.any(String), delivered: true });
    expect(await client.getSpawnScope(NAME)).toBeNull();
    const granted = await client.setSpawnScope(NAME, { maxChildren: 1 });
    expect(granted).toMatchObject({ spawn: { maxChildren: 1, maxDepth: 1 }, delivered: true });
    expect(decodeJwt(granted.agentToken)).toMatchObject({ spawn: { maxChildren: 1 } });
    const child = await client.spawnChild(NAME, { name: `${NAME}-kid`, provider: "local" });
    await expect(client.spawnChild(NAME, { name: `${NAME}-kid2`, provider: "local" })).rejects.toMatchObject({ status: 409 });
    expect((await client.getChildren(NAME)).children.map((c) => c.id)).toEqual([child.environment.id]);
    expect((await client.closeChild(NAME, child.environment.id)).state).toBe("archived");
  });

  it("children: a granted scope (and the agent token carrying it), a child spawned and shown in the tree, then closed", async () => {
    const { id } = await primary();
    const scope = parsed(await outpost(["children", "scope", NAME, "--max-children", "2", "--providers", "local", "--json"], { env: admin() }));
    expect(scope.spawn).toMatchObject({ maxChildren: 2, maxDepth: 1, providers: ["local"] });
    expect(scope.delivered).toBe(true);
    expect(decodeJwt(scope.agentToken as string)).toMatchObject({ sub: id, spawn: { maxChildren: 2, providers: ["local"] } });
    const text = await outpost(["children", "scope", NAME, "--max-children", "2", "--providers", "local"], { env: admin() });
    expect(text.code, text.stderr).toBe(0);
    const printed = /^agent token: (\S+)$/m.exec(text.stdout.toString())?.[1];
    expect(decodeJwt(printed!)).toMatchObject({ sub: id, spawn: { maxChildren: 2 } });
    expect(text.stderr).toContain("the connected agent was handed this token");
    const refused = await outpost(["children", "spawn", NAME, `${NAME}-docker`, "--provider", "docker"], { env: admin() });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/HTTP 403/);
    const spawned = parsed(await outpost(["children", "spawn", NAME, `${NAME}-kid3`, "--provider", "local", "--json"], { env: admin() }));
    expect(spawned.agentToken).toEqual(expect.any(String));
    const tree = await outpost(["children", "list", NAME], { env: admin() });
    expect(tree.stdout.toString().startsWith(`${NAME} (${id}) running local\n`)).toBe(true);
    expect(tree.stdout.toString()).toMatch(new RegExp(`^  ${NAME}-kid3 \\(env_[^)]+\\) created local$`, "m"));
    const closed = parsed(await outpost(["children", "rm", NAME, `${NAME}-kid3`, "--json"], { env: admin() }));
    expect(closed.environment.state).toBe("archived");
    expect((await outpost(["children", "scope", NAME], { env: admin() })).stdout.toString()).toMatch(/up to 2 children/);
  });

  it("tokens user: an admin issues a narrower token that works with exactly its role; more than the issuer's is refused", async () => {
    const issued = parsed(await outpost(["tokens", "user", "--role", "viewer", "--ttl", "7d", "--name", "cli-reader", "--json"], { env: admin() }));
    expect(issued).toMatchObject({ role: "viewer", sub: "cli-reader", org: "e2e" });
    const claims = decodeJwt(issued.token as string);
    expect(claims.exp! - claims.iat!).toBe(7 * 24 * 3600);
    expect(new Date(issued.expiresAt as string).getTime()).toBe(claims.exp! * 1000);
    expect(parsed(await outpost(["env", "list", "--json"], { env: as(issued.token) })).environments).toEqual(expect.any(Array));
    const denied = await outpost(["env", "create", `${NAME}-by-viewer`], { env: as(issued.token) });
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/'operator' role.*HTTP 403/);
    // text: the token alone on stdout, what it is on stderr
    const text = await outpost(["tokens", "user", "--role", "operator", "--ttl", "1h"], { env: admin() });
    expect(text.code, text.stderr).toBe(0);
    expect(decodeJwt(text.stdout.toString().trim())).toMatchObject({ role: "operator", org: "e2e" });
    expect(text.stderr).toMatch(/^operator token for e2e:admin\/operator in org e2e, expires 20\d\d-/);
    // an operator may not issue at all, least of all an admin's token
    const operator = await h.client("operator");
    const refused = await outpost(["tokens", "user", "--role", "admin"], { env: as(operator.token) });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/HTTP 403, forbidden/);
    const tooLong = await outpost(["tokens", "user", "--role", "viewer", "--ttl", "91d"], { env: admin() });
    expect(tooLong.code).toBe(2);
  });

  it("env stop and env rm change its state; the agent is told and exits", async () => {
    const name = `${NAME}-stop`;
    const { agent } = await runningEnvironment(name);
    const stopped = parsed(await outpost(["env", "stop", name, "--json"], { env: admin(), timeoutMs: 40_000 }));
    expect(stopped.environment.state).toBe("stopped");
    expect((await exitWithin(agent)).code).toBe(0);
    const removed = parsed(await outpost(["env", "rm", name, "--json"], { env: admin() }));
    expect(removed.environment.state).toBe("archived");
  });
});
