/**
 * Deterministic generators of hostile input: a seeded PRNG (so a failing case can be replayed from
 * its seed and index), junk strings, random JSON shaped like our bodies but wrong, and the values
 * that break naive parsers (huge numbers, NaN, deep nesting, NUL, lone surrogates).
 */

/** mulberry32: small, fast, good enough to spread cases; the seed is printed with every failure. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Gen {
  readonly next: () => number;
  constructor(readonly seed: number) {
    this.next = prng(seed);
  }
  int(max: number): number {
    return Math.floor(this.next() * max);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  /** A string of junk, mixing ASCII, controls, unicode and lone surrogates. */
  junk(max = 40): string {
    const n = this.int(max + 1);
    let s = "";
    for (let i = 0; i < n; i++) {
      const k = this.int(10);
      if (k < 5) s += String.fromCharCode(32 + this.int(95));
      else if (k < 6) s += String.fromCharCode(this.int(32));
      else if (k < 8) s += String.fromCharCode(0x80 + this.int(0x2000));
      else if (k < 9) s += String.fromCharCode(0xd800 + this.int(0x800)); // lone surrogate
      else s += this.pick(["..", "/", "%", "\\", "\0", "%00", "%2e", "${", "'", '"', "<", "{", "}"]);
    }
    return s;
  }
  /** A value that breaks naive handling: wrong types, extremes, odd strings. */
  nasty(): unknown {
    return this.pick<() => unknown>([
      () => null,
      () => true,
      () => -1,
      () => 0,
      () => 1e308,
      () => -0,
      () => 2 ** 53 + 1,
      () => 1.5,
      () => "",
      () => this.junk(),
      () => "a".repeat(1 + this.int(70_000)),
      () => [],
      () => {},
      () => [this.junk(), this.junk()],
      () => ({ [this.junk(8)]: this.junk(8) }),
      () => "../../etc/passwd",
      () => "__proto__",
      () => ({ __proto__: { polluted: true } }),
      () => ({ constructor: { prototype: { polluted: true } } }),
      () => this.deep(50 + this.int(200)),
    ])();
  }
  /** Nested arrays this deep. */
  deep(depth: number): unknown {
    let v: unknown = 1;
    for (let i = 0; i < depth; i++) v = [v];
    return v;
  }
  /** An object with keys our bodies use (so validation gets past the first field) and wrong values. */
  body(keys: readonly string[], depth = 0): unknown {
    const o: Record<string, unknown> = {};
    const n = 1 + this.int(5);
    for (let i = 0; i < n; i++) {
      const key = this.chance(0.85) ? this.pick(keys) : this.junk(12);
      o[key] = depth < 2 && this.chance(0.2) ? this.body(keys, depth + 1) : this.nasty();
    }
    return o;
  }
}

/** Field names of every request body in the API (protocol/src/api.ts and the routes). */
export const BODY_KEYS = [
  "name", "provider", "config", "metadata", "lifecycle", "requires", "capabilities", "host", "command", "cwd", "env", "timeoutMs",
  "stdin", "shell", "path", "recursive", "from", "to", "overwrite", "agent", "message", "threadId", "objectiveId", "id", "providers",
  "ttlSeconds", "heartbeatMs", "graceMs", "restart", "policy",
] as const;

/** Query parameter names used by any route, plus ones none uses. */
export const QUERY_KEYS = ["path", "recursive", "maxEntries", "limit", "cursor", "state", "provider", "after", "maxFileBytes", "access_token", "x", "__proto__"] as const;

export const QUERY_VALUES = [
  "", "-1", "0", "1", "1e309", "NaN", "Infinity", "true", "yes", "../x", "%00", "\0", "..%2f..%2fetc", "[]", "{}", "999999999999999999999999",
  "running", "archived", "a".repeat(5000), "é", "\ud800", "env_aaaaaaaaaaaaaaaaaaaa",
] as const;

/** Lone surrogates replaced, so the string can be URL-encoded (they still reach bodies as JSON escapes). */
export function wellFormed(s: string): string {
  return s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
}
