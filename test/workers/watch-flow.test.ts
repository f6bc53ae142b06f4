/**
 * Flow control on the event stream (protocol/src/watch.ts, durable-objects/watchers.ts), in workerd:
 * a watcher that never acks is closed after its window with 4008 naming its cursor and is sent no
 * more than the window; one that acks gets every event exactly once, across a slow-consumer close
 * and its resume; the replay of retained events is paced by acks; anything but an ack of an event it
 * was sent closes; an ack that arrives late (behind a newer one) is ignored, up to one ack per event.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { CLOSE, resumeCursor, WATCH_STALL_MS } from "@outpost/protocol";
import type { EnvironmentObject } from "../../durable-objects/environment.js";
import { call, createEnvironment, eventually, userToken } from "./helpers.js";

const ORG = "org-flow";

/** Appends `n` events in the object (as the object itself would, e.g. run output). */
async function append(id: string, n: number, pad = ""): Promise<void> {
  const stub = env.ENVIRONMENTS.get(env.ENVIRONMENTS.idFromName(`${ORG}/${id}`));
  await runInDurableObject(stub, (obj: EnvironmentObject) => {
    const log = (obj as unknown as { events: { append(t: string, d: Record<string, unknown>): unknown } }).events;
    for (let i = 0; i < n; i++) log.append("test.tick", { i, pad });
  });
}

/** Stops the object's clock at `t` (its injectable clock). */
async function clock(id: string, t: number): Promise<void> {
  const stub = env.ENVIRONMENTS.get(env.ENVIRONMENTS.idFromName(`${ORG}/${id}`));
  await runInDurableObject(stub, (obj: EnvironmentObject) => void (obj.now = () => t));
}

interface Watcher {
  ws: WebSocket;
  seqs: number[];
  closed: { code: number; reason: string } | null;
  ack(seq: number): void;
}

/** `acking.on`: ack every third event (a watcher that processes them); turned off, it stops acking. */
async function watch(id: string, token: string, q: string, acking = { on: false }): Promise<Watcher> {
  const res = await call("GET", `/v1/environments/${id}/events/stream?${q}`, { token, headers: { upgrade: "websocket" } });
  expect(res.status).toBe(101);
  const ws = res.webSocket!;
  ws.accept();
  const w: Watcher = { ws, seqs: [], closed: null, ack: (seq) => ws.send(JSON.stringify({ v: 1, kind: "ack", seq })) };
  ws.addEventListener("message", (e) => {
    const seq = (JSON.parse(e.data as string) as { event: { seq: number } }).event.seq;
    w.seqs.push(seq);
    if (acking.on && w.seqs.length % 3 === 0) w.ack(seq);
  });
  ws.addEventListener("close", (e) => void (w.closed = { code: e.code, reason: e.reason }));
  return w;
}

async function lastSeq(id: string, token: string): Promise<number> {
  const all = ((await (await call("GET", `/v1/environments/${id}/events?limit=1000`, { token })).json()) as { events: Array<{ seq: number }> }).events;
  return all.at(-1)?.seq ?? 0;
}

describe("event stream flow control", { timeout: 30_000 }, () => {
  it("closes a watcher that never acks after its window (4008, its cursor), having sent no more than the window", async () => {
    const token = await userToken({ org: ORG });
    const { environment } = await createEnvironment(token, "stuck");
    const top = await lastSeq(environment.id, token);
    const stuck = await watch(environment.id, token, `after=${top}&window=10`);
    await append(environment.id, 40);
    await eventually(async () => stuck.closed !== null, 20_000);
    expect(stuck.closed!.code).toBe(CLOSE.slowConsumer);
    expect(resumeCursor(stuck.closed!.reason)).toBe(top);
    expect(stuck.seqs).toEqual(Array.from({ length: 10 }, (_, i) => top + 1 + i));

    // Stuck while replaying retained events: it holds one window, and is closed by new events once it sat on it for WATCH_STALL_MS.
    const t0 = Date.now();
    await clock(environment.id, t0);
    const replaying = await watch(environment.id, token, "after=0&window=8");
    await eventually(async () => replaying.seqs.length === 8, 20_000);
    await append(environment.id, 8);
    await clock(environment.id, t0 + WATCH_STALL_MS - 1);
    await append(environment.id, 1);
    expect(replaying.closed).toBeNull();
    await clock(environment.id, t0 + WATCH_STALL_MS);
    await append(environment.id, 1);
    await eventually(async () => replaying.closed !== null, 20_000);
    expect(replaying.closed!.code).toBe(CLOSE.slowConsumer);
    expect(resumeCursor(replaying.closed!.reason)).toBe(0);
    expect(replaying.seqs).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);

    // An older client that asks for no window: at most the full window (1000) of replay, then the same close.
    const legacy = await watch(environment.id, token, "after=0");
    await append(environment.id, 1000);
    await eventually(async () => legacy.closed !== null, 20_000);
    expect(legacy.closed!.code).toBe(CLOSE.slowConsumer);
    expect(legacy.seqs.length).toBeLessThanOrEqual(1000);
    expect(legacy.seqs).toEqual(Array.from({ length: legacy.seqs.length }, (_, i) => i + 1));
  });

  it("a watcher that acks gets every event exactly once, across a slow-consumer close and its resume", async () => {
    const token = await userToken({ org: ORG });
    const { environment } = await createEnvironment(token, "steady");
    await append(environment.id, 25); // a retained backlog: replayed in windows, paced by acks
    const backlog = await lastSeq(environment.id, token);
    const acking = { on: true };
    const first = await watch(environment.id, token, "after=0&window=8", acking);
    await eventually(async () => first.seqs.at(-1) === backlog, 20_000);
    expect(first.closed).toBeNull();
    // It stops acking (a slow consumer): more events overrun its window and it is closed.
    acking.on = false;
    const acked = first.seqs[first.seqs.length - (first.seqs.length % 3) - 1]!;
    await append(environment.id, 30);
    await eventually(async () => first.closed !== null, 20_000);
    expect(first.closed!.code).toBe(CLOSE.slowConsumer);
    expect(resumeCursor(first.closed!.reason)).toBe(acked);
    expect(first.seqs.length - acked).toBeLessThanOrEqual(8);
    const seen = [...first.seqs];
    // It resumes from the last event it saw (not only its last ack) and acks from then on.
    const resumed = await watch(environment.id, token, `after=${first.seqs.at(-1)}&window=8`, { on: true });
    await append(environment.id, 10);
    const top = await lastSeq(environment.id, token);
    await eventually(async () => resumed.seqs.at(-1) === top, 20_000);
    seen.push(...resumed.seqs);
    expect(resumed.closed).toBeNull();
    resumed.ws.close(1000);
    expect(seen).toEqual(Array.from({ length: top }, (_, i) => i + 1));
  });

  it("closes a watcher whose frame is anything but an ack of an event it was sent", async () => {
    const token = await userToken({ org: ORG });
    const { environment } = await createEnvironment(token, "acks");
    await append(environment.id, 5);
    const frames = ["hello", JSON.stringify({ v: 1, kind: "ack", seq: 0 }), JSON.stringify({ v: 1, kind: "ack", seq: 10_000 }), JSON.stringify({ v: 1, kind: "nack", seq: 3 })];
    for (const f of frames) {
      const w = await watch(environment.id, token, "after=0&window=100");
      await eventually(async () => w.seqs.length >= 5, 20_000);
      w.ws.send(f);
      await eventually(async () => w.closed !== null, 20_000);
      expect(w.closed!.code, f).toBe(CLOSE.protocolError);
    }
    const ok = await watch(environment.id, token, "after=0&window=100");
    await eventually(async () => ok.seqs.length >= 5, 20_000);
    ok.ack(3);
    ok.ack(5);
    await append(environment.id, 1);
    await eventually(async () => ok.seqs.length >= 6, 20_000);
    expect(ok.closed).toBeNull();
    ok.ws.close(1000);
  });

  // Acks can reach the object out of order (in workerd a watcher's ack of 50 was handled after its ack
  // of 53 and closed it, flaking the resume test above): a late one is ignored, not a protocol error.
  it("ignores an ack that arrives after a newer one, but takes no more acks than events it was sent", async () => {
    const token = await userToken({ org: ORG });
    const { environment } = await createEnvironment(token, "late-acks");
    await append(environment.id, 20);
    const top = await lastSeq(environment.id, token);
    const w = await watch(environment.id, token, `after=${top - 8}&window=4`);
    await eventually(async () => w.seqs.length === 4, 20_000);
    w.ack(top - 5); // the newer ack overtook this one, sent first
    w.ack(top - 7);
    await eventually(async () => w.seqs.length === 7, 20_000); // the newer ack moved the window on by 3
    w.ack(top - 6);
    w.ack(top - 2);
    await eventually(async () => w.seqs.length === 8, 20_000);
    await append(environment.id, 1);
    await eventually(async () => w.seqs.length === 9, 20_000);
    expect(w.closed).toBeNull();
    expect(w.seqs).toEqual(Array.from({ length: 9 }, (_, i) => top - 7 + i));
    // Nine events sent and four acks taken: five more (late ones) are still acks of events it was sent, a sixth is not.
    for (let i = 0; i < 5; i++) w.ack(top - 7);
    w.ack(top + 1);
    expect((await eventually(async () => w.closed, 20_000)).code).toBe(CLOSE.protocolError);
    expect(w.seqs).toHaveLength(9);
  });
});
