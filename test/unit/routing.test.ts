import { describe, expect, it } from "vitest";
import { DEFAULT_ACK_TIMEOUT_MS, DEFAULT_MAX_HOPS, ForwardBody, Gateway, requestTypeOf, Routing, type RouteRule } from "@outpost/protocol";
import { admit, arrive, candidatesFor, decide, originTrail, ruleFor, targetLabel, type Hop } from "../../durable-objects/routing.js";

const a: Hop = { id: "env_a", name: "a" };
const b: Hop = { id: "env_b", name: "b" };
const c: Hop = { id: "env_c", name: "c" };
const open = Gateway.parse({ accept: true, allowFrom: ["*"] });

describe("ruleFor", () => {
  const rules: RouteRule[] = [
    { match: "*", to: "hub" },
    { match: "exec", to: "b" },
    { match: "files:stat", to: "local" },
    { match: "files", to: { capability: "storage" } },
    { match: "inference", to: { capability: "gpu" } },
    { match: "inference:embed", to: "c" },
    { match: "exec", to: "ignored-second-exec-rule" },
  ];
  it("takes the most specific rule: type:action, then type, then *", () => {
    expect(ruleFor(rules, "files", "stat")).toBe("local");
    expect(ruleFor(rules, "files", "list")).toEqual({ capability: "storage" });
    expect(ruleFor(rules, "inference", "embed")).toBe("c");
    expect(ruleFor(rules, "inference", "generate")).toEqual({ capability: "gpu" });
    expect(ruleFor(rules, "inference", null)).toEqual({ capability: "gpu" });
    expect(ruleFor(rules, "runs", "create")).toBe("hub");
  });
  it("takes the first rule of a level", () => expect(ruleFor(rules, "exec", null)).toBe("b"));
  it("runs locally without rules", () => {
    expect(ruleFor([], "exec", null)).toBe("local");
    expect(ruleFor([{ match: "files", to: "b" }], "exec", null)).toBe("local");
  });
});

describe("decide", () => {
  const rules: RouteRule[] = [{ match: "exec", to: "b" }];
  it("follows the rules when no path is given", () => {
    expect(decide({ rules, type: "exec", action: null })).toEqual({ kind: "forward", next: "b", rest: [] });
    expect(decide({ rules, type: "files", action: "stat" })).toEqual({ kind: "local" });
    expect(decide({ explicit: {}, rules: [], type: "exec", action: null })).toEqual({ kind: "local" });
  });
  it("an explicit route wins over the rules and carries the rest", () => {
    expect(decide({ explicit: { route: ["c", "d", "e"] }, rules, type: "exec", action: null })).toEqual({ kind: "forward", next: "c", rest: ["d", "e"] });
    expect(decide({ explicit: { target: { capability: "gpu" } }, rules, type: "exec", action: null })).toEqual({ kind: "forward", next: { capability: "gpu" }, rest: [] });
  });
  it("targets fan out", () => {
    expect(decide({ explicit: { targets: ["b", "c"] }, rules, type: "exec", action: null })).toEqual({ kind: "fanout", targets: ["b", "c"] });
    expect(decide({ explicit: { targets: [] }, rules, type: "exec", action: null })).toMatchObject({ kind: "refuse", code: "bad_request" });
  });
  it("an empty route falls back to the rules (the end of an explicit chain)", () => {
    expect(decide({ explicit: { route: [] }, rules, type: "exec", action: null })).toEqual({ kind: "forward", next: "b", rest: [] });
  });
});

describe("admit", () => {
  it("admits through an accepting gateway and extends the trail", () => {
    const r = admit(open, b, a, originTrail(a, 8, 10_000));
    expect(r).toEqual({ ok: true, trail: { origin: "env_a", visited: ["env_a", "env_b"], names: ["a", "b"], hops: 1, maxHops: 8, ackTimeoutMs: 10_000 } });
  });
  it("refuses when the gateway is inactive", () => {
    const r = admit(Gateway.parse({ accept: false, allowFrom: ["*"] }), b, a, originTrail(a, 8, 10_000));
    expect(r).toMatchObject({ ok: false, code: "forbidden" });
    expect(!r.ok && r.message).toMatch(/'b' does not accept forwarded work: its gateway is inactive/);
  });
  it("refuses a sender not in allowFrom, and allows by id, by name or *", () => {
    expect(admit(Gateway.parse({ accept: true, allowFrom: ["c"] }), b, a, originTrail(a, 8, 10_000))).toMatchObject({ ok: false, code: "forbidden", message: expect.stringMatching(/from 'a'/) });
    expect(admit(Gateway.parse({ accept: true, allowFrom: [] }), b, a, originTrail(a, 8, 10_000))).toMatchObject({ ok: false, code: "forbidden" });
    expect(admit(Gateway.parse({ accept: true, allowFrom: ["a"] }), b, a, originTrail(a, 8, 10_000)).ok).toBe(true);
    expect(admit(Gateway.parse({ accept: true, allowFrom: ["env_a"] }), b, a, originTrail(a, 8, 10_000)).ok).toBe(true);
  });
  it("refuses a loop, naming the path, before anything else", () => {
    const t1 = admit(open, b, a, originTrail(a, 8, 10_000));
    if (!t1.ok) throw new Error("b refused");
    const t2 = admit(open, c, b, t1.trail);
    if (!t2.ok) throw new Error("c refused");
    const back = admit(Gateway.parse({ accept: false }), a, c, t2.trail);
    expect(back).toEqual({ ok: false, code: "loop_detected", message: "Loop refused: a → b → c → a comes back to environment 'a'." });
    expect(admit(open, a, a, originTrail(a, 8, 10_000))).toMatchObject({ ok: false, code: "loop_detected" });
  });
  it("refuses past the hop limit", () => {
    let trail = originTrail({ id: "e0", name: "e0" }, 3, 10_000);
    for (let i = 1; i <= 3; i++) {
      const r = admit(open, { id: `e${i}`, name: `e${i}` }, { id: `e${i - 1}`, name: `e${i - 1}` }, trail);
      if (!r.ok) throw new Error(r.message);
      trail = r.trail;
    }
    expect(trail.hops).toBe(3);
    expect(admit(open, { id: "e4", name: "e4" }, { id: "e3", name: "e3" }, trail)).toMatchObject({ ok: false, code: "hop_limit", message: expect.stringMatching(/Hop limit 3 reached at environment 'e4' \(e0 → e1 → e2 → e3 → e4\)/) });
  });
  it("continues a trail that came from another deployment, refusing loops and counting hops", () => {
    const via = { origin: "env_a", hops: 2, trail: ["env_a", "env_r"], names: ["a", "r"], maxHops: 4 };
    expect(arrive(b, via, 8, 10_000)).toEqual({ ok: true, trail: { origin: "env_a", visited: ["env_a", "env_r", "env_b"], names: ["a", "r", "b"], hops: 3, maxHops: 4, ackTimeoutMs: 10_000 } });
    expect(arrive({ id: "env_a", name: "a2" }, via, 8, 10_000)).toMatchObject({ ok: false, code: "loop_detected" });
    expect(arrive(b, { ...via, hops: 4 }, 8, 10_000)).toMatchObject({ ok: false, code: "hop_limit" });
    expect(arrive(b, { ...via, names: undefined }, 8, 10_000)).toMatchObject({ ok: true, trail: { names: ["env_a", "env_r", "b"] } });
  });
});

describe("capability candidates and labels", () => {
  it("never picks an environment already on the path", () => {
    expect(candidatesFor([a, b, c], originTrail(a, 8, 10_000))).toEqual([b, c]);
  });
  it("labels targets", () => {
    expect(targetLabel("b")).toBe("b");
    expect(targetLabel({ capability: "gpu" })).toBe("capability:gpu");
  });
});

describe("schemas", () => {
  it("routing and gateway defaults", () => {
    expect(Routing.parse({})).toEqual({ rules: [], maxHops: DEFAULT_MAX_HOPS, ackTimeoutMs: DEFAULT_ACK_TIMEOUT_MS });
    expect(Gateway.parse({ accept: true })).toEqual({ accept: true, allowFrom: [], capabilities: [] });
    expect(Routing.safeParse({ rules: [{ match: "Exec!", to: "b" }] }).success).toBe(false);
    expect(Routing.safeParse({ maxHops: 0 }).success).toBe(false);
  });
  it("a forward body carries one kind of work and at most one destination", () => {
    expect(ForwardBody.safeParse({ exec: { command: ["true"] }, target: "b" }).success).toBe(true);
    expect(ForwardBody.safeParse({ exec: { command: ["true"] }, run: { agent: { command: ["x"] } } }).success).toBe(false);
    expect(ForwardBody.safeParse({}).success).toBe(false);
    expect(ForwardBody.safeParse({ exec: { command: ["true"] }, target: "b", targets: ["c"] }).success).toBe(false);
    expect(ForwardBody.safeParse({ exec: { command: ["true"] }, type: "files" }).success).toBe(false);
    expect(ForwardBody.safeParse({ exec: { command: ["true"] }, type: "inference:generate" }).success).toBe(true);
    expect(ForwardBody.safeParse({ file: { op: "stat", params: { path: "x" } }, type: "runs" }).success).toBe(false);
    expect(ForwardBody.safeParse({ exec: { command: ["true"] }, route: ["b", { capability: "gpu" }] }).success).toBe(true);
    expect(ForwardBody.safeParse({ exec: { command: ["true"] }, route: ["../x"] }).success).toBe(false);
  });
  it("request types of a body", () => {
    expect(requestTypeOf({ file: { op: "stat", params: {} } })).toEqual({ type: "files", action: "stat" });
    expect(requestTypeOf({ run: { agent: { command: ["x"] } } })).toEqual({ type: "runs", action: "create" });
    expect(requestTypeOf({})).toEqual({ type: "exec", action: null });
    expect(requestTypeOf({ type: "inference:generate" })).toEqual({ type: "inference", action: "generate" });
  });
});
