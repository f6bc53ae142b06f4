import { describe, expect, it } from "vitest";
import { floodBucket, floodRefusal, TokenBucket } from "../../durable-objects/flood.js";

describe("the per-environment flood bucket", () => {
  it("grants the burst at once, then one token per 1/rate seconds, and says how long to wait", () => {
    const b = new TokenBucket(2, 3);
    expect([b.take(0), b.take(0), b.take(0)]).toEqual([0, 0, 0]);
    expect(b.take(0)).toBe(500);
    expect(b.take(499)).toBeGreaterThan(0);
    expect(b.take(1000)).toBe(0);
    expect(b.take(60_000)).toBe(0); // refilled, but never above the burst
    expect([b.take(60_000), b.take(60_000), b.take(60_000)]).toEqual([0, 0, 500]);
  });

  it("refuses with rate_limited and whole seconds to retry; reads its limits from vars", () => {
    const b = floodBucket({ OUTPOST_ENV_RATE: "0.5", OUTPOST_ENV_BURST: "1" });
    expect(floodRefusal(b, 0)).toBeNull();
    expect(floodRefusal(b, 0)).toMatchObject({ ok: false, error: { code: "rate_limited", details: { retryAfterSeconds: 2 } } });
    expect(floodBucket({ OUTPOST_ENV_RATE: "nonsense" }).rate).toBe(100);
  });
});
