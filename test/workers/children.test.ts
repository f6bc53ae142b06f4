/** Hierarchical environments in workerd: spawn scope, limits, the tree, and the cascade. */
import { describe, expect, it } from "vitest";
import { call, createEnvironment, eventsOf, eventually, expectProblem, stateOf, TestAgent, userToken } from "./helpers.js";
import { grantSpawn, spawnChild, type Created } from "./hierarchy-helpers.js";

const eventTypes = async (token: string, env: string) => (await eventsOf(token, env)).map((e) => e.type);

describe("hierarchical environments", () => {
  it("a parent without the scope may not spawn (403); with it, its agent spawns children within the limits", async () => {
    const token = await userToken({ org: "tree-1" });
    const parent = await createEnvironment(token, "parent");
    const refused = await expectProblem(await spawnChild(parent.agentToken, parent.environment.id, { name: "kid", provider: "local" }), 403, "forbidden");
    expect(refused.detail).toMatch(/no spawn scope/);
    const operator = await userToken({ org: "tree-1", role: "operator" });
    await expectProblem(await call("PUT", `/v1/environments/parent/spawn`, { token: operator, json: { spawn: { maxChildren: 2 } } }), 403, "forbidden");
    const granted = await call("PUT", `/v1/environments/parent/spawn`, { token, json: { spawn: { maxChildren: 2, maxDepth: 2, providers: ["local"] } } });
    const answer = (await granted.json()) as { spawn: unknown; agentToken: string; delivered: boolean };
    expect(answer).toEqual({ spawn: { maxChildren: 2, maxDepth: 2, providers: ["local"] }, agentToken: expect.any(String), delivered: false });
    parent.agentToken = answer.agentToken;

    const one = await spawnChild(parent.agentToken, parent.environment.id, { name: "kid-1", provider: "local", spawn: { maxChildren: 1, maxDepth: 1 } });
    expect(one.status).toBe(201);
    const kid1 = (await one.json()) as Created;
    expect(kid1.agentToken).toEqual(expect.any(String));
    await expectProblem(await spawnChild(parent.agentToken, parent.environment.id, { name: "kid-x", provider: "docker" }), 403, "forbidden");
    const two = (await (await spawnChild(token, "parent", { name: "kid-2", provider: "local", keep: true })).json()) as Created;
    const full = await expectProblem(await spawnChild(parent.agentToken, parent.environment.id, { name: "kid-3", provider: "local" }), 409, "children_limit");
    expect(full.detail).toMatch(/maxChildren 2/);
    // kid-1 may spawn one of its own; that grandchild may not be granted any further depth.
    const grand = (await (await spawnChild(kid1.agentToken, kid1.environment.id, { name: "grandkid", provider: "local" })).json()) as Created;
    await expectProblem(await spawnChild(kid1.agentToken, kid1.environment.id, { name: "grandkid-2", provider: "local" }), 409, "children_limit");
    await expectProblem(await spawnChild(grand.agentToken, grand.environment.id, { name: "too-deep", provider: "local" }), 403, "forbidden");
    // An agent token spawns only from its own environment.
    await expectProblem(await spawnChild(kid1.agentToken, parent.environment.id, { name: "kid-9", provider: "local" }), 403, "forbidden");

    const tree = (await (await call("GET", `/v1/environments/parent/children`, { token })).json()) as { tree: { name: string; children: Array<{ name: string; keep: boolean; children: Array<{ name: string }> }> } };
    expect(tree.tree.name).toBe("parent");
    expect(tree.tree.children.map((c) => [c.name, c.keep, c.children.map((g) => g.name)]).sort()).toEqual([["kid-1", false, ["grandkid"]], ["kid-2", true, []]]);
    expect(await eventTypes(token, "parent")).toEqual(expect.arrayContaining(["spawn.granted", "child.spawned"]));
    expect(await eventTypes(token, "kid-1")).toEqual(expect.arrayContaining(["environment.spawned_by", "child.spawned"]));
    // The child names its parent; the root has none.
    const kid1Record = ((await (await call("GET", `/v1/environments/kid-1`, { token })).json()) as { environment: { parent: unknown } }).environment;
    expect(kid1Record.parent).toEqual({ id: parent.environment.id, name: "parent" });
    const grandRecord = ((await (await call("GET", `/v1/environments/grandkid`, { token })).json()) as { environment: { parent: unknown } }).environment;
    expect(grandRecord.parent).toEqual({ id: kid1.environment.id, name: "kid-1" });
    expect(((await (await call("GET", `/v1/environments/parent`, { token })).json()) as { environment: { parent: unknown } }).environment.parent).toBeNull();

    // Archiving the parent archives its children and theirs, but keeps a child spawned with keep.
    expect((await call("DELETE", `/v1/environments/parent`, { token })).status).toBe(200);
    expect(await stateOf(token, kid1.environment.id)).toBe("archived");
    expect(await stateOf(token, grand.environment.id)).toBe("archived");
    expect(await stateOf(token, two.environment.id)).toBe("created");
    expect(await eventTypes(token, kid1.environment.id)).toContain("parent.archived");
    expect(await eventTypes(token, grand.environment.id)).toContain("parent.archived");
    expect(await eventTypes(token, parent.environment.id)).toContain("child.archived");
    expect(await eventTypes(token, kid1.environment.id)).toContain("child.archived"); // kid-1's own child went first
    expect(await eventTypes(token, two.environment.id)).not.toContain("parent.archived");
  });

  it("a parent closes its own child, and only its own", async () => {
    const token = await userToken({ org: "tree-2" });
    const parent = await createEnvironment(token, "p");
    const other = await createEnvironment(token, "other");
    parent.agentToken = (await grantSpawn(token, "p", {})).agentToken;
    const kid = (await (await spawnChild(parent.agentToken, parent.environment.id, { name: "k", provider: "local" })).json()) as Created;
    await expectProblem(await call("DELETE", `/v1/environments/${parent.environment.id}/children/other`, { token: parent.agentToken }), 404, "not_found");
    const closed = await call("DELETE", `/v1/environments/${parent.environment.id}/children/k`, { token: parent.agentToken });
    expect(closed.status).toBe(200);
    expect(await stateOf(token, kid.environment.id)).toBe("archived");
    expect(await eventTypes(token, "p")).toContain("child.closed");
    expect(await eventTypes(token, kid.environment.id)).toEqual(expect.arrayContaining(["environment.spawned_by", "parent.closed"]));
    void other;
  });

  it("closing a child takes the parent's agent with its current grant, or an admin", async () => {
    const admin = await userToken({ org: "tree-4" });
    const parent = await createEnvironment(admin, "p");
    const granted = (await grantSpawn(admin, "p", { maxChildren: 4 })).agentToken;
    for (const name of ["k1", "k2", "k3"]) expect((await spawnChild(granted, parent.environment.id, { name, provider: "local" })).status).toBe(201);
    const close = (token: string, child: string) => call("DELETE", `/v1/environments/${parent.environment.id}/children/${child}`, { token });
    // The token issued at creation carries no spawn scope: it may not close what the environment spawned.
    expect((await expectProblem(await close(parent.agentToken, "k1"), 403, "forbidden")).detail).toMatch(/no spawn scope/);
    const operator = await userToken({ org: "tree-4", role: "operator" });
    expect((await expectProblem(await close(operator, "k1"), 403, "forbidden")).detail).toMatch(/admin/);
    expect((await close(granted, "k1")).status).toBe(200);
    // A replaced grant: the old token may no longer close; the new one may.
    const regranted = (await grantSpawn(admin, "p", { maxChildren: 3 })).agentToken;
    expect((await expectProblem(await close(granted, "k2"), 403, "forbidden")).detail).toMatch(/withdrawn or replaced/);
    expect((await close(regranted, "k2")).status).toBe(200);
    // Withdrawn: the agent may not close its last child; an admin always may.
    const withdrawn = (await grantSpawn(admin, "p", null)).agentToken;
    await expectProblem(await close(regranted, "k3"), 403, "forbidden");
    await expectProblem(await close(withdrawn, "k3"), 403, "forbidden");
    const last = await close(admin, "k3");
    expect(last.status).toBe(200);
    expect(((await last.json()) as Created).environment.state).toBe("archived");
  });

  it("stopping a running parent stops its running children", async () => {
    const token = await userToken({ org: "tree-3" });
    const lifecycle = { stopTimeoutMs: 50 };
    const parent = (await (await call("POST", "/v1/environments", { token, json: { name: "p", provider: "local", lifecycle } })).json()) as Created;
    parent.agentToken = (await grantSpawn(token, "p", {})).agentToken;
    const kid = (await (await spawnChild(parent.agentToken, parent.environment.id, { name: "k", provider: "local", lifecycle })).json()) as Created;
    for (const e of [parent, kid]) {
      const agent = await TestAgent.ready(e.environment.id, e.agentToken);
      await eventually(async () => (await stateOf(token, e.environment.id)) === "running");
    }
    expect((await call("POST", `/v1/environments/p/stop`, { token })).status).toBe(200);
    expect(await stateOf(token, kid.environment.id)).toBe("stopped");
    expect(await eventTypes(token, "k")).toContain("parent.stopped");
  });
});
