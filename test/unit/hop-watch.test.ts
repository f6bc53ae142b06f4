import { describe, expect, it, vi } from "vitest";
import { HopWatches, judgeHop, type HopSigns } from "../../durable-objects/hop-watch.js";

const limits = { ackTimeoutMs: 1_000, staleMs: 30_000 };
const signs = (s: Partial<HopSigns>): HopSigns => ({ sentAt: 0, ackedAt: null, seenAt: 0, goneSince: null, progressAt: null, ...s });

describe("judgeHop: the bound on the agent that runs forwarded work", () => {
  it("waits for the acknowledgement up to ackTimeoutMs, then fails naming what was missing", () => {
    expect(judgeHop(signs({}), limits, 1_000)).toEqual({ ok: true });
    expect(judgeHop(signs({}), limits, 1_001)).toEqual({ ok: false, code: "timeout", reason: "its agent is connected but did not acknowledge the request within 1000 ms" });
  });

  it("after the acknowledgement, heartbeats and output keep it alive; silence past staleMs fails it", () => {
    expect(judgeHop(signs({ ackedAt: 10, seenAt: 20_000 }), limits, 45_000)).toEqual({ ok: true });
    expect(judgeHop(signs({ ackedAt: 10, seenAt: 0, progressAt: 40_000 }), limits, 60_000)).toEqual({ ok: true });
    expect(judgeHop(signs({ ackedAt: 10, seenAt: 5, progressAt: 100 }), limits, 30_101)).toEqual({ ok: false, code: "timeout", reason: "its agent stopped responding: no heartbeat or output for 30000 ms" });
  });

  it("a disconnected agent has staleMs to come back, acknowledged or not", () => {
    expect(judgeHop(signs({ seenAt: null, goneSince: 500 }), limits, 30_000)).toEqual({ ok: true });
    expect(judgeHop(signs({ ackedAt: 10, seenAt: null, goneSince: 500 }), limits, 30_501)).toEqual({ ok: false, code: "agent_not_connected", reason: "its agent disconnected and did not come back within 30000 ms" });
  });
});

describe("HopWatches: every forwarded exec's deadline, one timer", () => {
  const setup = () => {
    let now = 0;
    const acked = new Set<string>();
    const failed: Array<[string, string, string]> = [];
    const watches = new HopWatches({ now: () => now, agentSeenAt: () => 0, acknowledged: (id) => acked.has(id), fail: (id, code, reason) => failed.push([id, code, reason]) });
    const at = (t: number) => {
      const before = now;
      now = t;
      vi.advanceTimersByTime(t - before);
    };
    return { watches, failed, at, ack: (id: string) => acked.add(id) };
  };

  it("holds many execs on one timer, fails each at its own ack deadline, and stops the timer when none is left", () => {
    vi.useFakeTimers();
    try {
      const { watches, failed, at, ack } = setup();
      watches.watch("a", { ackTimeoutMs: 100, staleMs: 600 });
      watches.watch("b", { ackTimeoutMs: 300, staleMs: 600 });
      watches.watch("c", { ackTimeoutMs: 10_000, staleMs: 600 });
      expect(vi.getTimerCount()).toBe(1);
      ack("c");
      at(101);
      expect(failed).toEqual([["a", "timeout", "its agent is connected but did not acknowledge the request within 100 ms"]]);
      watches.progress("b"); // output: acknowledged and alive
      at(302);
      expect(failed).toHaveLength(1);
      expect(vi.getTimerCount()).toBe(1);
      watches.stop("c"); // its stream ended
      at(901);
      expect(failed.map((f) => f[0])).toEqual(["a", "b"]);
      expect(failed[1]![2]).toBe("its agent stopped responding: no heartbeat or output for 600 ms");
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it("a disconnect is told, not polled: the agent has staleMs to come back, and a resent request waits anew", () => {
    vi.useFakeTimers();
    try {
      const { watches, failed, at } = setup();
      watches.watch("x", { ackTimeoutMs: 100, staleMs: 600 });
      at(50);
      watches.agentGone();
      at(400);
      watches.agentBack(); // resent: its acknowledgement is awaited from now
      at(499);
      expect(failed).toEqual([]);
      at(501);
      expect(failed.map((f) => f[0])).toEqual(["x"]);
    } finally {
      vi.useRealTimers();
    }
  });
});
