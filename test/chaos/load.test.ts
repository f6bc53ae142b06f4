/**
 * Load: many environments with connected agents (one fleet process holding every link, the agent's
 * own Link and Agent code: bench/fleet.ts), many event watchers, and concurrent execs and file stats
 * for a bounded time. What must hold: zero errors, every exec answered with its own output, every
 * watcher's stream without gap or duplicate, every agent outbox drained at the end.
 * Full scale: 500 agents, 100 watchers, 45 s; CI scale: 25 agents, 10 watchers, 8 s.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EnvironmentEvent } from "@outpost/protocol";
import { startFleet, type Fleet } from "../../bench/lib/fleet-client.js";
import { mapLimit } from "../../bench/lib/loop.js";
import { startHarness, waitFor, type Harness } from "../e2e/helpers.js";
import { Figures, FULL, tally } from "./lib/figures.js";
import { openSocket, type RawSocket } from "./lib/socket.js";

const AGENTS = FULL ? 500 : 25;
const WATCHERS = FULL ? 100 : 10;
const SECONDS = FULL ? 45 : 8;
const CONCURRENCY = FULL ? 24 : 6;

const figures = new Figures("load");
let h: Harness;
let fleet: Fleet | null = null;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  figures.write();
  await fleet?.stop();
  await h?.close();
});

describe("load", () => {
  it(`${AGENTS} agents, ${WATCHERS} watchers and concurrent execs for ${SECONDS} s: zero errors, nothing lost`, async () => {
    const created = await mapLimit(Array.from({ length: AGENTS }, (_, i) => i), 12, async (i) => {
      const c = await h.admin.createEnvironment({ name: `load-${String(i).padStart(4, "0")}`, provider: "local" });
      return { id: c.environment.id, token: c.agentToken };
    });
    fleet = await startFleet({ url: h.cp.url, agents: created.map((c, i) => ({ token: c.token, workspace: join(h.dir, "fleet", `a${i}`), healthMs: null })) }, h.dir);
    await waitFor(async () => (await fleet!.stats()).welcomed === AGENTS, { timeoutMs: 180_000, intervalMs: 500, what: `all ${AGENTS} agents welcomed` });

    // Watchers over the first environments, each recording the seqs it sees.
    const watched: Array<{ id: string; socket: RawSocket; seqs: number[] }> = [];
    for (let w = 0; w < WATCHERS; w++) {
      const id = created[w % created.length]!.id;
      const socket = await openSocket(`${h.cp.url}/v1/environments/${id}/events/stream`, h.admin.token);
      const entry = { id, socket, seqs: [] as number[] };
      socket.ws.on("message", (d) => void entry.seqs.push((JSON.parse(d.toString()) as { event: EnvironmentEvent }).event.seq));
      watched.push(entry);
    }

    const outcomes: Record<string, number> = {};
    const errors: string[] = [];
    let execs = 0;
    let stats = 0;
    const until = Date.now() + SECONDS * 1000;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async (_, worker) => {
        for (let k = 0; Date.now() < until; k++) {
          // Half the calls go to watched environments, so the watchers see live traffic.
          const target = k % 2 === 0 ? created[(worker + k) % WATCHERS]! : created[Math.floor(Math.random() * created.length)]!;
          const token = `w${worker}-k${k}`;
          try {
            if (k % 3 === 2) {
              const res = await h.admin.request("GET", `/v1/environments/${target.id}/files/stat?path=probe.txt`, { timeoutMs: 30_000 });
              tally(outcomes, `stat ${res.status}`);
              if (res.status !== 200) errors.push(`stat ${target.id}: ${res.status} ${await res.text()}`);
              else await res.text();
              stats++;
            } else {
              const res = await h.admin.request("POST", `/v1/environments/${target.id}/exec`, { json: { command: ["echo", token] }, timeoutMs: 30_000 });
              tally(outcomes, `exec ${res.status}`);
              const text = await res.text();
              if (res.status !== 200) errors.push(`exec ${target.id}: ${res.status} ${text.slice(0, 200)}`);
              else if ((JSON.parse(text) as { stdout: string }).stdout !== `${token}\n`) errors.push(`exec ${target.id}: wrong output ${text.slice(0, 200)}`);
              execs++;
            }
          } catch (err) {
            tally(outcomes, "thrown");
            errors.push(`${target.id}: ${err instanceof Error ? err.message : String(err)}`);
          }
        }
      }),
    );

    // Every watcher saw exactly its environment's log: no gap, no duplicate, in order.
    let watcherGaps = 0;
    for (const w of watched) {
      const res = await h.admin.request("GET", `/v1/environments/${w.id}/events?limit=1000`);
      const log = ((await res.json()) as { events: EnvironmentEvent[] }).events.map((e) => e.seq);
      await waitFor(() => (w.seqs.at(-1) ?? 0) >= (log.at(-1) ?? 0), { timeoutMs: 20_000, what: `watcher of ${w.id} to catch up` });
      if (JSON.stringify(w.seqs) !== JSON.stringify(log)) watcherGaps++;
      if (w.socket.close) errors.push(`watcher of ${w.id} closed: ${JSON.stringify(w.socket.close)}`);
      w.socket.ws.close();
    }
    // The agents' outboxes drain: everything they sent was acknowledged.
    const end = await waitFor(async () => {
      const s = await fleet!.stats();
      return s.unacknowledged === 0 ? s : null;
    }, { timeoutMs: 30_000, what: "every agent outbox to drain" });
    figures.add({
      section: "load",
      name: `${AGENTS} agents in one fleet process, ${WATCHERS} watchers, ${CONCURRENCY} concurrent callers for ${SECONDS} s`,
      faults: 0,
      cases: execs + stats,
      lost: errors.length + watcherGaps,
      outcomes,
      measured: { execs, "file stats": stats, "calls per second": Math.round((execs + stats) / SECONDS), "agents connected at the end": end.connected, "fleet warnings": end.warnings },
    });
    expect(errors.slice(0, 20)).toEqual([]);
    expect(watcherGaps).toBe(0);
    expect(end.connected).toBe(AGENTS);
  });
});
