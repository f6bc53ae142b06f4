/**
 * Hostile input against the real Worker and real agents: forged tokens, paths that try to leave
 * the workspace, every route driven with generated invalid parameters and bodies, and WebSocket
 * fuzzing of the agent link and the event stream. What must hold: a 4xx application/problem+json
 * (HTTP) or an error frame / close code (WebSocket); never a 5xx, a hang, or a sick object.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, realpath, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SignJWT } from "jose";
import { AUDIENCE, TOKEN_ISSUER } from "@outpost/protocol";
import { startEnvironment, type Started } from "../e2e/environments.js";
import { startHarness, unlessExited, type Harness } from "../e2e/helpers.js";
import { Figures, FULL, tally } from "./lib/figures.js";
import { BODY_KEYS, Gen, QUERY_KEYS, QUERY_VALUES, wellFormed } from "./lib/fuzz.js";
import { userTokenAttacks } from "./lib/jwt-attacks.js";
import { openapiRoutes, type ApiRoute } from "./lib/openapi-routes.js";
import { workerRoutes } from "./lib/routes.js";
import { kindsOf, openSocket } from "./lib/socket.js";
import { wranglerVariant } from "./lib/variant-config.js";
import { mapLimit } from "../../bench/lib/loop.js";

/** Requests of the route fuzzer in flight at once. */
const FUZZ_CONCURRENCY = 6;
/** The Worker's routes, read from the Hono app when the file is collected: one fuzz test each. */
const APP_ROUTES = await workerRoutes();

const figures = new Figures("hostile");
let h: Harness;
beforeAll(async () => {
  // Hundreds of deliberate auth failures from one client: the auth-failure limit (rate-limits.test.ts) is lifted here.
  h = await startHarness({ config: (toml) => wranglerVariant(toml, { limit: 1_000_000, period: 60 }) });
});
afterAll(async () => {
  figures.write();
  await h?.close();
});

/** Why a response breaks the rule (null when it is a proper refusal or a success). */
async function violation(res: Response): Promise<string | null> {
  const text = await res.text();
  if (res.status >= 500) return `${res.status}: ${text.slice(0, 300)}`;
  if (res.status < 400) return null;
  if (!(res.headers.get("content-type") ?? "").startsWith("application/problem+json")) return `${res.status} without problem+json: ${text.slice(0, 200)}`;
  try {
    const body = JSON.parse(text) as { status?: number; code?: string };
    if (body.status !== res.status || !body.code) return `${res.status} with a malformed problem: ${text.slice(0, 200)}`;
  } catch {
    return `${res.status} whose problem is not JSON: ${text.slice(0, 200)}`;
  }
  return null;
}

/** A request that may not hang: a timeout is reported as a violation, not thrown. */
async function send(method: string, path: string, init: { headers?: Record<string, string>; body?: string | Uint8Array } = {}, timeoutMs = 20_000): Promise<Response | "hang"> {
  try {
    return await fetch(`${h.cp.url}${path}`, { method, headers: init.headers, body: init.body, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    if (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError")) return "hang";
    throw err;
  }
}

describe("JWT attacks", () => {
  it("every forged, expired, misdirected or revoked token is refused with 401 or 403", async () => {
    const target = await h.admin.createEnvironment({ name: "jwt-target", provider: "local" });
    const attacks = await userTokenAttacks(h.secret, "e2e");
    const outcomes: Record<string, number> = {};
    const wrong: string[] = [];
    for (const a of attacks) {
      for (const [method, path] of [["GET", "/v1/environments"], ["GET", `/v1/environments/${target.environment.id}`], ["POST", `/v1/environments/${target.environment.id}/exec`]] as const) {
        const res = await send(method, path, { headers: { authorization: `Bearer ${a.token}`, "content-type": "application/json" }, body: method === "POST" ? JSON.stringify({ command: ["true"] }) : undefined });
        if (res === "hang") {
          wrong.push(`${a.name} ${method} ${path}: hang`);
          continue;
        }
        tally(outcomes, res.status);
        const v = await violation(res);
        if (!a.expect.includes(res.status) || v) wrong.push(`${a.name} ${method} ${path}: ${res.status} ${v ?? ""}`);
      }
    }

    // Agent tokens: another environment's, a revoked generation, a user token on the agent route.
    const other = await h.admin.createEnvironment({ name: "jwt-other", provider: "local" });
    const rotated = await h.admin.rotateAgentToken(target.environment.id);
    const forgedGen = await new SignJWT({ org: "e2e", gen: rotated.generation + 5 }).setProtectedHeader({ alg: "HS256" }).setIssuer(TOKEN_ISSUER).setAudience(AUDIENCE.agent).setSubject(target.environment.id).sign(new TextEncoder().encode("y".repeat(40)));
    const otherOrgAgent = await new SignJWT({ org: "other-org", gen: 1 }).setProtectedHeader({ alg: "HS256" }).setIssuer(TOKEN_ISSUER).setAudience(AUDIENCE.agent).setSubject(target.environment.id).sign(new TextEncoder().encode(h.secret));
    const agentCases: Array<{ name: string; token: string; expect: number[] }> = [
      { name: "agent token of another environment", token: other.agentToken, expect: [403] },
      { name: "agent token of a revoked generation", token: target.agentToken, expect: [401] },
      { name: "agent token with a forged generation and signature", token: forgedGen, expect: [401] },
      { name: "agent token of another org for this id", token: otherOrgAgent, expect: [401, 403, 404] },
      { name: "user token on the agent route", token: (await h.client("admin")).token, expect: [403] },
      ...(await userTokenAttacks(h.secret, "e2e")).slice(0, 15).map((a) => ({ ...a, name: `agent route: ${a.name}` })),
    ];
    for (const a of agentCases) {
      const s = await openSocket(`${h.cp.url}/v1/environments/${target.environment.id}/connect`, a.token);
      const status = s.refused?.status ?? 101;
      if (s.refused === null) s.ws.terminate();
      tally(outcomes, status);
      const problem = s.refused?.contentType.startsWith("application/problem+json") ?? false;
      if (!a.expect.includes(status) || !problem) wrong.push(`${a.name}: ${status} ${s.refused?.contentType ?? ""} ${s.refused?.body.slice(0, 200) ?? ""}`);
    }

    // Another org's admin sees nothing of this org: not found, never the record.
    const stranger = await h.client("admin", "other-org");
    for (const [method, path] of [["GET", `/v1/environments/${target.environment.id}`], ["GET", `/v1/environments/jwt-target`], ["DELETE", `/v1/environments/${target.environment.id}`], ["POST", `/v1/environments/${target.environment.id}/exec`]] as const) {
      const res = await stranger.request(method, path, method === "POST" ? { json: { command: ["true"] } } : {});
      tally(outcomes, res.status);
      const v = await violation(res);
      if (res.status !== 404 || v) wrong.push(`other org ${method} ${path}: ${res.status} ${v ?? ""}`);
    }
    // A viewer may not act, an operator may not delete.
    const viewer = await h.client("viewer");
    const operator = await h.client("operator");
    for (const [c, method, path] of [[viewer, "POST", `/v1/environments/${target.environment.id}/exec`], [operator, "DELETE", `/v1/environments/${target.environment.id}`], [viewer, "POST", "/v1/hosts/tokens"]] as const) {
      const res = await c.request(method, path, { json: { command: ["true"], name: "x" } });
      tally(outcomes, res.status);
      if (res.status !== 403) wrong.push(`role ${method} ${path}: ${res.status}`);
    }
    const cases = attacks.length * 3 + agentCases.length + 7;
    figures.add({ section: "hostile input", name: "JWT attacks (forged, expired, misdirected, revoked, wrong role or org)", faults: 0, cases, lost: wrong.length, outcomes });
    expect(wrong).toEqual([]);
  });
});

describe("path traversal", () => {
  it("no path reaches outside the workspace: refused, or confined inside it", async () => {
    const env = await startEnvironment(h, "paths");
    const secret = `secret-${randomBytes(8).toString("hex")}`;
    await writeFile(join(env.parent, "secret.txt"), secret);
    await mkdir(join(env.parent, "outside"));
    // Symlinks inside the workspace that lead out of it.
    const ln = async (target: string, name: string) => expect((await h.admin.exec(env.id, { command: ["ln", "-s", target, name] })).exitCode).toBe(0);
    await ln("..", "up");
    await ln("../secret.txt", "secret-link");
    await ln("/etc", "etc");
    await ln("../outside", "out-dir");
    await ln("/", "root");
    const before = (await readdir(env.parent)).sort();

    const corpus = [
      "..", "../secret.txt", "../../etc/passwd", "a/../../secret.txt", "./../secret.txt", "a/b/../../../secret.txt",
      "/etc/passwd", "//etc/passwd", "\\..\\secret.txt", "..\\secret.txt", "C:/Windows/win.ini", "c:secret.txt",
      "%2e%2e/secret.txt", "%2e%2e%2fsecret.txt", "..%2fsecret.txt", "%252e%252e%252fsecret.txt", "..%252fsecret.txt",
      "%c0%ae%c0%ae/secret.txt", "%c0%af..%c0%afsecret.txt", "%e0%80%ae%e0%80%ae/secret.txt", "..%c0%afsecret.txt", "%uff0e%uff0e/secret.txt",
      "\uff0e\uff0e/secret.txt", "\u2025/secret.txt", ".\u200b./secret.txt", "..\u0000/secret.txt", "secret.txt\u0000.png", "..;/secret.txt",
      "up/secret.txt", "up", "secret-link", "etc/passwd", "etc/shadow", "out-dir/planted.txt", "root/etc/passwd", "up/outside/planted.txt",
      "a".repeat(5000), `${"a/".repeat(2100)}x`, `${"../".repeat(100)}etc/passwd`, `${"x".repeat(300)}/y`, `${"d/".repeat(200)}../../../../../../../../../../secret.txt`,
      " ../secret.txt", "../secret.txt ", "...", "....//secret.txt", ".../...//secret.txt", "~/secret.txt", "$HOME/secret.txt",
    ];
    const outcomes: Record<string, number> = {};
    const wrong: string[] = [];
    const payload = `planted-${randomBytes(4).toString("hex")}`;
    const root = await realpath(env.workspace);
    let confined = 0;
    for (const raw of corpus) {
      for (const encode of [true, false]) {
        const q = encode ? encodeURIComponent(raw) : raw.replace(/[#?&\s]/g, encodeURIComponent).replace(/[^\x20-\x7e]/g, (c) => encodeURIComponent(c).replace(/%ED%[AB].%../g, ""));
        const base = `/v1/environments/${env.id}`;
        const auth = { authorization: `Bearer ${h.admin.token}` };
        const attempts: Array<[string, string, { headers?: Record<string, string>; body?: string }]> = [
          ["GET", `${base}/files?path=${q}`, { headers: auth }],
          ["GET", `${base}/files/stat?path=${q}`, { headers: auth }],
          ["GET", `${base}/files/list?path=${q}`, { headers: auth }],
          ["PUT", `${base}/files?path=${q}`, { headers: { ...auth, "content-type": "application/octet-stream" }, body: payload }],
          ["POST", `${base}/files/mkdir`, { headers: { ...auth, "content-type": "application/json" }, body: JSON.stringify({ path: raw, recursive: true }) }],
          ["POST", `${base}/files/copy`, { headers: { ...auth, "content-type": "application/json" }, body: JSON.stringify({ from: raw, to: "copied.txt", overwrite: true }) }],
          ["POST", `${base}/files/move`, { headers: { ...auth, "content-type": "application/json" }, body: JSON.stringify({ from: "nothing-here", to: raw }) }],
          ["DELETE", `${base}/files?path=${q}`, { headers: auth }],
        ];
        for (const [method, path, init] of attempts) {
          const res = await send(method, path, init);
          if (res === "hang") {
            wrong.push(`${method} ${JSON.stringify(raw)}: hang`);
            continue;
          }
          tally(outcomes, res.status);
          const text = await res.clone().text();
          const v = await violation(res);
          if (v) wrong.push(`${method} ${JSON.stringify(raw.slice(0, 60))} (${encode ? "encoded" : "raw"}): ${v}`);
          if (text.includes(secret) || /root:x:0:0/.test(text)) wrong.push(`${method} ${JSON.stringify(raw)} leaked a file from outside the workspace`);
          if (res.status < 300) confined++;
        }
      }
    }
    // Nothing was created, read or removed outside the workspace.
    expect((await readdir(env.parent)).sort()).toEqual(before);
    expect(await readdir(join(env.parent, "outside"))).toEqual([]);
    expect(await readFile(join(env.parent, "secret.txt"), "utf8")).toBe(secret);
    // Whatever was accepted landed inside the workspace (a name like "%2e%2e" is a file name, not a way out).
    const planted = await findFiles(root, payload);
    for (const f of planted) expect(f.startsWith(`${root}/`), f).toBe(true);
    figures.add({ section: "hostile input", name: "path traversal corpus × 8 file routes (encodings, overlong UTF-8, unicode, symlinks, long paths)", faults: 0, cases: corpus.length * 2 * 8, lost: wrong.length, outcomes, measured: { "accepted and confined inside the workspace": confined } });
    expect(wrong).toEqual([]);
  });
});

/** Regular files under `dir` (not following symlinks) whose content is `payload`. */
async function findFiles(dir: string, payload: string, depth = 0): Promise<string[]> {
  if (depth > 50) return [];
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await findFiles(p, payload, depth + 1)));
    else if (e.isFile() && (await readFile(p, "utf8").catch(() => "")) === payload) out.push(p);
  }
  return out;
}

describe("every route of the OpenAPI document with generated invalid input", () => {
  // One test per route, each within the test bound (at full scale the whole document in one test,
  // 62 routes × 250 cases, took more than its 180 s on this shared machine). Each route has its own
  // generator, seeded from the run's seed and the route, so a case replays from `seed`, route and `case`.
  const perRoute = FULL ? 250 : 25;
  const seed = Number(process.env.OUTPOST_CHAOS_SEED ?? 20261123);
  const outcomes: Record<string, number> = {};
  const wrong: string[] = [];
  let cases = 0;
  let fuzz: { env: Started; idleId: string; routes: ApiRoute[]; title: string };
  beforeAll(async () => {
    const env = await startEnvironment(h, "fuzz-target");
    const idle = await h.admin.createEnvironment({ name: "fuzz-idle", provider: "local" });
    const { routes, title } = await openapiRoutes(h.cp.url);
    fuzz = { env, idleId: idle.environment.id, routes, title };
  });

  it("the document covers the Worker: every route of the Hono app is in it", () => {
    const documented = new Set(fuzz.routes.map((r) => `${r.method} ${r.path}`));
    expect(APP_ROUTES.map((r) => `${r.method} ${r.path}`).filter((r) => !documented.has(r))).toEqual([]);
  });

  const routeNames = APP_ROUTES.map((r) => `${r.method} ${r.path}`);
  it.each(routeNames)("%s answers only 4xx problem+json (or a success), never a 5xx or a hang", async (name) => {
    const index = routeNames.indexOf(name);
    const route = fuzz.routes.find((r) => `${r.method} ${r.path}` === name);
    expect(route, `${name} is in the OpenAPI document`).toBeDefined();
    if (!route) return;
    const { env } = fuzz;
    const g = new Gen(seed + index * 7919);
    const mine: string[] = [];
    const tokens = { user: h.admin.token, agent: env.agentToken, host: h.admin.token, none: h.admin.token };
    const paramValue = (name: string): string => {
      const ids = [env.id, env.id, fuzz.idleId, "fuzz-target", "fuzz-idle"];
      const junk = () => g.pick(["nope", "env_aaaaaaaaaaaaaaaaaaaa", "run_aaaaaaaaaaaaaaaaaaaa", "..", "%2e%2e", "%00", "a".repeat(300), "ENV_X", "é", "%ff", "%", g.junk(20)]);
      const v = (name === "idOrName" || name === "id") && g.chance(0.6) ? g.pick(ids) : junk();
      return g.chance(0.7) ? encodeURIComponent(wellFormed(v)) : v.replace(/[/?#\s]/g, encodeURIComponent).replace(/[^\x21-\x7e]/g, "");
    };
    // The cases are generated first, in a fixed order, then sent FUZZ_CONCURRENCY at a time.
    const generated: Array<{ i: number; url: string; headers: Record<string, string>; body: string | Uint8Array | undefined }> = [];
    const keys = [...route.bodyKeys, ...BODY_KEYS];
    const queryKeys = [...route.query, ...route.query, ...QUERY_KEYS];
    for (let i = 0; i < perRoute; i++) {
      const path = route.path.replace(/:([A-Za-z]+)/g, (_, name: string) => paramValue(name));
      const query = new URLSearchParams();
      for (let k = g.int(4); k > 0; k--) query.append(g.pick(queryKeys), wellFormed(g.chance(0.8) ? g.pick(QUERY_VALUES) : g.junk(30)));
      const headers: Record<string, string> = { authorization: `Bearer ${tokens[route.auth]}` };
      let body: string | Uint8Array | undefined;
      if (route.method !== "GET") {
        const kind = g.int(8);
        if (kind === 0) body = undefined;
        else if (kind === 1) (headers["content-type"] = "application/json"), (body = g.pick(["{", "[", "nul", '{"a":', "\u0000", "{}}", '{"name":"x",}', ""]));
        else if (kind === 2) (headers["content-type"] = g.pick(["text/plain", "application/xml", "multipart/form-data", "application/jsonx"])), (body = JSON.stringify(g.body(keys)));
        else if (kind === 3) (headers["content-type"] = "application/json"), (body = JSON.stringify(g.nasty()));
        else if (kind === 4) (headers["content-type"] = "application/octet-stream"), (body = g.bytes(g.int(4096)));
        else (headers["content-type"] = "application/json"), (body = JSON.stringify(g.body(keys)));
      }
      if (g.chance(0.1)) headers.accept = "application/x-ndjson";
      generated.push({ i, url: `${path}${query.size ? `?${query}` : ""}`, headers, body });
    }
    await mapLimit(generated, FUZZ_CONCURRENCY, async ({ i, url, headers, body }) => {
      const res = await send(route.method, url, { headers, body });
      const label = `${route.method} ${route.path} [seed ${seed} route ${index} case ${i}] ${url.slice(0, 160)} body=${typeof body === "string" ? body.slice(0, 120) : body ? `<${body.length} bytes>` : "none"}`;
      cases++;
      if (res === "hang") {
        mine.push(`${label}: hang`);
        return;
      }
      tally(outcomes, res.status);
      const v = await violation(res);
      if (v) mine.push(`${label}: ${v}`);
    });
    wrong.push(...mine);
    expect(mine.slice(0, 40)).toEqual([]);
  });

  it("without a token: 401 problem+json everywhere but the public routes, and the object is still healthy", async () => {
    const { env, routes, title } = fuzz;
    const mine: string[] = [];
    for (const route of routes) {
      const res = await send(route.method, route.path.replace(/:([A-Za-z]+)/g, () => env.id));
      if (res === "hang") {
        mine.push(`${route.method} ${route.path} without a token: hang`);
        continue;
      }
      cases++;
      tally(outcomes, res.status);
      const v = await violation(res);
      if (v || (route.auth !== "none" && res.status !== 401)) mine.push(`${route.method} ${route.path} without a token: ${res.status} ${v ?? ""}`);
    }
    wrong.push(...mine);
    const after = await h.admin.request("GET", `/v1/environments/${env.id}`);
    expect(after.status).toBeLessThan(500);
    // The figure covers every route's test (a failed one counts its wrong answers as lost).
    figures.add({ section: "hostile input", name: `${routes.length} routes of the OpenAPI document (${title}) × ${perRoute} generated invalid requests, and each without a token`, faults: 0, cases, lost: wrong.length, outcomes, measured: { seed } });
    expect(mine).toEqual([]);
  });
});

describe("WebSocket fuzzing", () => {
  it("the agent route answers garbage with error frames or a close code, and the object stays healthy", async () => {
    const created = await h.admin.createEnvironment({ name: "ws-fuzz", provider: "local", lifecycle: { graceMs: 60_000 } });
    const id = created.environment.id;
    const url = `${h.cp.url}/v1/environments/${id}/connect`;
    const g = new Gen(7);
    const outcomes: Record<string, number> = {};
    const wrong: string[] = [];
    let cases = 0;

    // 1. Before hello: random bytes, invalid JSON, schema violations, frames that need a hello first.
    const s = await openSocket(url, created.agentToken);
    const rounds = FULL ? 400 : 60;
    const sent: string[] = [];
    for (let i = 0; i < rounds; i++) {
      const k = i % 4;
      if (k === 0) (s.ws.send(Buffer.from(g.bytes(1 + g.int(2048)))), sent.push("binary"));
      else if (k === 1) (s.ws.send(g.pick(["{", "[", "null", "42", '"x"', "{\"v\":1", g.junk(100)]) + "\u0000"), sent.push("not json"));
      else if (k === 2) (s.ws.send(JSON.stringify(g.body(["v", "kind", "seq", "ack", "id", "re", "ok", "result", "error", "n", "data", "runId", "protocol", "agent"]))), sent.push("schema"));
      else (s.ws.send(JSON.stringify(g.pick([{ v: 1, kind: "ack", ack: 5 }, { v: 1, kind: "reply", re: "x", ok: true, result: 1, seq: 1 }, { v: 1, kind: "credit", re: "x", n: 3 }]))), sent.push("before hello"));
    }
    cases += rounds;
    await s.frameCount(rounds, 30_000);
    const kinds = kindsOf(s.frames);
    for (const k of kinds) tally(outcomes, `frame:${k}`);
    if (s.close) wrong.push(`the socket closed under garbage before hello: ${JSON.stringify(s.close)}`);
    if (kinds.length !== rounds || kinds.some((k) => k !== "error")) wrong.push(`expected ${rounds} error frames, got ${kinds.length}: ${[...new Set(kinds)].join(",")}`);

    // 2. An oversize frame: refused by size (error frame or 1009), not processed.
    const before = s.frames.length;
    s.ws.send(JSON.stringify({ v: 1, kind: "ack", ack: 1, pad: "x".repeat(2 * 1024 * 1024) }));
    cases++;
    await Promise.race([s.frameCount(before + 1, 15_000), s.closed]);
    const oversize = s.close ? `close:${s.close.code}` : `frame:${kindsOf(s.frames.slice(before))[0]}`;
    tally(outcomes, `oversize ${oversize}`);
    if (!(oversize === "frame:error" || oversize === "close:1009")) wrong.push(`oversize frame: ${oversize}`);
    s.ws.terminate();

    // 3. An incompatible protocol: close 4004.
    const old = await openSocket(url, created.agentToken);
    old.ws.send(JSON.stringify({ v: 1, kind: "hello", protocol: "99.0", agent: { version: "0", hostname: "h", platform: "p", arch: "a", node: "n", pid: 1 }, capabilities: [] }));
    const oldClose = await Promise.race([old.closed, new Promise<null>((r) => setTimeout(() => r(null), 15_000))]);
    cases++;
    tally(outcomes, `close:${oldClose?.code ?? "none"}`);
    if (oldClose?.code !== 4004) wrong.push(`hello with protocol 99.0: ${JSON.stringify(oldClose)}`);

    // 4. After a proper hello: semantically hostile frames (unknown requests, runs, seqs) and a flood.
    const ok = await openSocket(url, created.agentToken);
    ok.ws.send(JSON.stringify({ v: 1, kind: "hello", protocol: "1.0", agent: { version: "0", hostname: "fuzz", platform: "linux", arch: "x64", node: "20", pid: 4242 }, capabilities: [] }));
    await ok.frameCount(1);
    if (kindsOf(ok.frames)[0] !== "welcome") wrong.push(`no welcome: ${ok.frames[0]}`);
    const hostile = [
      { v: 1, kind: "reply", re: "no-such-request", ok: true, result: { a: 1 }, seq: 1 },
      { v: 1, kind: "reply", re: "run:run_aaaaaaaaaaaaaaaaaaaa:start", ok: true, result: { pid: 1 }, seq: 2 },
      { v: 1, kind: "chunk", re: "nothing", n: 0, data: "AAAA", seq: 3 },
      { v: 1, kind: "credit", re: "nothing", n: 1e9 },
      { v: 1, kind: "run.output", runId: "run_bbbbbbbbbbbbbbbbbbbb", n: 0, stream: "stdout", data: "aGk=", seq: 4 },
      { v: 1, kind: "run.exit", runId: "run_bbbbbbbbbbbbbbbbbbbb", exitCode: 0, signal: null, durationMs: 1, seq: 5 },
      { v: 1, kind: "ack", ack: 2 ** 40 },
      { v: 1, kind: "reply", re: "x", ok: true, result: null, seq: 2 ** 52 },
      { v: 1, kind: "reply", re: "y", ok: true, result: null, seq: 6 },
      { v: 1, kind: "error", error: { code: "bad_request", message: "fuzz" } },
      { v: 1, kind: "health", at: "never", cpu: { load1: -1, cores: 0 }, memory: { totalBytes: -1, freeBytes: 1e300, agentRssBytes: 0 }, disk: { totalBytes: 0, freeBytes: 0 }, processes: 0 },
    ];
    for (const f of hostile) ok.ws.send(JSON.stringify(f));
    cases += hostile.length;
    const flood = FULL ? 5000 : 1000;
    for (let i = 0; i < flood; i++) ok.ws.send(i % 2 ? "{not json" : JSON.stringify({ v: 1, kind: "ack", ack: 1 }));
    cases += flood;
    // Every invalid frame of the flood is answered; acks are not.
    await ok.frameCount(1 + flood / 2, 60_000);
    const afterKinds = kindsOf(ok.frames.slice(1));
    for (const k of afterKinds) tally(outcomes, `frame:${k}`);
    if (ok.close) wrong.push(`the link closed under the flood: ${JSON.stringify(ok.close)}`);
    if (afterKinds.filter((k) => k === "error").length < flood / 2) wrong.push(`only ${afterKinds.filter((k) => k === "error").length} error frames for ${flood / 2} invalid ones`);

    // The object is healthy: it answers the API, and a real agent replaces the fuzzer and serves an exec.
    const described = await h.admin.getEnvironment(id);
    if (described.state !== "running") wrong.push(`state after fuzzing: ${described.state}`);
    const { workspace } = await h.workspace();
    const agent = h.agent({ token: created.agentToken, workspace });
    await h.admin.waitForEnvironment(id, (e) => e.connected && e.agent?.hostname !== "fuzz", { timeoutMs: 30_000, failIf: unlessExited(agent) });
    expect((await h.admin.exec(id, { command: ["echo", "healthy"] })).stdout).toBe("healthy\n");
    const replaced = await Promise.race([ok.closed, new Promise<null>((r) => setTimeout(() => r(null), 10_000))]);
    if (replaced?.code !== 4002) wrong.push(`the fuzzer was not told it was replaced: ${JSON.stringify(replaced)}`);
    figures.add({ section: "hostile input", name: "agent link fuzzing (random bytes, invalid JSON, schema violations, 2 MiB frame, bad protocol, hostile seqs, flood)", faults: 0, cases, lost: wrong.length, outcomes });
    expect(wrong).toEqual([]);
  });

  it("the event stream refuses input with a close code and keeps serving other watchers", async () => {
    const created = await h.admin.createEnvironment({ name: "watch-fuzz", provider: "local" });
    const id = created.environment.id;
    const url = `${h.cp.url}/v1/environments/${id}/events/stream`;
    const outcomes: Record<string, number> = {};
    const wrong: string[] = [];
    const g = new Gen(11);
    const quiet = await openSocket(url, h.admin.token);
    const fuzzers = FULL ? 20 : 5;
    let cases = 0;
    for (let i = 0; i < fuzzers; i++) {
      const w = await openSocket(url, h.admin.token);
      const payloads = [Buffer.from(g.bytes(100)), "{", JSON.stringify({ v: 1, kind: "hello" }), "x".repeat(2 * 1024 * 1024), ...Array.from({ length: 200 }, () => g.junk(50))];
      for (const p of payloads) if (w.ws.readyState === w.ws.OPEN) w.ws.send(p);
      cases += payloads.length;
      const closed = await Promise.race([w.closed, new Promise<null>((r) => setTimeout(() => r(null), 15_000))]);
      tally(outcomes, `close:${closed?.code ?? "none"}`);
      if (!closed || closed.code === 1006) wrong.push(`watcher ${i} sending garbage: ${JSON.stringify(closed)}`);
    }
    // Unauthenticated and wrong-kind upgrades of the stream.
    for (const token of [null, "garbage", created.agentToken]) {
      const r = await openSocket(url, token);
      cases++;
      tally(outcomes, r.refused?.status ?? 101);
      if (!r.refused || ![401, 403].includes(r.refused.status) || !r.refused.contentType.startsWith("application/problem+json")) wrong.push(`stream with token ${String(token).slice(0, 10)}: ${JSON.stringify(r.refused)}`);
      if (!r.refused) r.ws.terminate();
    }
    // The quiet watcher got the retained events and still gets live ones.
    const seen = quiet.frames.length;
    await h.admin.request("POST", `/v1/environments/${id}/start`);
    await quiet.frameCount(seen + 1);
    if (quiet.close) wrong.push(`the quiet watcher was closed: ${JSON.stringify(quiet.close)}`);
    quiet.ws.close();
    figures.add({ section: "hostile input", name: "event stream fuzzing (watchers that send bytes, JSON, 2 MiB, junk; bad tokens)", faults: 0, cases, lost: wrong.length, outcomes });
    expect(wrong).toEqual([]);
  });
});
