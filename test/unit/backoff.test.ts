import { describe, expect, it } from "vitest";
import { BACKOFF_DEFAULTS, backoffDelay } from "../../provider-agent/src/backoff.js";
import { ManualClock } from "../../provider-agent/src/clock.js";

describe("backoffDelay", () => {
  const long = BACKOFF_DEFAULTS.promptMs; // an outage that has lasted a minute: the long cap applies

  it("with random() at its top the delay doubles from the base up to the long cap once the outage is long", () => {
    const top = { random: () => 1 };
    expect([0, 1, 2, 3, 4].map((a) => backoffDelay(a, long, top))).toEqual([100, 200, 400, 800, 1600]);
    expect(backoffDelay(7, long, top)).toBe(BACKOFF_DEFAULTS.maxMs);
    expect(backoffDelay(50, long, top)).toBe(10_000);
    expect(backoffDelay(5_000, long, top)).toBe(10_000);
  });

  it("caps the delay at the prompt cap for the first minute of an outage, then at the long cap", () => {
    const top = { random: () => 1 };
    expect([0, 4, 5, 7, 50].map((a) => backoffDelay(a, 0, top))).toEqual([100, 1600, 2000, 2000, 2000]);
    expect(backoffDelay(50, BACKOFF_DEFAULTS.promptMs - 1, top)).toBe(BACKOFF_DEFAULTS.promptMaxMs);
    expect(backoffDelay(50, BACKOFF_DEFAULTS.promptMs, top)).toBe(BACKOFF_DEFAULTS.maxMs);
    // Custom windows; the prompt cap never exceeds the long one.
    expect(backoffDelay(50, 999, { random: () => 1, promptMs: 1_000, promptMaxMs: 300 })).toBe(300);
    expect(backoffDelay(50, 1_000, { random: () => 1, promptMs: 1_000, promptMaxMs: 300 })).toBe(10_000);
    expect(backoffDelay(50, 0, { random: () => 1, maxMs: 40 })).toBe(40);
  });

  it("applies full jitter: the delay is random() times the ceiling, down to zero", () => {
    expect(backoffDelay(3, 0, { random: () => 0 })).toBe(0);
    expect(backoffDelay(3, 0, { random: () => 0.5 })).toBe(400);
    expect(backoffDelay(3, long, { random: () => 0.25, baseMs: 100, maxMs: 10_000 })).toBe(200);
    expect(backoffDelay(20, 0, { random: () => 0.5 })).toBe(1_000);
  });

  it("honours custom base and cap", () => {
    const opts = { baseMs: 10, maxMs: 50, random: () => 1 };
    expect([0, 1, 2, 3, 4].map((a) => backoffDelay(a, long, opts))).toEqual([10, 20, 40, 50, 50]);
  });

  it("stays within [0, ceiling) with the real random source", () => {
    for (let attempt = 0; attempt < 40; attempt++) {
      const brief = backoffDelay(attempt, 0);
      const d = backoffDelay(attempt, long);
      expect(brief).toBeGreaterThanOrEqual(0);
      expect(brief).toBeLessThanOrEqual(Math.min(2_000, 100 * 2 ** attempt));
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(Math.min(10_000, 100 * 2 ** attempt));
    }
  });

  it("treats a negative or fractional attempt as the nearest sensible one", () => {
    expect(backoffDelay(-3, 0, { random: () => 1 })).toBe(100);
    expect(backoffDelay(1.7, 0, { random: () => 1 })).toBe(200);
  });
});

describe("ManualClock", () => {
  it("fires due timers in time order, ties in creation order, and never early", () => {
    const clock = new ManualClock(1000);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push("b@20"), 20);
    clock.setTimeout(() => fired.push("a@10"), 10);
    clock.setTimeout(() => fired.push("c@20"), 20);
    const cancelled = clock.setTimeout(() => fired.push("never"), 5);
    clock.clearTimeout(cancelled);
    clock.advance(9);
    expect(fired).toEqual([]);
    clock.advance(11);
    expect(fired).toEqual(["a@10", "b@20", "c@20"]);
    expect(clock.now()).toBe(1020);
    expect(clock.pending).toBe(0);
  });

  it("runs timers scheduled by timers within the same advance, at their own time", () => {
    const clock = new ManualClock();
    const at: number[] = [];
    const tick = () => {
      at.push(clock.now());
      if (at.length < 3) clock.setTimeout(tick, 100);
    };
    clock.setTimeout(tick, 100);
    clock.advance(1000);
    expect(at).toEqual([100, 200, 300]);
    expect(clock.now()).toBe(1000);
  });
});
