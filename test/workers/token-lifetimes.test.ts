/**
 * Tokens that must expire: user/API and host tokens carry `exp` and `iat` and live at most their
 * kind's maximum (TOKEN_LIFETIME), or the Worker refuses them with 401 problem+json before any
 * Durable Object is addressed. Asking for a longer-lived host token is a 400. Agent tokens keep no
 * `exp` and are revoked by the environment's generation.
 */
import { env, SELF } from "cloudflare:test";
import { decodeJwt, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { AUDIENCE, TOKEN_ISSUER, TOKEN_LIFETIME } from "@outpost/protocol";
import { BASE, call, createEnvironment, expectProblem, TestAgent, userToken } from "./helpers.js";

const now = () => Math.floor(Date.now() / 1000);
const DAY = 24 * 3600;

/** Signs claims exactly as given (no defaults), with the Worker's own key. */
function sign(audience: string, claims: Record<string, unknown>): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuer(TOKEN_ISSUER)
    .setAudience(audience)
    .sign(new TextEncoder().encode(env.OUTPOST_JWT_SECRET));
}
const user = (extra: Record<string, unknown>) => sign(AUDIENCE.api, { sub: "tester", org: "org-ttl", role: "admin", ...extra });
const host = (extra: Record<string, unknown>) => sign(AUDIENCE.host, { sub: "ttl-box", org: "org-ttl", ...extra });
const connectHost = (token: string) => SELF.fetch(`${BASE}/v1/hosts/connect`, { headers: { upgrade: "websocket", authorization: `Bearer ${token}` } });

describe("token lifetimes", () => {
  it("user/API tokens: expired, without exp, without iat, or living longer than the maximum → 401 problem+json", async () => {
    const expired = await expectProblem(await call("GET", "/v1/environments", { token: await user({ iat: now() - 7200, exp: now() - 3600 }) }), 401, "unauthorized");
    expect(expired.detail).toContain("expired");
    const noExp = await expectProblem(await call("GET", "/v1/environments", { token: await user({ iat: now() }) }), 401, "unauthorized");
    expect(noExp.detail).toContain("'exp'");
    const noIat = await expectProblem(await call("GET", "/v1/environments", { token: await user({ exp: now() + 3600 }) }), 401, "unauthorized");
    expect(noIat.detail).toContain("'iat'");
    const tooLong = await expectProblem(await call("GET", "/v1/environments", { token: await user({ iat: now(), exp: now() + TOKEN_LIFETIME.api.maxSeconds + DAY }) }), 401, "unauthorized");
    expect(tooLong.detail).toContain("90 days");
    // A future iat does not stretch it: the lifetime counts from the earlier of iat and now.
    await expectProblem(await call("GET", "/v1/environments", { token: await user({ iat: now() + 30 * DAY, exp: now() + 100 * DAY }) }), 401);
  });

  it("user/API tokens within the maximum are accepted, up to it exactly", async () => {
    expect((await call("GET", "/v1/environments", { token: await user({ iat: now(), exp: now() + TOKEN_LIFETIME.api.maxSeconds }) })).status).toBe(200);
    expect((await call("GET", "/v1/environments", { token: await userToken({ org: "org-ttl" }) })).status).toBe(200);
    const refused = await call("GET", "/v1/environments", { token: await user({ iat: now() }) });
    expect(refused.headers.get("www-authenticate")).toContain("invalid_token");
  });

  it("host tokens: without exp or over five years → 401 at connect; issued by the API with exp, 1 year by default; asking for more than the maximum → 400", async () => {
    const noExp = await expectProblem(await connectHost(await host({ iat: now() })), 401, "unauthorized");
    expect(noExp.detail).toContain("'exp'");
    await expectProblem(await connectHost(await host({ iat: now(), exp: now() + TOKEN_LIFETIME.host.maxSeconds + DAY })), 401, "unauthorized");
    await expectProblem(await connectHost(await host({ iat: now() - 7200, exp: now() - 60 })), 401, "unauthorized");

    const admin = await userToken({ org: "org-ttl" });
    const over = await expectProblem(await call("POST", "/v1/hosts/tokens", { token: admin, json: { name: "ttl-box", ttlSeconds: TOKEN_LIFETIME.host.maxSeconds + 1 } }), 400, "bad_request");
    expect(over.detail + JSON.stringify(over)).toContain("ttlSeconds");
    const issued = (await (await call("POST", "/v1/hosts/tokens", { token: admin, json: { name: "ttl-box" } })).json()) as { token: string };
    const claims = decodeJwt(issued.token);
    expect(claims.exp! - claims.iat!).toBe(TOKEN_LIFETIME.host.defaultSeconds);
    const ws = (await connectHost(issued.token)).webSocket;
    expect(ws, "a fresh host token connects").toBeTruthy();
    ws!.accept();
    ws!.close(1000);
  });

  it("agent tokens carry no exp and still work; rotating revokes the old one", async () => {
    const admin = await userToken({ org: "org-ttl" });
    const { environment, agentToken } = await createEnvironment(admin, "ttl-agent");
    expect(decodeJwt(agentToken).exp).toBeUndefined();
    const agent = await TestAgent.connect(environment.id, agentToken);
    agent.ws.close(1000);
    const rotated = (await (await call("POST", `/v1/environments/${environment.id}/agent-token`, { token: admin })).json()) as { agentToken: string };
    expect(decodeJwt(rotated.agentToken).exp).toBeUndefined();
    const old = await SELF.fetch(`${BASE}/v1/environments/${environment.id}/connect`, { headers: { upgrade: "websocket", authorization: `Bearer ${agentToken}` } });
    expect(old.status).toBe(401);
    const fresh = await TestAgent.connect(environment.id, rotated.agentToken);
    fresh.ws.close(1000);
  });
});
