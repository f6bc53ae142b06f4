import { Hello } from "@outpost/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { CAPABILITIES, helloFrame } from "../../provider-agent/src/agent.js";
import { ManualClock, type Clock } from "../../provider-agent/src/clock.js";
import { connectEndpoint } from "../../provider-agent/src/endpoint.js";
import { Link, type LinkOptions } from "../../provider-agent/src/link.js";
import { createLogger } from "../../provider-agent/src/log.js";
import { freePort } from "../../scripts/lib/ports.js";
import { agentToken, ENV_ID, sleep, TestEdge, waitFor, type EdgeOptions } from "./helpers.js";

const token = agentToken();
const running: Array<{ link: Link; edge: TestEdge | null }> = [];

afterEach(async () => {
  for (const { link, edge } of running.splice(0)) {
    await Promise.race([link.stop(), sleep(3_000)]);
    await edge?.close();
  }
});

function startLink(baseUrl: string, options: Partial<LinkOptions> = {}, edge: TestEdge | null = null) {
  const lines: string[] = [];
  const endpoint = connectEndpoint(baseUrl, token);
  if (!endpoint.ok) throw new Error(endpoint.error);
  const link = new Link({
    url: endpoint.url,
    token,
    hello: helloFrame("9.9.9", "/the/workspace"),
    backoff: { baseMs: 10, maxMs: 40 },
    log: createLogger("debug", [token], (line) => void lines.push(line)),
    ...options,
  });
  running.push({ link, edge });
  link.start();
  return { link, lines };
}

async function withEdge(options: EdgeOptions = {}, linkOptions: Partial<LinkOptions> = {}) {
  const edge = await TestEdge.start(options);
  return { edge, ...startLink(edge.url, linkOptions, edge) };
}

describe("connectEndpoint", () => {
  it("maps http to ws and https to wss and puts the environment id from the token in the path", () => {
    expect(connectEndpoint("http://127.0.0.1:8787", token)).toEqual({ ok: true, environmentId: ENV_ID, url: `ws://127.0.0.1:8787/v1/environments/${ENV_ID}/connect` });
    expect(connectEndpoint("https://outpost.example.com/base/?x=1", token)).toMatchObject({ url: `wss://outpost.example.com/base/v1/environments/${ENV_ID}/connect` });
  });

  it("refuses a malformed token, a token without agent claims, and a URL that is not http(s) or ws(s)", () => {
    expect(connectEndpoint("http://x", "not-a-jwt").ok).toBe(false);
    expect(connectEndpoint("http://x", agentToken({ sub: "user_1", org: "acme", gen: 1 })).ok).toBe(false);
    expect(connectEndpoint("http://x", "a.!!!.c").ok).toBe(false);
    expect(connectEndpoint("ftp://x", token).ok).toBe(false);
    expect(connectEndpoint("not a url", token).ok).toBe(false);
  });
});

describe("link", () => {
  it("dials the environment's connect path with the bearer token and says hello first", async () => {
    const { edge, lines } = await withEdge();
    const conn = await edge.connection(0);
    expect(conn.request.url).toBe(`/v1/environments/${ENV_ID}/connect`);
    expect(conn.request.headers.authorization).toBe(`Bearer ${token}`);
    await edge.frame(0, (f) => f.kind === "hello");
    const hello = Hello.parse(JSON.parse(conn.messages[0] as string));
    expect(hello).toMatchObject({
      v: 1,
      kind: "hello",
      protocol: "1.0",
      capabilities: CAPABILITIES,
      workspace: "/the/workspace",
      agent: { version: "9.9.9", platform: process.platform, arch: process.arch, node: process.version, pid: process.pid },
    });
    expect(hello.agent.hostname.length).toBeGreaterThan(0);
    await waitFor(() => lines.some((l) => l.includes("welcomed")), 5_000, "the welcome log line");
    expect(lines.join("\n")).not.toContain(token);
    expect(lines.every((l) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /.test(l))).toBe(true);
  });

  it("does not offer permessage-deflate: compressing every chunk frame cost the agent and workerd most of a transfer's CPU", async () => {
    const { edge } = await withEdge();
    const conn = await edge.connection(0);
    expect(conn.request.headers["sec-websocket-extensions"]).toBeUndefined();
    expect(conn.ws.extensions).toBe("");
  });

  it("pings at the welcome's interval and stays up while pongs come back", async () => {
    const { edge } = await withEdge({ welcomeHeartbeatMs: 20, pong: true });
    await edge.until(() => (edge.connections[0]?.messages.filter((m) => m === "ping").length ?? 0) >= 6, 5_000, "six pings");
    expect(edge.connections).toHaveLength(1);
  });

  it("treats two unanswered pings as a half-open link: terminates and reconnects", async () => {
    const { edge } = await withEdge({ welcomeHeartbeatMs: 30, pong: false });
    const second = await edge.connection(1);
    const first = edge.connections[0]!;
    expect(first.messages.filter((m) => m === "ping")).toHaveLength(2);
    expect((await first.closed).code).toBe(1006);
    await edge.until(() => second.frames.some((f) => f.kind === "hello"), 5_000, "a second hello");
  });

  it("uses its own heartbeat interval until a welcome arrives, and waits six unanswered pings for it", async () => {
    // A control plane busy with a storm has accepted the upgrade but not yet answered the hello.
    const { edge, lines } = await withEdge({ welcomeHeartbeatMs: null, pong: false }, { heartbeatMs: 30 });
    await edge.connection(1);
    expect(edge.connections[0]!.messages.filter((m) => m === "ping")).toHaveLength(6);
    expect(lines.some((l) => l.includes("no pong for 6 heartbeats and no welcome"))).toBe(true);
  });

  it("dials with a renewed token from the next connection on; the one of the moment stays up", async () => {
    const { edge, link } = await withEdge();
    await edge.frame(0, (f) => f.kind === "hello");
    const renewed = agentToken({ sub: ENV_ID, org: "acme", gen: 1, spawn: { maxChildren: 1 } });
    link.setToken(renewed);
    expect(edge.connections).toHaveLength(1);
    edge.connections[0]!.ws.close(1011, "server restarting");
    const second = await edge.connection(1);
    expect(edge.connections[0]!.request.headers.authorization).toBe(`Bearer ${token}`);
    expect(second.request.headers.authorization).toBe(`Bearer ${renewed}`);
  });

  it("reconnects and says hello again after the edge drops the connection", async () => {
    const { edge } = await withEdge();
    await edge.frame(0, (f) => f.kind === "hello");
    edge.connections[0]!.ws.close(1011, "server restarting");
    await edge.frame(1, (f) => f.kind === "hello");
    edge.connections[1]!.ws.terminate();
    await edge.frame(2, (f) => f.kind === "hello");
  });

  it.each([
    [4001, "unauthorized"],
    [4003, "archived"],
    [4004, "version mismatch"],
    [4005, "environment stopped"],
  ])("stops for good on close code %i (%s)", async (code) => {
    const { edge, link } = await withEdge();
    await edge.frame(0, (f) => f.kind === "hello");
    edge.connections[0]!.ws.close(code, "go away");
    expect(await link.done).toEqual({ kind: "fatal", code, reason: `the control plane closed the link: ${code} go away` });
    await sleep(150); // several backoff ceilings: a retry would have shown up by now
    expect(edge.connections).toHaveLength(1);
  });

  it.each([401, 403, 404])("stops for good when the upgrade is refused with HTTP %i, reporting the problem detail", async (status) => {
    const body = JSON.stringify({ type: "about:blank", title: "Refused", status, detail: "agent token revoked", code: "unauthorized" });
    const { edge, link, lines } = await withEdge({ refuse: () => ({ status, body }) });
    const end = await link.done;
    expect(end).toMatchObject({ kind: "fatal", status });
    expect(end.kind === "fatal" && end.reason).toContain("agent token revoked");
    expect(lines.some((l) => l.includes(`HTTP ${status} agent token revoked`))).toBe(true);
    await sleep(150);
    expect(edge.upgrades).toBe(1);
  });

  it("retries after a 5xx on the upgrade", async () => {
    const { edge } = await withEdge({ refuse: (attempt) => (attempt < 2 ? { status: 503, body: "busy" } : null) });
    await edge.frame(0, (f) => f.kind === "hello");
    expect(edge.upgrades).toBe(3);
  });

  it("keeps retrying while nothing listens, and connects once the edge is up", async () => {
    const port = await freePort();
    const { link, lines } = startLink(`http://127.0.0.1:${port}`);
    await waitFor(() => lines.filter((l) => l.includes("ECONNREFUSED")).length >= 3, 5_000, "three refused connects");
    const edge = await TestEdge.start({}, port);
    running.push({ link, edge });
    await edge.frame(0, (f) => f.kind === "hello");
  });

  it("stops for good when the welcome speaks another protocol major", async () => {
    const { edge, link } = await withEdge({ welcomeHeartbeatMs: null });
    await edge.frame(0, (f) => f.kind === "hello");
    edge.send(0, { v: 1, kind: "welcome", protocol: "2.0", environmentId: ENV_ID, heartbeatMs: 1000 });
    expect(await link.done).toMatchObject({ kind: "fatal", code: 4004 });
    expect((await edge.connections[0]!.closed).code).toBe(4004);
  });

  it("answers an unparsable frame with a bad_request error frame and keeps going", async () => {
    const got: unknown[] = [];
    const { edge } = await withEdge({}, { onFrame: (f) => void got.push(f) });
    await edge.frame(0, (f) => f.kind === "hello");
    edge.connections[0]!.ws.send("{not json");
    edge.send(0, { v: 1, kind: "request", id: "r1", op: "no.such.op", params: {}, timeoutMs: 1000 });
    edge.send(0, { v: 1, kind: "cancel", re: "r2" });
    const errors = await edge.until(() => {
      const e = edge.connections[0]!.frames.filter((f) => f.kind === "error");
      return e.length >= 2 && e;
    });
    expect(errors.map((e) => (e.error as { code: string }).code)).toEqual(["bad_request", "bad_request"]);
    const handled = () => got.filter((f) => (f as { kind: string }).kind !== "welcome");
    await waitFor(() => handled().length === 1);
    expect(handled()).toEqual([{ v: 1, kind: "cancel", re: "r2" }]);
    expect(edge.connections).toHaveLength(1);
  });

  it("refuses to send a frame over MAX_FRAME_BYTES and drops frames while down", async () => {
    const { edge, link } = await withEdge();
    await edge.frame(0, (f) => f.kind === "hello");
    await waitFor(() => link.connected);
    const huge = { v: 1 as const, kind: "reply" as const, re: "r", ok: true as const, result: "x".repeat(1024 * 1024) };
    expect(() => link.send(huge)).toThrow(/exceeds/);
    await link.stop();
    expect(link.send({ v: 1, kind: "reply", re: "r", ok: true, result: 1 })).toBe(false);
    await expect(link.sendPaced({ v: 1, kind: "reply", re: "r", ok: true, result: 1 })).rejects.toMatchObject({ code: "agent_error" });
  });

  it("stop() closes with 1000 and ends the link", async () => {
    const { edge, link } = await withEdge();
    await edge.frame(0, (f) => f.kind === "hello");
    expect(await link.stop()).toEqual({ kind: "stopped" });
    expect((await edge.connections[0]!.closed).code).toBe(1000);
  });

  it("restarts the backoff from the beginning once a welcomed link has been stable", async () => {
    const clock = new ManualClock();
    const { edge, lines } = await withEdge({}, { clock: clock as Clock, backoff: { baseMs: 100, maxMs: 100_000, random: () => 1 }, stableMs: 1_000 });
    const delays = () => lines.flatMap((l) => /reconnecting in (\d+) ms/.exec(l)?.[1] ?? []).map(Number);
    const welcomes = () => lines.filter((l) => l.includes("welcomed")).length;
    const dropAndWait = async (index: number, expected: number[]) => {
      await waitFor(() => welcomes() === index + 1, 5_000, `welcome ${index}`);
      edge.connections[index]!.ws.close(1011);
      await waitFor(() => delays().length === expected.length, 5_000, "a reconnect delay");
      expect(delays()).toEqual(expected);
      clock.advance(expected[expected.length - 1]!);
      await edge.connection(index + 1);
    };
    await dropAndWait(0, [100]);
    await dropAndWait(1, [100, 200]);
    await waitFor(() => welcomes() === 3, 5_000, "welcome 2");
    clock.advance(1_000); // stable: the next failure starts over
    await dropAndWait(2, [100, 200, 100]);
  });

  it("retries at most the prompt cap apart for the first minute while nobody listens, then up to the long cap", async () => {
    const clock = new ManualClock();
    const port = await freePort(); // nobody listens: every dial is refused at once (ECONNREFUSED)
    const { lines } = startLink(`http://127.0.0.1:${port}`, { clock: clock as Clock, backoff: { baseMs: 100, maxMs: 10_000, promptMs: 60_000, promptMaxMs: 2_000, random: () => 1 } });
    const delays = () => lines.flatMap((l) => /reconnecting in (\d+) ms/.exec(l)?.[1] ?? []).map(Number);
    // The clock only moves when the test says so.
    let retries = 0;
    while (clock.now() < 70_000 && retries < 100) {
      retries++;
      await waitFor(() => delays().length === retries, 5_000, `reconnect delay ${retries}`);
      clock.advance(delays().at(-1)!);
    }
    await waitFor(() => delays().length === retries + 1, 5_000, "the last reconnect delay");
    const seen = delays();
    // 100 ms doubling, held at 2 s while the outage is under a minute old …
    expect(seen.slice(0, 6)).toEqual([100, 200, 400, 800, 1_600, 2_000]);
    const brief = seen.filter((_, i) => seen.slice(0, i).reduce((a, d) => a + d, 0) < 60_000);
    expect(Math.max(...brief)).toBe(2_000);
    // … then the long cap.
    expect(seen.at(-1)).toBe(10_000);
  });

  it("backs off to the long cap at once when the control plane is reached but refuses (it may be overloaded)", async () => {
    const clock = new ManualClock();
    const { lines } = await withEdge(
      { refuse: () => ({ status: 503, body: "busy" }) },
      { clock: clock as Clock, backoff: { baseMs: 100, maxMs: 10_000, promptMs: 60_000, promptMaxMs: 2_000, random: () => 1 } },
    );
    const delays = () => lines.flatMap((l) => /reconnecting in (\d+) ms/.exec(l)?.[1] ?? []).map(Number);
    for (let retry = 1; retry <= 8; retry++) {
      await waitFor(() => delays().length === retry, 5_000, `reconnect delay ${retry}`);
      clock.advance(delays().at(-1)!);
    }
    expect(delays().slice(0, 8)).toEqual([100, 200, 400, 800, 1_600, 3_200, 6_400, 10_000]);
  });
});
