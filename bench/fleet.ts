/**
 * Many provider-agents in one process: for the scale, reconnect-storm and idle-cost benches, where
 * a thousand separate Node processes would measure this machine rather than the control plane.
 *
 * Each agent is the provider-agent's own code wired as `provider-agent/src/cli.ts` wires it: a Link
 * (hello, welcome, heartbeat pings, seq/ack outbox, reconnect with the default jittered backoff), an
 * Agent serving exec, files and runs in its own workspace, and health reports. What the fleet leaves
 * out of the CLI: the state file (these agents never restart, so the link state stays in memory),
 * the diff base (`diffs.prepare()`), signal handling and the log (counted, not printed).
 * Around each agent the fleet counts requests received, replies sent and welcomes.
 *
 * Run: node --import tsx bench/fleet.ts SPEC.json; prints `{"port":N}`, then serves on 127.0.0.1:N
 *   GET /stats[?since=EPOCH_MS[&times=1]]  counts, how many agents were welcomed at or after `since`
 *                                 (and, with times=1, when each of them was)
 *   GET /agent?i=N                one agent's counts
 *   POST /health?on=0|1           stops (or restarts) every agent's health reports
 *   POST /stop                    closes every link (code 1000) and answers when all are closed
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import http from "node:http";
import type { AgentFrame, EdgeFrame } from "@outpost/protocol";
import { Agent, helloFrame, type Outbound } from "../provider-agent/src/agent.js";
import { connectEndpoint } from "../provider-agent/src/endpoint.js";
import { Link } from "../provider-agent/src/link.js";
import type { Logger } from "../provider-agent/src/log.js";
import { DEFAULT_HEALTH_INTERVAL_MS, startHealthReports } from "../provider-agent/src/services/health.js";
import { AGENT_VERSION } from "../provider-agent/src/version.js";

export interface FleetSpec {
  url: string;
  agents: Array<{
    token: string;
    workspace: string;
    /** Health report interval; null: none. Default: the agent's own (DEFAULT_HEALTH_INTERVAL_MS, 5 min). */
    healthMs?: number | null;
  }>;
}

export interface FleetStats {
  agents: number;
  /** Links open right now. */
  connected: number;
  /** Agents welcomed at least once. */
  welcomed: number;
  /** Agents whose latest welcome is at or after `since` (when asked). */
  welcomedSince: number;
  /** With times=1: the latest welcome (epoch ms) of each agent welcomed since `since`, ascending. */
  welcomeTimes?: number[];
  /** The latest welcome of any agent (epoch ms). */
  lastWelcomeAt: number;
  welcomes: number;
  /** Requests delivered to the agents (each once: the link drops resent duplicates). */
  requests: number;
  /** Replies the agents handed to their links. */
  replies: number;
  /** Reliable frames sent but not yet acknowledged by the edge, over all agents. */
  unacknowledged: number;
  healthSent: number;
  warnings: number;
  lastWarning: string | null;
  /** Connection attempts that got no answer to their upgrade before the agent's opening-handshake timeout. */
  handshakeTimeouts: number;
  rssBytes: number;
}

type Member = {
  link: Link;
  agent: Agent;
  healthMs: number | null;
  health: { stop(): void } | null;
  workspace: string;
  welcomes: number;
  lastWelcomeAt: number;
  requests: number;
  replies: number;
  healthSent: number;
};

export const DEFAULT_FLEET_HEALTH_MS = DEFAULT_HEALTH_INTERVAL_MS;
/** A small file in every agent's workspace. */
export const PROBE_FILE = "probe.txt";

function runFleet(spec: FleetSpec): Promise<void> {
  let warnings = 0;
  let lastWarning: string | null = null;
  let handshakeTimeouts = 0;
  const warn = (m: string) => {
    warnings++;
    lastWarning = m;
    if (m.includes("Opening handshake has timed out")) handshakeTimeouts++; // ws's message
  };
  const log: Logger = { info() {}, debug() {}, warn, error: warn };

  const members: Member[] = spec.agents.map((a) => {
    const endpoint = connectEndpoint(spec.url, a.token);
    if (!endpoint.ok) throw new Error(endpoint.error);
    mkdirSync(a.workspace, { recursive: true });
    writeFileSync(join(a.workspace, PROBE_FILE), "probe\n"); // for round trips that do no work (file stat)
    let agent: Agent | null = null;
    const link = new Link({
      url: endpoint.url,
      token: a.token,
      hello: () => helloFrame(AGENT_VERSION, a.workspace, { runs: agent?.runReports() ?? [] }),
      log,
      onFrame: (frame: EdgeFrame) => {
        if (frame.kind === "welcome") (m.welcomes++, (m.lastWelcomeAt = Date.now()));
        if (frame.kind === "request") m.requests++;
        agent?.handle(frame);
      },
    });
    const out: Outbound = {
      send: (frame: AgentFrame) => {
        if (frame.kind === "reply") m.replies++;
        return link.send(frame);
      },
      sendPaced: (frame, signal) => link.sendPaced(frame, signal),
      endStream: (re) => link.endStream(re),
    };
    agent = new Agent({ workspace: a.workspace, out, log });
    const m: Member = {
      link,
      agent,
      healthMs: a.healthMs === undefined ? DEFAULT_FLEET_HEALTH_MS : a.healthMs,
      health: null,
      workspace: a.workspace,
      welcomes: 0,
      lastWelcomeAt: 0,
      requests: 0,
      replies: 0,
      healthSent: 0,
    };
    return m;
  });

  const startHealth = (m: Member) => {
    if (m.healthMs === null || m.health) return;
    const out = { send: (frame: AgentFrame) => (m.healthSent++, m.link.send(frame)) };
    m.health = startHealthReports({ workspace: m.workspace, out, intervalMs: m.healthMs, log });
  };
  const stopHealth = (m: Member) => {
    m.health?.stop();
    m.health = null;
  };

  const stats = (since: number, times = false): FleetStats => {
    let connected = 0;
    let welcomed = 0;
    let welcomedSince = 0;
    let lastWelcomeAt = 0;
    let welcomes = 0;
    let requests = 0;
    let replies = 0;
    let unacknowledged = 0;
    let healthSent = 0;
    for (const m of members) {
      if (m.link.connected) connected++;
      if (m.welcomes > 0) welcomed++;
      if (since > 0 && m.lastWelcomeAt >= since) welcomedSince++;
      lastWelcomeAt = Math.max(lastWelcomeAt, m.lastWelcomeAt);
      welcomes += m.welcomes;
      requests += m.requests;
      replies += m.replies;
      unacknowledged += m.link.unacknowledged;
      healthSent += m.healthSent;
    }
    const welcomeTimes = times ? members.map((m) => m.lastWelcomeAt).filter((t) => since > 0 && t >= since).sort((a, b) => a - b) : undefined;
    return { agents: members.length, connected, welcomed, welcomedSince, lastWelcomeAt, welcomes, requests, replies, unacknowledged, healthSent, warnings, lastWarning, handshakeTimeouts, rssBytes: process.memoryUsage.rss(), ...(welcomeTimes ? { welcomeTimes } : {}) };
  };

  const stopAll = async () => {
    for (const m of members) stopHealth(m);
    await Promise.all(members.map((m) => Promise.all([m.agent.shutdown(), m.link.stop()])));
  };

  return new Promise((resolve) => {
    const server = http.createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://fleet");
      const json = (body: unknown) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
      if (url.pathname === "/stats") return json(stats(Number(url.searchParams.get("since") ?? 0), url.searchParams.get("times") === "1"));
      if (url.pathname === "/agent") {
        const m = members[Number(url.searchParams.get("i"))];
        if (!m) return res.writeHead(404).end();
        const { welcomes, lastWelcomeAt, requests, replies, healthSent } = m;
        return json({ welcomes, lastWelcomeAt, requests, replies, healthSent, connected: m.link.connected, unacknowledged: m.link.unacknowledged, inflight: m.agent.inflight, recv: m.link.recv, lastSeq: m.link.lastSeq });
      }
      if (url.pathname === "/health" && req.method === "POST") {
        for (const m of members) (url.searchParams.get("on") === "0" ? stopHealth : startHealth)(m);
        return json({ ok: true });
      }
      if (url.pathname === "/stop" && req.method === "POST") {
        void stopAll().then(() => {
          json(stats(0));
          server.close(() => resolve());
        });
        return;
      }
      res.writeHead(404).end();
    });
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      for (const m of members) {
        startHealth(m);
        m.link.start();
      }
      process.stdout.write(`${JSON.stringify({ port: typeof address === "object" && address ? address.port : 0 })}\n`);
    });
  });
}

// Run as a program (not when imported for its constants and types).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const specFile = process.argv[2];
  if (!specFile) {
    process.stderr.write("usage: fleet.ts SPEC.json\n");
    process.exit(2);
  }
  runFleet(JSON.parse(readFileSync(specFile, "utf8")) as FleetSpec).then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`fleet: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    },
  );
}
