/**
 * Rate limits with small limits (a variant wrangler.toml and vars): repeated authentication
 * failures from one client or for one token subject, and a request flood into one environment, are
 * answered 429 with Retry-After as problem+json; requests that authenticate, and other environments,
 * are not affected.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness, type Harness } from "../e2e/helpers.js";
import { Figures, tally } from "./lib/figures.js";
import { wranglerVariant } from "./lib/variant-config.js";

const figures = new Figures("rate-limits");
const AUTH_LIMIT = 5;
const ENV_BURST = 8;
const ENV_RATE = 2;
let h: Harness;
beforeAll(async () => {
  h = await startHarness({
    config: (toml) => wranglerVariant(toml, { limit: AUTH_LIMIT, period: 10 }),
    vars: { OUTPOST_ENV_RATE: String(ENV_RATE), OUTPOST_ENV_BURST: String(ENV_BURST), OUTPOST_AUTH_FAILURE_PERIOD: "10" },
  });
});
afterAll(async () => {
  figures.write();
  await h?.close();
});

async function problem429(res: Response): Promise<string | null> {
  const text = await res.text();
  if (res.status !== 429) return `status ${res.status}: ${text.slice(0, 200)}`;
  if (!(res.headers.get("content-type") ?? "").startsWith("application/problem+json")) return "429 without problem+json";
  const retry = Number(res.headers.get("retry-after"));
  if (!(retry >= 1)) return `429 without a Retry-After (${res.headers.get("retry-after")})`;
  if ((JSON.parse(text) as { code: string }).code !== "rate_limited") return `429 with code ${text}`;
  return null;
}

describe("repeated authentication failures", () => {
  it("from one client: 401 up to the limit, then 429 with Retry-After; a valid token still works", async () => {
    const outcomes: Record<string, number> = {};
    const statuses: number[] = [];
    const wrong: string[] = [];
    for (let i = 0; i < AUTH_LIMIT + 10; i++) {
      const res = await fetch(`${h.cp.url}/v1/environments`, { headers: { authorization: `Bearer bad.token.${i}` } });
      statuses.push(res.status);
      tally(outcomes, res.status);
      if (res.status === 429) {
        const v = await problem429(res);
        if (v) wrong.push(v);
      } else await res.text();
    }
    expect(statuses.slice(0, AUTH_LIMIT)).toEqual(Array(AUTH_LIMIT).fill(401));
    expect(statuses.slice(-5)).toEqual(Array(5).fill(429));
    // Only failures count: a valid token is served meanwhile.
    expect((await h.admin.request("GET", "/v1/environments")).status).toBe(200);
    figures.add({ section: "rate limits", name: `auth failures from one client IP (limit ${AUTH_LIMIT} per 10 s)`, faults: 0, cases: statuses.length, lost: wrong.length, outcomes });
    expect(wrong).toEqual([]);
  });

  it("for one token subject: an expired token of one user is limited by its subject", async () => {
    // The same IP is already over its limit from the test above: wait out its period first.
    await new Promise((r) => setTimeout(r, 10_500));
    const { SignJWT } = await import("jose");
    const { AUDIENCE, TOKEN_ISSUER } = await import("@outpost/protocol");
    const expired = await new SignJWT({ org: "e2e", role: "admin" }).setProtectedHeader({ alg: "HS256" }).setIssuer(TOKEN_ISSUER).setAudience(AUDIENCE.api).setSubject("stolen-laptop").setIssuedAt(0).setExpirationTime(1).sign(new TextEncoder().encode(h.secret));
    const outcomes: Record<string, number> = {};
    let first429 = -1;
    for (let i = 0; i < AUTH_LIMIT + 3; i++) {
      // A different client IP each time (the edge sets CF-Connecting-IP; locally it passes through).
      const res = await fetch(`${h.cp.url}/v1/environments`, { headers: { authorization: `Bearer ${expired}`, "cf-connecting-ip": `198.51.100.${i + 1}` } });
      tally(outcomes, res.status);
      if (res.status === 429 && first429 < 0) {
        first429 = i;
        expect(await problem429(res)).toBeNull();
      } else await res.text();
    }
    figures.add({ section: "rate limits", name: "auth failures for one token subject from changing IPs", faults: 0, cases: AUTH_LIMIT + 3, lost: first429 === AUTH_LIMIT ? 0 : 1, outcomes });
    expect(first429).toBe(AUTH_LIMIT);
  });
});

describe("a request flood into one environment", () => {
  it("is answered 429 with Retry-After past the burst, other environments unaffected, and it recovers", async () => {
    const flooded = (await h.admin.createEnvironment({ name: "flooded", provider: "local" })).environment.id;
    const calm = (await h.admin.createEnvironment({ name: "calm", provider: "local" })).environment.id;
    const n = ENV_BURST * 4;
    const outcomes: Record<string, number> = {};
    const wrong: string[] = [];
    const results = await Promise.all(Array.from({ length: n }, () => h.admin.request("GET", `/v1/environments/${flooded}`)));
    let ok = 0;
    for (const res of results) {
      tally(outcomes, res.status);
      if (res.status === 200) (ok++, await res.text());
      else {
        const v = await problem429(res);
        if (v) wrong.push(v);
      }
    }
    // At most the burst plus what refilled meanwhile got through; the rest were refused, none failed otherwise.
    expect(ok).toBeGreaterThanOrEqual(ENV_BURST - 1);
    expect(ok).toBeLessThan(n);
    expect((await h.admin.request("GET", `/v1/environments/${calm}`)).status).toBe(200);
    // Retry-After is honest: after waiting it, the environment answers again.
    const refused = await h.admin.request("GET", `/v1/environments/${flooded}`);
    const retry = Number(refused.headers.get("retry-after") ?? 0);
    await refused.text();
    await new Promise((r) => setTimeout(r, Math.max(1, retry) * 1000 + 200));
    const again = await h.admin.request("GET", `/v1/environments/${flooded}`);
    expect(again.status).toBe(200);
    figures.add({ section: "rate limits", name: `${n} concurrent requests into one environment (${ENV_RATE}/s, burst ${ENV_BURST})`, faults: 0, cases: n + 3, lost: wrong.length, outcomes });
    expect(wrong).toEqual([]);
  });
});
