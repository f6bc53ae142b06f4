/**
 * The `cloudflare-containers` provider against a local fake of its companion Worker's contract
 * (PUT / GET / DELETE /containers/{name}, bearer token), never Cloudflare itself: what it sends,
 * that the agent's token travels only in the PUT body, refusals as structured errors, a failed
 * create undone, and the recover and teardown flows.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import type { ServerResponse } from "node:http";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { HostedProvider } from "../../provider-agent/src/host/hosted.js";
import { builtinManifestText, parseManifest } from "../../provider-agent/src/host/manifest.js";
import { HostError } from "../../provider-agent/src/host/provider.js";
import { CloudflareContainersProvider, containerName } from "../../provider-agent/src/host/providers/cloudflare-containers.js";
import { FakeService, hostedCloud, json, recordingLogger, type Call } from "./cloud-fake.js";
import { agentToken, ENV_ID, tempDir } from "./helpers.js";

const COMPANION_TOKEN = "companion-secret-0123456789";
const token = agentToken();
const NAME = containerName(ENV_ID);

let base: { dir: string; cleanup: () => Promise<void> };
let fake: FakeService;
let log: ReturnType<typeof recordingLogger>;
let provider: HostedProvider;
/** The fake companion's instances: name → state and the env it was last started with. */
let instances: Map<string, { state: "running" | "stopped"; env: Record<string, string> }>;

beforeEach(async () => {
  base = await tempDir("outpost-cfc-");
  fake = await FakeService.start();
  log = recordingLogger();
  provider = hostedCloud("cloudflare-containers", CloudflareContainersProvider, base.dir, log);
  instances = new Map();
  const authorized = (call: Call, res: ServerResponse) => {
    if (call.headers.authorization === `Bearer ${COMPANION_TOKEN}`) return true;
    json(res, 401, { error: "missing or wrong bearer token" });
    return false;
  };
  const nameOf = (call: Call) => call.path.split("/")[2]!;
  fake
    .on("PUT /containers/:name", (call, res) => {
      if (!authorized(call, res)) return;
      const env = (call.json as { env: Record<string, string> }).env;
      const existing = instances.get(nameOf(call));
      const started = existing?.state !== "running";
      instances.set(nameOf(call), { state: "running", env: started ? env : existing!.env });
      json(res, 200, { name: nameOf(call), state: "running", started });
    })
    .on("GET /containers/:name", (call, res) => {
      if (!authorized(call, res)) return;
      const instance = instances.get(nameOf(call));
      if (!instance) return json(res, 404, { error: `no container ${nameOf(call)}` });
      json(res, 200, { name: nameOf(call), state: instance.state });
    })
    .on("DELETE /containers/:name", (call, res) => {
      if (!authorized(call, res)) return;
      if (!instances.delete(nameOf(call))) return json(res, 404, { error: `no container ${nameOf(call)}` });
      res.writeHead(204).end();
    });
});
afterEach(async () => {
  await fake.close();
  await base.cleanup();
});

const config = (extra: Record<string, unknown> = {}) => ({ companionUrl: fake.url, companionToken: COMPANION_TOKEN, ...extra });
const request = (extra: Record<string, unknown> = {}) => ({ environmentId: ENV_ID, config: config(extra), url: "https://outpost.example.com", agentToken: token });
const signal = () => AbortSignal.timeout(10_000);
const ref = { environmentId: ENV_ID, resourceId: NAME, notes: {} };

function expectNoSecretLeak(): void {
  for (const call of fake.calls) expect(call.url).not.toContain(token);
  for (const line of log.lines) {
    expect(line).not.toContain(token);
    expect(line).not.toContain(COMPANION_TOKEN);
  }
}

describe("cloudflare-containers provider (fake companion Worker)", () => {
  it("starts one container per environment with the agent's settings as environment variables", async () => {
    expect(NAME).toMatch(/^outpost-env-[a-z0-9]{20}$/);
    expect(await provider.create(request({ workspace: "/work" }), signal())).toEqual({ resourceId: NAME, notes: {} });
    expect(fake.calls.map((c) => `${c.method} ${c.path}`)).toEqual([`PUT /containers/${NAME}`]);
    const put = fake.calls[0]!;
    expect(put.headers.authorization).toBe(`Bearer ${COMPANION_TOKEN}`);
    expect(put.json).toEqual({
      env: {
        OUTPOST_URL: "https://outpost.example.com",
        OUTPOST_AGENT_TOKEN: token,
        OUTPOST_WORKSPACE: "/work",
        OUTPOST_STATE_FILE: "/outpost-state/agent.json",
        OUTPOST_RESOURCE_ID: NAME,
      },
    });
    expect(await provider.health(ref, signal())).toMatchObject({ state: "running" });
    expectNoSecretLeak();
  });

  it("turns the companion's refusals into host errors and deletes a container whose start failed", async () => {
    const unauthorized = (await provider.create(request({ companionToken: "wrong" }), signal()).catch((e: unknown) => e)) as HostError;
    expect(unauthorized).toBeInstanceOf(HostError);
    expect(unauthorized.code).toBe("unauthorized");
    expect(unauthorized.details).toMatchObject({ service: "cloudflare-containers", status: 401, method: "PUT" });
    expect(existsSync(provider.runtimeDir(ENV_ID))).toBe(false);

    const mark = fake.calls.length;
    fake.on("PUT /containers/:name", (call, res) => {
      instances.set(call.path.split("/")[2]!, { state: "stopped", env: {} });
      json(res, 500, { error: `there is no container instance that can be provided (${token})` });
    });
    const failed = (await provider.create(request(), signal()).catch((e: unknown) => e)) as HostError;
    expect(failed.code).toBe("internal");
    expect(failed.message).toContain("there is no container instance");
    expect(failed.message).not.toContain(token);
    expect(fake.calls.slice(mark).map((c) => c.method)).toEqual(["PUT", "DELETE"]);
    expect(instances.size).toBe(0);

    for (const bad of [{ companionUrl: "ftp://x" }, { companionToken: "" }]) {
      const refused = (await provider.create(request(bad), signal()).catch((e: unknown) => e)) as HostError;
      expect(refused.code).toBe("bad_request");
    }
    expectNoSecretLeak();
  });

  it("recovers: a running container is left alone, a stopped one is started again with the token, a gone one is reported", async () => {
    await provider.create(request(), signal());
    expect(await provider.recover(request(), ref, signal())).toEqual({ resourceId: NAME, recovered: true, notes: {} });
    expect(instances.get(NAME)?.state).toBe("running");

    instances.set(NAME, { state: "stopped", env: {} });
    expect(await provider.health(ref, signal())).toMatchObject({ state: "stopped" });
    const mark = fake.calls.length;
    expect(await provider.recover(request(), ref, signal())).toMatchObject({ recovered: true });
    expect(fake.calls.slice(mark).map((c) => `${c.method} ${c.path}`)).toEqual([`GET /containers/${NAME}`, `PUT /containers/${NAME}`]);
    expect(instances.get(NAME)).toMatchObject({ state: "running", env: { OUTPOST_AGENT_TOKEN: token } });

    instances.clear();
    expect(await provider.recover(request(), ref, signal())).toMatchObject({ resourceId: NAME, recovered: false });
    expect(await provider.health(ref, signal())).toEqual({ state: "gone" });
    expectNoSecretLeak();
  });

  it("tears the container down with DELETE and forgets the companion's credentials", async () => {
    await provider.create(request(), signal());
    expect(existsSync(path.join(provider.runtimeDir(ENV_ID), "service.json"))).toBe(true);
    expect(await provider.teardown(ref, signal())).toBe(true);
    expect(instances.size).toBe(0);
    expect(existsSync(provider.runtimeDir(ENV_ID))).toBe(false);
    await provider.recover(request(), ref, signal());
    expect(await provider.teardown(ref, signal())).toBe(false);
  });

  it("has a valid cloud manifest: companionUrl required, companionToken required and secret", () => {
    const parsed = parseManifest(builtinManifestText("cloudflare-containers"), "cloudflare-containers");
    expect(parsed.ok && parsed.manifest).toMatchObject({ id: "cloudflare-containers", entrypoint: "builtin:cloudflare-containers", category: "cloud" });
    expect(parsed.ok && parsed.manifest.config).toMatchObject({ companionUrl: { required: true }, companionToken: { required: true, secret: true } });
  });
});
