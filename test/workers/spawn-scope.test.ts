/**
 * The spawn scope is carried by the agent token (claim `spawn`): a token without it may not spawn
 * whatever the index says, a token naming a withdrawn or replaced grant is refused at once, a
 * rotated token keeps the scope, and a connected agent is handed the new token over its link.
 */
import { env } from "cloudflare:test";
import { decodeJwt, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { AUDIENCE, TOKEN_ISSUER } from "@outpost/protocol";
import { call, createEnvironment, eventsOf, eventually, expectProblem, TestAgent, userToken } from "./helpers.js";
import { grantSpawn, spawnChild, type Created } from "./hierarchy-helpers.js";

describe("the spawn scope on the agent token", () => {
  it("is required on the token, follows every change of the grant at once, and survives a rotation", async () => {
    const admin = await userToken({ org: "scope-1" });
    const parent = await createEnvironment(admin, "parent");
    expect(decodeJwt(parent.agentToken).spawn).toBeUndefined();

    const granted = await grantSpawn(admin, "parent", { maxChildren: 3, providers: ["local"] });
    expect(granted).toMatchObject({ spawn: { maxChildren: 3, maxDepth: 1, providers: ["local"] }, delivered: false });
    const claim = decodeJwt(granted.agentToken).spawn as { grant: string; maxChildren: number };
    expect(claim).toMatchObject({ maxChildren: 3, maxDepth: 1, providers: ["local"], grant: expect.stringMatching(/^sg_/) });
    expect(decodeJwt(granted.agentToken).gen).toBe(decodeJwt(parent.agentToken).gen); // same generation: the old token still connects

    // The index grants the scope, but the token presented does not carry it.
    const bare = await expectProblem(await spawnChild(parent.agentToken, parent.environment.id, { name: "kid-0", provider: "local" }), 403, "forbidden");
    expect(bare.detail).toMatch(/carries no spawn scope/);
    expect(((await spawnChild(granted.agentToken, parent.environment.id, { name: "kid-1", provider: "local" })).status)).toBe(201);

    // A changed grant is a new grant: the token carrying the old one is refused, the new one works.
    const changed = await grantSpawn(admin, "parent", { maxChildren: 2, providers: ["local"] });
    expect((decodeJwt(changed.agentToken).spawn as { grant: string }).grant).not.toBe(claim.grant);
    const stale = await expectProblem(await spawnChild(granted.agentToken, parent.environment.id, { name: "kid-2", provider: "local" }), 403, "forbidden");
    expect(stale.detail).toMatch(/withdrawn or replaced/);
    expect((await spawnChild(changed.agentToken, parent.environment.id, { name: "kid-2", provider: "local" })).status).toBe(201);
    const full = await expectProblem(await spawnChild(changed.agentToken, parent.environment.id, { name: "kid-3", provider: "local" }), 409, "children_limit");
    expect(full.detail).toMatch(/maxChildren 2/);

    // Rotating the agent token keeps the scope; the rotated-out token may no longer spawn.
    const rotated = (await (await call("POST", "/v1/environments/parent/agent-token", { token: admin })).json()) as { agentToken: string };
    expect((decodeJwt(rotated.agentToken).spawn as { grant: string }).grant).toBe((decodeJwt(changed.agentToken).spawn as { grant: string }).grant);
    await expectProblem(await call("DELETE", `/v1/environments/${parent.environment.id}/children/kid-2`, { token: changed.agentToken }), 401, "unauthorized");
    await expectProblem(await spawnChild(changed.agentToken, parent.environment.id, { name: "kid-4", provider: "local" }), 401, "unauthorized");
    expect((await call("DELETE", `/v1/environments/${parent.environment.id}/children/kid-2`, { token: rotated.agentToken })).status).toBe(200);

    // Withdrawn: refused at once, whatever token the agent still holds.
    const withdrawn = await grantSpawn(admin, "parent", null);
    expect(withdrawn.spawn).toBeNull();
    expect(decodeJwt(withdrawn.agentToken).spawn).toBeUndefined();
    await expectProblem(await spawnChild(rotated.agentToken, parent.environment.id, { name: "kid-5", provider: "local" }), 403, "forbidden");
    await expectProblem(await spawnChild(withdrawn.agentToken, parent.environment.id, { name: "kid-5", provider: "local" }), 403, "forbidden");
    const types = (await eventsOf(admin, "parent")).map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(["spawn.granted", "spawn.withdrawn", "agent.token_renewed", "child.spawned", "child.closed"]));
  });

  it("a token signed with a scope the environment was never granted is refused", async () => {
    const admin = await userToken({ org: "scope-2" });
    const parent = await createEnvironment(admin, "p");
    const forged = await new SignJWT({ org: "scope-2", gen: 1, spawn: { maxChildren: 9, maxDepth: 1, grant: "sg_madeupgrant0" } })
      .setProtectedHeader({ alg: "HS256" })
      .setIssuer(TOKEN_ISSUER)
      .setAudience(AUDIENCE.agent)
      .setSubject(parent.environment.id)
      .sign(new TextEncoder().encode(env.OUTPOST_JWT_SECRET));
    await expectProblem(await spawnChild(forged, parent.environment.id, { name: "k", provider: "local" }), 403, "forbidden");
    await grantSpawn(admin, "p", {});
    await expectProblem(await spawnChild(forged, parent.environment.id, { name: "k", provider: "local" }), 403, "forbidden");
  });

  it("a spawned child's token carries the scope it was given, within its parent's", async () => {
    const admin = await userToken({ org: "scope-3" });
    await createEnvironment(admin, "root");
    const { agentToken } = await grantSpawn(admin, "root", { maxChildren: 2, maxDepth: 2 });
    const root = decodeJwt(agentToken).sub!;
    const plain = (await (await spawnChild(agentToken, root, { name: "plain", provider: "local" })).json()) as Created;
    expect(decodeJwt(plain.agentToken).spawn).toBeUndefined();
    await expectProblem(await spawnChild(plain.agentToken, plain.environment.id, { name: "x", provider: "local" }), 403, "forbidden");
    const able = (await (await spawnChild(agentToken, root, { name: "able", provider: "local", spawn: { maxChildren: 1 } })).json()) as Created;
    expect(decodeJwt(able.agentToken).spawn).toMatchObject({ maxChildren: 1, maxDepth: 1 });
    expect((await spawnChild(able.agentToken, able.environment.id, { name: "grand", provider: "local" })).status).toBe(201);
    const deep = await expectProblem(await spawnChild(able.agentToken, able.environment.id, { name: "grand-2", provider: "local", spawn: { maxChildren: 1 } }), 409, "depth_limit");
    expect(deep.detail).toMatch(/maxDepth 1/);
  });

  it("a connected agent is handed the token that carries the new scope over its link", async () => {
    const admin = await userToken({ org: "scope-4" });
    const parent = await createEnvironment(admin, "linked");
    const agent = await TestAgent.ready(parent.environment.id, parent.agentToken);
    const answer = grantSpawn(admin, "linked", { maxChildren: 1 });
    const req = (await agent.next("request")) as { id: string; op: string; params: { token: string } };
    expect(req.op).toBe("token.renew");
    agent.send({ v: 1, kind: "reply", seq: 1, re: req.id, ok: true, result: {} });
    const granted = await answer;
    expect(granted.delivered).toBe(true);
    expect(req.params.token).toBe(granted.agentToken);
    expect((await spawnChild(req.params.token, parent.environment.id, { name: "k", provider: "local" })).status).toBe(201);
    const renewed = (await eventsOf(admin, "linked")).find((e) => e.type === "agent.token_renewed");
    expect(renewed?.data).toEqual({ gen: 1, spawn: true, delivered: true });
    expect(JSON.stringify(await eventsOf(admin, "linked"))).not.toContain(granted.agentToken); // no token in the log
    expect(agent.closed).toBeNull(); // the link stays up: the old token is still this environment's
  });
});

describe("the spawn scope in the create body", () => {
  it("is granted by an admin at creation (token, index, log), refused to an operator, validated, and documented", async () => {
    const admin = await userToken({ org: "scope-5" });
    const res = await call("POST", "/v1/environments", { token: admin, json: { name: "born", provider: "local", spawn: { maxChildren: 1, providers: ["local"] } } });
    expect(res.status).toBe(201);
    const born = (await res.json()) as Created;
    const claim = decodeJwt(born.agentToken).spawn as { grant: string };
    expect(claim).toMatchObject({ maxChildren: 1, maxDepth: 1, providers: ["local"], grant: expect.stringMatching(/^sg_/) });
    expect(await (await call("GET", "/v1/environments/born/spawn", { token: admin })).json()).toEqual({ spawn: { maxChildren: 1, maxDepth: 1, providers: ["local"] } });
    expect((await spawnChild(born.agentToken, born.environment.id, { name: "kid", provider: "local" })).status).toBe(201);
    await expectProblem(await spawnChild(born.agentToken, born.environment.id, { name: "kid-2", provider: "local" }), 409, "children_limit");
    expect((await eventsOf(admin, "born")).find((e) => e.type === "spawn.granted")?.data).toEqual({ maxChildren: 1, maxDepth: 1 });

    const operator = await userToken({ org: "scope-5", role: "operator" });
    const refused = await expectProblem(await call("POST", "/v1/environments", { token: operator, json: { name: "nope", provider: "local", spawn: {} } }), 403, "forbidden");
    expect(refused.detail).toMatch(/admin/);
    expect((await call("POST", "/v1/environments", { token: operator, json: { name: "plain", provider: "local" } })).status).toBe(201);
    await expectProblem(await call("POST", "/v1/environments", { token: admin, json: { name: "bad", provider: "local", spawn: { maxChildren: 0 } } }), 400);

    const doc = (await (await call("GET", "/v1/openapi.json")).json()) as { paths: Record<string, any> };
    const body = doc.paths["/v1/environments"].post.requestBody.content["application/json"].schema;
    expect(JSON.stringify(body)).toContain("maxChildren");
  });
});

describe("the spawn scope and an agent that was away", () => {
  it("an agent that connects with a token from before the scope changed is handed the current one", { timeout: 20_000 }, async () => {
    const admin = await userToken({ org: "scope-6" });
    const away = await createEnvironment(admin, "away");
    const granted = await grantSpawn(admin, "away", { maxChildren: 1 }); // no agent connected: not delivered
    expect(granted.delivered).toBe(false);
    const agent = await TestAgent.ready(away.environment.id, away.agentToken); // the token from creation, without the scope
    const req = (await agent.next("request")) as { id: string; op: string; params: { token: string } };
    expect(req.op).toBe("token.renew");
    expect(decodeJwt(req.params.token).spawn).toEqual(decodeJwt(granted.agentToken).spawn);
    agent.send({ v: 1, kind: "reply", seq: 1, re: req.id, ok: true, result: {} });
    await eventually(async () => (await eventsOf(admin, "away")).some((e) => e.type === "agent.token_renewed" && e.data.on === "connect" && e.data.delivered === true));
    expect((await spawnChild(req.params.token, away.environment.id, { name: "k", provider: "local" })).status).toBe(201);
    agent.ws.close(1000);
    // An agent whose token carries the current grant is not sent another.
    const current = await TestAgent.ready(away.environment.id, req.params.token);
    const withdrawn = grantSpawn(admin, "away", null); // the next token.renew it gets is this change's, not one on connect
    let next = (await current.next("request")) as { id: string; params: { token: string } };
    if (next.id === req.id) next = (await current.next("request")) as typeof next; // the link replays what the first agent never acked
    current.send({ v: 1, kind: "reply", seq: 1, re: next.id, ok: true, result: {} });
    expect(next.params.token).toBe((await withdrawn).agentToken);
    expect((await eventsOf(admin, "away")).filter((e) => e.type === "agent.token_renewed" && e.data.on === "connect")).toHaveLength(1);
  });

  it("PUT …/spawn is one call to the environment's object", async () => {
    const admin = await userToken({ org: "scope-7" });
    await createEnvironment(admin, "one");
    const rpcs = async () => ((await (await call("GET", "/v1/environments/one/metrics", { token: admin })).json()) as { entries: Record<string, number> }).entries.rpc ?? 0;
    const a = await rpcs();
    const b = await rpcs(); // what reading the metrics itself costs
    await grantSpawn(admin, "one", { maxChildren: 2 });
    const c = await rpcs();
    expect(c - b - (b - a)).toBe(1);
  });
});
