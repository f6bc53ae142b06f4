/**
 * The control plane goes away and comes back (same port, same persisted state): the agent keeps
 * retrying on its own, reconnects, and the environment's record is intact.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectAgent } from "./environments.js";
import { startHarness, unlessExited, waitFor, type Harness } from "./helpers.js";

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

describe("a control plane restart", () => {
  it("is survived: the agent reconnects by itself and the environment is running again", async () => {
    const created = await h.admin.createEnvironment({ name: "survivor", provider: "local", config: { purpose: "reconnect" } });
    const id = created.environment.id;
    const { workspace } = await h.workspace();
    const { agent, environment: before } = await connectAgent(h, id, created.agentToken, workspace);
    await h.admin.writeFile(id, "kept.txt", "still here\n");
    type Page = { events: Array<{ seq: number; type: string; data: Record<string, unknown> }> };
    const eventsBefore = ((await (await h.admin.request("GET", `/v1/environments/${id}/events?limit=1000`)).json()) as Page).events;
    expect(eventsBefore.map((e) => e.type)).toContain("file.write");

    await h.cp.stop();
    // The agent notices and keeps trying; it does not give up or exit.
    await waitFor(() => /disconnected|reconnecting/.test(agent.output()), { timeoutMs: 15_000, what: "the agent to notice the lost link", failIf: unlessExited(agent) });
    expect(agent.exit).toBeNull();

    await h.restart();
    const after = await h.admin.waitForEnvironment(
      id,
      (e) => e.state === "running" && e.connected && !!e.agent && e.agent.connectedAt > (before.agent?.connectedAt ?? ""),
      { timeoutMs: 40_000, failIf: unlessExited(agent) },
    );
    expect(after).toMatchObject({ id, name: "survivor", provider: "local", createdAt: before.createdAt });
    expect(agent.exit).toBeNull(); // the same process, reconnected

    // The record came back from the persisted state: the full record, the org's index, the name.
    const full = await h.admin.request("GET", `/v1/environments/survivor`);
    expect(((await full.json()) as { environment: { config: unknown } }).environment.config).toEqual({ purpose: "reconnect" });
    const list = (await (await h.admin.request("GET", "/v1/environments")).json()) as { environments: Array<{ id: string; state: string }> };
    expect(list.environments).toEqual([expect.objectContaining({ id, state: "running" })]);

    // No event was lost: the log after the restart begins with exactly the log before it, and
    // goes on with the reconnect (seqs still increasing, no gap, no duplicate).
    const eventsAfter = ((await (await h.admin.request("GET", `/v1/environments/${id}/events?limit=1000`)).json()) as Page).events;
    expect(eventsAfter.slice(0, eventsBefore.length)).toEqual(eventsBefore);
    const seqs = eventsAfter.map((e) => e.seq);
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(eventsAfter.slice(eventsBefore.length).map((e) => e.type)).toContain("agent.connected");

    // And it serves requests again.
    expect((await h.admin.exec(id, { command: ["cat", "kept.txt"] })).stdout).toBe("still here\n");
  });

  it("an agent handed a renewed token dials with it: its reconnect is not sent the token again", async () => {
    const created = await h.admin.createEnvironment({ name: "renewed", provider: "local" });
    const id = created.environment.id;
    const { workspace } = await h.workspace();
    const { agent, environment: before } = await connectAgent(h, id, created.agentToken, workspace);
    const granted = await h.admin.request("PUT", `/v1/environments/${id}/spawn`, { json: { spawn: { maxChildren: 1 } } });
    expect(((await granted.json()) as { delivered: boolean }).delivered).toBe(true);

    await h.cp.stop();
    await waitFor(() => /disconnected|reconnecting/.test(agent.output()), { timeoutMs: 15_000, what: "the agent to notice the lost link", failIf: unlessExited(agent) });
    await h.restart();
    await h.admin.waitForEnvironment(id, (e) => e.state === "running" && e.connected && !!e.agent && e.agent.connectedAt > (before.agent?.connectedAt ?? ""), { timeoutMs: 40_000, failIf: unlessExited(agent) });
    // A round trip after the hello: a token.renew sent on connect went out (and was answered) before it.
    expect((await h.admin.exec(id, { command: ["true"] })).exitCode).toBe(0);
    // Connected with the token carrying the current grant: nothing to renew (before: sent again on every connect).
    const events = ((await (await h.admin.request("GET", `/v1/environments/${id}/events?limit=1000`)).json()) as { events: Array<{ type: string; data: Record<string, unknown> }> }).events;
    expect(events.filter((e) => e.type === "agent.connected")).toHaveLength(2);
    expect(events.filter((e) => e.type === "agent.token_renewed").map((e) => e.data.on ?? "change")).toEqual(["change"]);
  });
});
