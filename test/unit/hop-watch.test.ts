import { describe, expect, it } from "vitest";
import { judgeHop, type HopSigns } from "../../durable-objects/hop-watch.js";

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
