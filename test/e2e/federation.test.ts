/**
 * Federation: two control planes on two ports. Deployment one has environment `a` and `r`, whose
 * provider is `remote`: it stands for environment `x` of deployment two, reached over HTTP with a
 * token deployment two issued. Work forwarded from `a` to `r` runs in `x`, by a real agent.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pidAlive } from "../../scripts/lib/processes.js";
import { readUntilPid, SLEEPER } from "./chaining-helpers.js";
import { startEnvironment } from "./environments.js";
import { expectProblem, startHarness, waitFor, type Harness } from "./helpers.js";

let one: Harness;
let two: Harness;
let xWorkspace = "";
let remoteToken = "";

beforeAll(async () => {
  [one, two] = await Promise.all([startHarness(), startHarness()]);
  xWorkspace = (await startEnvironment(two, "x")).workspace;
  await startEnvironment(one, "a");
  remoteToken = (await two.client("operator")).token;
  const r = await one.admin.request("POST", "/v1/environments", { json: { name: "r", provider: "remote", config: { url: two.cp.url, token: remoteToken, environment: "x" } } });
  expect(r.status, await r.clone().text()).toBe(201);
  expect((await one.admin.request("PUT", "/v1/environments/r/gateway", { json: { accept: true, allowFrom: ["a"] } })).status).toBe(200);
}, 180_000);
afterAll(async () => {
  await Promise.all([one?.close(), two?.close()]);
});

const forward = (body: unknown, ndjson = false) =>
  one.admin.request("POST", "/v1/environments/a/forward", { json: body, headers: ndjson ? { accept: "application/x-ndjson" } : {}, timeoutMs: 60_000 });

describe("federation across two control planes", () => {
  it("keeps the other deployment's token secret", async () => {
    const env = (await (await one.admin.request("GET", "/v1/environments/r")).json()) as { environment: { config: Record<string, unknown> } };
    expect(env.environment.config).toEqual({ url: two.cp.url, token: "[redacted]", environment: "x" });
    await expectProblem(await one.admin.request("POST", "/v1/environments", { json: { name: "bad", provider: "remote", config: { url: "ftp://x", token: "t" } } }), 400, "bad_request");
  });

  it("work forwarded to the remote environment runs in the other deployment, output streamed back", async () => {
    const res = await forward({ exec: { command: ["sh", "-c", "echo one; pwd -P; echo two >&2"] }, target: "r" });
    const text = await res.text();
    expect(res.status, text).toBe(200);
    expect(JSON.parse(text)).toMatchObject({ exitCode: 0, stdout: `one\n${xWorkspace}\n`, stderr: "two\n", route: ["a", "r", "x"] });
    const events = (await (await two.admin.request("GET", "/v1/environments/x/events")).json()) as { events: Array<{ type: string; data: Record<string, unknown> }> };
    expect(events.events.find((e) => e.type === "forward.started")).toBeTruthy();
  });

  it("cancel at the origin reaches the process in the other deployment", async () => {
    const run = await readUntilPid(await forward({ exec: { command: SLEEPER }, target: "r" }, true));
    expect((await one.admin.request("POST", `/v1/environments/a/forward/${run.forwardId}/cancel`)).status).toBe(200);
    await waitFor(() => !pidAlive(run.pid), { timeoutMs: 15_000, what: `process ${run.pid} in the other deployment to end` });
    await run.reader.cancel();
  });

  it("a refusal in the other deployment names the hop", async () => {
    await one.admin.request("POST", "/v1/environments", { json: { name: "r2", provider: "remote", config: { url: two.cp.url, token: remoteToken, environment: "nope" } } });
    await one.admin.request("PUT", "/v1/environments/r2/gateway", { json: { accept: true, allowFrom: ["*"] } });
    const p = await expectProblem(await forward({ exec: { command: ["true"] }, target: "r2" }), 404, "not_found");
    expect(p.detail).toMatch(/^Hop 'r2': the remote deployment 127\.0\.0\.1:\d+ answered 404: No environment named 'nope'/);
  });
});
