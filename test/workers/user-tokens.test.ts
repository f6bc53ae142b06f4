/**
 * POST /v1/tokens in workerd: an admin issues user/API tokens for its own org, never of a higher
 * role than its own, expiring within TOKEN_LIFETIME.api; each refusal is problem+json, and a token
 * it issues works with exactly its role, in the issuer's org.
 */
import { decodeJwt } from "jose";
import { describe, expect, it } from "vitest";
import { AUDIENCE, mayIssueRole, TOKEN_LIFETIME, UserTokenResponse, type Role } from "@outpost/protocol";
import { call, createEnvironment, expectProblem, userToken } from "./helpers.js";

const ORG = "org-mint";
const DAY = 24 * 3600;

async function issue(token: string, body: unknown): Promise<UserTokenResponse> {
  const res = await call("POST", "/v1/tokens", { token, json: body });
  expect(res.status, await res.clone().text()).toBe(201);
  return UserTokenResponse.parse(await res.json());
}

describe("POST /v1/tokens", () => {
  it("an admin issues a token of any role up to its own, in its org, 30 days by default or for ttlSeconds", async () => {
    const admin = await userToken({ org: ORG });
    const viewer = await issue(admin, { role: "viewer", name: "ci-reader" });
    const claims = decodeJwt(viewer.token);
    expect(claims).toMatchObject({ aud: AUDIENCE.api, org: ORG, role: "viewer", sub: "ci-reader", issuedBy: "tester" });
    expect(claims.exp! - claims.iat!).toBe(TOKEN_LIFETIME.api.defaultSeconds);
    expect(viewer).toMatchObject({ org: ORG, role: "viewer", sub: "ci-reader", expiresAt: new Date(claims.exp! * 1000).toISOString() });

    const week = await issue(admin, { role: "operator", ttlSeconds: 7 * DAY });
    expect(week.sub).toBe("tester/operator");
    const w = decodeJwt(week.token);
    expect(w.exp! - w.iat!).toBe(7 * DAY);
    const longest = decodeJwt((await issue(admin, { role: "admin", ttlSeconds: TOKEN_LIFETIME.api.maxSeconds })).token);
    expect(longest.exp! - longest.iat!).toBe(TOKEN_LIFETIME.api.maxSeconds);
  });

  it("a token it issues works with exactly its role, in the issuer's org", async () => {
    const admin = await userToken({ org: ORG });
    const { environment } = await createEnvironment(admin, "minted-sees");
    const as = async (role: Role) => (await issue(admin, { role, ttlSeconds: 3600 })).token;

    const viewer = await as("viewer");
    expect((await call("GET", `/v1/environments/${environment.id}`, { token: viewer })).status).toBe(200);
    await expectProblem(await call("POST", "/v1/environments", { token: viewer, json: { name: "nope", provider: "local" } }), 403, "forbidden");
    await expectProblem(await call("POST", `/v1/environments/${environment.id}/start`, { token: viewer }), 403, "forbidden");

    const operator = await as("operator");
    expect((await call("POST", "/v1/environments", { token: operator, json: { name: "minted-op", provider: "local" } })).status).toBe(201);
    await expectProblem(await call("DELETE", `/v1/environments/${environment.id}`, { token: operator }), 403, "forbidden");

    // Another org's admin sees none of it, and the tokens it issues are of its own org.
    const stranger = await userToken({ org: "org-mint-other" });
    const theirs = (await issue(stranger, { role: "viewer" })).token;
    expect(decodeJwt(theirs).org).toBe("org-mint-other");
    await expectProblem(await call("GET", `/v1/environments/${environment.id}`, { token: theirs }), 404, "not_found");
  });

  it("role escalation is refused with 403 problem+json: only an admin issues, and never above its own role", async () => {
    const admin = await userToken({ org: ORG });
    for (const role of ["operator", "viewer"] as const) {
      const lower = await userToken({ org: ORG, role });
      for (const asked of ["admin", "operator", "viewer"] as const) {
        const p = await expectProblem(await call("POST", "/v1/tokens", { token: lower, json: { role: asked } }), 403, "forbidden");
        expect(p.detail).toContain("'admin' role");
      }
    }
    // A token issued as operator cannot issue one either, not even a viewer's.
    const minted = (await issue(admin, { role: "operator", ttlSeconds: 600 })).token;
    await expectProblem(await call("POST", "/v1/tokens", { token: minted, json: { role: "viewer" } }), 403, "forbidden");
    // Other kinds of token: a host token is the wrong kind (403); none at all, or a forged one, 401.
    const host = (await (await call("POST", "/v1/hosts/tokens", { token: admin, json: { name: "mint-box" } })).json()) as { token: string };
    await expectProblem(await call("POST", "/v1/tokens", { token: host.token, json: { role: "viewer" } }), 403, "forbidden");
    await expectProblem(await call("POST", "/v1/tokens", { json: { role: "viewer" } }), 401, "unauthorized");
    await expectProblem(await call("POST", "/v1/tokens", { token: await userToken({ org: ORG, secret: "another-secret-0123456789abcdefghijkl" }), json: { role: "viewer" } }), 401, "unauthorized");
  });

  it("the rule behind it: a role may issue its own or a narrower one, never a higher", () => {
    const roles = ["viewer", "operator", "admin"] as const;
    const allowed = roles.flatMap((issuer) => roles.filter((role) => mayIssueRole(issuer, role)).map((role) => `${issuer}→${role}`));
    expect(allowed).toEqual(["viewer→viewer", "operator→viewer", "operator→operator", "admin→viewer", "admin→operator", "admin→admin"]);
  });

  it("a bad ttl, role, name or an org in the body is a 400 naming the field", async () => {
    const admin = await userToken({ org: ORG });
    const bad = async (body: unknown, field: string) => {
      const res = await call("POST", "/v1/tokens", { token: admin, json: body });
      const p = (await expectProblem(res, 400, "bad_request")) as unknown as { errors: Array<{ path: string; message: string }> };
      expect(p.errors.map((e) => e.path), JSON.stringify(body)).toContain(field);
      return p.errors.find((e) => e.path === field)!.message;
    };
    expect(await bad({ role: "viewer", ttlSeconds: TOKEN_LIFETIME.api.maxSeconds + 1 }, "ttlSeconds")).toContain("90 days");
    await bad({ role: "viewer", ttlSeconds: 59 }, "ttlSeconds");
    await bad({ role: "viewer", ttlSeconds: 0 }, "ttlSeconds");
    await bad({ role: "viewer", ttlSeconds: 3600.5 }, "ttlSeconds");
    await bad({ role: "viewer", ttlSeconds: "7d" }, "ttlSeconds");
    await bad({ role: "owner" }, "role");
    await bad({}, "role");
    await bad({ role: "viewer", name: "has space" }, "name");
    await bad({ role: "viewer", org: "someone-else" }, "(root)");
    await expectProblem(await call("POST", "/v1/tokens", { token: admin, body: "role=viewer", headers: { "content-type": "text/plain" } }), 415);
  });
});
