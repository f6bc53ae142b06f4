/**
 * The stateful cloud fakes the conformance kit runs e2b, daytona and cloudflare-containers against
 * (scripts/lib/fakes/): that they refuse what the services refuse, really run what they are asked
 * to in a directory of their own, and report what is left, so "teardown leaves nothing" can fail.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { containerEnv, MAX_BODY_BYTES } from "../../provider-agent/providers/cloudflare-containers/companion/src/contract.js";
import { startCloudFake, type CloudFake } from "../../scripts/lib/fakes/index.js";
import { FakeMachine } from "../../scripts/lib/fakes/machine.js";
import { pidAlive } from "../../scripts/lib/processes.js";
import { tempDir, waitFor } from "./helpers.js";

let base: { dir: string; cleanup: () => Promise<void> };
let fake: CloudFake | undefined;
beforeEach(async () => {
  base = await tempDir("outpost-fakes-");
});
afterEach(async () => {
  await fake?.close();
  fake = undefined;
  await base.cleanup();
});

const STAY = "require('fs').writeFileSync(process.argv[2] ?? 'ran', String(process.pid)); setInterval(() => {}, 1000)";
function envelope(message: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(message));
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

describe("FakeMachine", () => {
  it("maps its private directories under its root and leaves every other path alone", () => {
    const m = new FakeMachine(join(base.dir, "m"), ["/home", "/workspace"], "/home/user");
    expect(m.path("/home/user/x")).toBe(join(base.dir, "m", "home/user/x"));
    expect(m.path("/workspace")).toBe(join(base.dir, "m", "workspace"));
    expect(m.path("/homework")).toBe("/homework");
    expect(m.path("/usr/bin/node")).toBe("/usr/bin/node");
    expect(m.word("http://127.0.0.1/home/x")).toBe("http://127.0.0.1/home/x");
    const root = join(base.dir, "m");
    expect(m.shell(`cd '/home/user/w' && X="$(cat '/home/user/t')" && node /home/user/a.js --dir=/workspace /homework /usr/home`)).toBe(
      `cd '${root}/home/user/w' && X="$(cat '${root}/home/user/t')" && node ${root}/home/user/a.js --dir=${root}/workspace /homework /usr/home`,
    );
  });
});

describe("the e2b fake", () => {
  it("runs a started process in the sandbox's directory, lists it by tag, and leaves nothing after DELETE", async () => {
    fake = await startCloudFake("e2b", { dir: base.dir });
    const api = String(fake.config.apiUrl);
    const key = { "x-api-key": String(fake.config.apiKey), "content-type": "application/json" };
    expect((await fetch(`${api}/sandboxes`, { method: "POST", headers: { ...key, "x-api-key": "e2b_wrong" }, body: JSON.stringify({ templateID: "base" }) })).status).toBe(401);
    expect((await fetch(`${api}/sandboxes`, { method: "POST", headers: key, body: JSON.stringify({ templateID: "nope" }) })).status).toBe(404);
    const created = (await (await fetch(`${api}/sandboxes`, { method: "POST", headers: key, body: JSON.stringify({ templateID: "base", timeout: 60, secure: true }) })).json()) as { sandboxID: string; envdAccessToken: string };
    const envd = `${api}/envd/${created.sandboxID}`;
    const user = { authorization: `Basic ${Buffer.from("user:").toString("base64")}` };
    expect((await fetch(`${envd}/process.Process/List`, { method: "POST", headers: { ...user, "content-type": "application/json" }, body: "{}" })).status).toBe(401);
    const auth = { ...user, "x-access-token": created.envdAccessToken };

    // The file API writes only inside the sandbox: a path that climbs out of its folders is refused, and nothing lands on this machine.
    const escape = `/home/../tmp/outpost-fake-escape-${process.pid}`;
    expect((await fetch(`${envd}/files?path=${encodeURIComponent(escape)}&username=user`, { method: "POST", headers: { ...auth, "content-type": "application/octet-stream" }, body: "x" })).status).toBe(400);
    expect(existsSync(`/tmp/outpost-fake-escape-${process.pid}`)).toBe(false);
    const upload = await fetch(`${envd}/files?path=/home/user/app/stay.js&username=user`, { method: "POST", headers: { ...auth, "content-type": "application/octet-stream" }, body: STAY });
    expect(upload.status).toBe(200);
    const start = await fetch(`${envd}/process.Process/Start`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/connect+json" },
      body: envelope({ process: { cmd: "node", args: ["/home/user/app/stay.js", "/home/user/app/pid"], envs: {}, cwd: "/home/user/app" }, tag: "t1" }),
    });
    const first = Buffer.from((await start.body!.getReader().read()).value!);
    const pid = (JSON.parse(first.subarray(5).toString()) as { event: { start: { pid: number } } }).event.start.pid;
    const pidFile = join(base.dir, created.sandboxID, "home/user/app/pid");
    await waitFor(() => existsSync(pidFile));
    expect(Number(readFileSync(pidFile, "utf8"))).toBe(pid);
    const list = (await (await fetch(`${envd}/process.Process/List`, { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: "{}" })).json()) as { processes: Array<{ pid: number; tag: string }> };
    expect(list.processes).toMatchObject([{ pid, tag: "t1" }]);
    expect(fake.leftovers()).toEqual([expect.stringContaining(created.sandboxID)]);

    expect((await fetch(`${api}/sandboxes/${created.sandboxID}`, { method: "DELETE", headers: key })).status).toBe(204);
    expect((await fetch(`${api}/sandboxes/${created.sandboxID}`, { headers: key })).status).toBe(404);
    expect(pidAlive(pid)).toBe(false);
    expect(existsSync(join(base.dir, created.sandboxID))).toBe(false);
    expect(fake.leftovers()).toEqual([]);
  });
});

describe("the daytona fake", () => {
  it("starts a sandbox, runs session commands (async and not), ends them with the session, and leaves nothing after DELETE", async () => {
    fake = await startCloudFake("daytona", { dir: base.dir });
    const api = String(fake.config.apiUrl);
    const headers = { authorization: `Bearer ${String(fake.config.apiKey)}`, "content-type": "application/json" };
    expect((await fetch(`${api}/sandbox`, { method: "POST", headers: { ...headers, authorization: "Bearer wrong" }, body: "{}" })).status).toBe(401);
    const { id, state } = (await (await fetch(`${api}/sandbox`, { method: "POST", headers, body: JSON.stringify({ labels: { a: "b" } }) })).json()) as { id: string; state: string };
    expect(state).toBe("creating");
    const toolbox = `${api}/toolbox/${id}/toolbox`;
    expect((await fetch(`${toolbox}/process/session`, { method: "POST", headers, body: JSON.stringify({ sessionId: "s" }) })).status).toBe(400); // not started yet
    expect(((await (await fetch(`${api}/sandbox/${id}`, { headers })).json()) as { state: string }).state).toBe("creating");
    expect(((await (await fetch(`${api}/sandbox/${id}`, { headers })).json()) as { state: string }).state).toBe("started");

    expect((await fetch(`${toolbox}/process/session`, { method: "POST", headers, body: JSON.stringify({ sessionId: "s" }) })).status).toBe(201);
    expect((await fetch(`${toolbox}/process/session`, { method: "POST", headers, body: JSON.stringify({ sessionId: "s" }) })).status).toBe(409);
    const sync = (await (await fetch(`${toolbox}/process/session/s/exec`, { method: "POST", headers, body: JSON.stringify({ command: "echo hi > '/home/daytona/f' && cat /home/daytona/f; exit 4" }) })).json()) as { output: string; exitCode: number };
    expect(sync).toMatchObject({ output: "hi", exitCode: 4 });
    expect(readFileSync(join(base.dir, id, "home/daytona/f"), "utf8")).toBe("hi\n");
    writeFileSync(join(base.dir, id, "home/daytona/stay.js"), STAY);
    const { cmdId } = (await (await fetch(`${toolbox}/process/session/s/exec`, { method: "POST", headers, body: JSON.stringify({ command: "node '/home/daytona/stay.js' /home/daytona/pid", runAsync: true }) })).json()) as { cmdId: string };
    const session = async () => (await (await fetch(`${toolbox}/process/session/s`, { headers })).json()) as { commands: Array<{ id: string; exitCode: number | null }> };
    await waitFor(() => existsSync(join(base.dir, id, "home/daytona/pid")));
    expect((await session()).commands.find((c) => c.id === cmdId)?.exitCode).toBeNull();
    const pid = Number(readFileSync(join(base.dir, id, "home/daytona/pid"), "utf8"));
    expect((await fetch(`${toolbox}/process/session/s`, { method: "DELETE", headers })).status).toBe(204);
    expect(pidAlive(pid)).toBe(false);
    expect((await fetch(`${toolbox}/process/session/s`, { headers })).status).toBe(404);

    expect(((await (await fetch(`${api}/sandbox?labels=${encodeURIComponent('{"a":"b"}')}`, { headers })).json()) as unknown[]).length).toBe(1);
    expect(fake.leftovers()).toEqual([expect.stringContaining(id)]);
    expect((await fetch(`${api}/sandbox/${id}`, { method: "DELETE", headers })).status).toBe(200);
    expect((await fetch(`${api}/sandbox/${id}`, { headers })).status).toBe(404);
    expect(fake.leftovers()).toEqual([]);
  });
});

describe("the cloudflare-containers fake", () => {
  it("runs the image's command with the PUT's environment, restarts a stopped instance from a fresh disk, and leaves nothing after DELETE", async () => {
    const image = join(base.dir, "image.js");
    // Stands for the agent: records its environment in the workspace, then stays up.
    writeFileSync(image, "const fs = require('fs'); fs.writeFileSync(process.env.OUTPOST_WORKSPACE + '/pid', String(process.pid)); fs.writeFileSync(process.env.OUTPOST_WORKSPACE + '/seen', process.env.OUTPOST_RESOURCE_ID + ' ' + process.cwd()); setInterval(() => {}, 1000)");
    fake = await startCloudFake("cloudflare-containers", { dir: join(base.dir, "fake"), agentBundle: image });
    const url = `${String(fake.config.companionUrl)}/containers/outpost-c1`;
    const headers = { authorization: `Bearer ${String(fake.config.companionToken)}`, "content-type": "application/json" };
    const put = async () => fetch(url, { method: "PUT", headers, body: JSON.stringify({ env: { OUTPOST_WORKSPACE: "/workspace", OUTPOST_RESOURCE_ID: "outpost-c1" } }) });
    expect((await fetch(url, { method: "PUT", headers: { ...headers, authorization: "Bearer nope" }, body: "{}" })).status).toBe(401);
    expect((await fetch(`${String(fake.config.companionUrl)}/containers/Bad_Name`, { headers })).status).toBe(400);
    expect((await fetch(url, { method: "PUT", headers, body: JSON.stringify({ env: { "1x": "y" } }) })).status).toBe(400);
    expect((await fetch(url, { headers })).status).toBe(404);

    expect(await (await put()).json()).toEqual({ name: "outpost-c1", state: "running", started: true });
    const seen = join(base.dir, "fake", "outpost-c1-1", "workspace", "seen");
    await waitFor(() => existsSync(seen));
    expect(readFileSync(seen, "utf8")).toBe(`outpost-c1 ${join(base.dir, "fake", "outpost-c1-1", "workspace")}`);
    expect(await (await put()).json()).toMatchObject({ started: false });

    // The command exits (the agent was stopped): the instance is stopped; a PUT starts a fresh one.
    writeFileSync(join(base.dir, "fake", "outpost-c1-1", "workspace", "mine"), "from the first run");
    process.kill(Number(readFileSync(join(base.dir, "fake", "outpost-c1-1", "workspace", "pid"), "utf8")), "SIGKILL");
    await waitFor(async () => ((await (await fetch(url, { headers })).json()) as { state: string }).state === "stopped");
    expect(await (await put()).json()).toMatchObject({ started: true });
    await waitFor(() => existsSync(join(base.dir, "fake", "outpost-c1-2", "workspace", "seen")));
    expect(existsSync(join(base.dir, "fake", "outpost-c1-2", "workspace", "mine"))).toBe(false);
    expect(existsSync(join(base.dir, "fake", "outpost-c1-1"))).toBe(false);
    expect(fake.leftovers()).toEqual(["container outpost-c1 (GET /containers/outpost-c1 finds it)"]);
    await fetch(url, { method: "DELETE", headers });
    expect(fake.leftovers()).toEqual([]);
    expect((await fetch(url, { method: "DELETE", headers })).status).toBe(404);
  });
});

describe("the cloudflare-containers contract (companion, provider and fake share contract.ts)", () => {
  it("limits the PUT body in bytes, not characters", async () => {
    // 30,000 'é' are 60,000 bytes (in bounds); 40,000 are 40,000 characters but 80,000 bytes (out of bounds).
    const body = (n: number) => JSON.stringify({ env: { OUTPOST_NOTE: "é".repeat(n) } });
    expect(containerEnv(new TextEncoder().encode(body(30_000)))).toMatchObject({ OUTPOST_NOTE: "é".repeat(30_000) });
    expect(body(40_000).length).toBeLessThan(MAX_BODY_BYTES);
    expect(containerEnv(new TextEncoder().encode(body(40_000)))).toBe(`the body is larger than ${MAX_BODY_BYTES} bytes`);
    fake = await startCloudFake("cloudflare-containers", { dir: join(base.dir, "fake"), agentBundle: join(base.dir, "none.js") });
    const headers = { authorization: `Bearer ${String(fake.config.companionToken)}`, "content-type": "application/json" };
    const put = await fetch(`${String(fake.config.companionUrl)}/containers/outpost-c1`, { method: "PUT", headers, body: body(40_000) });
    expect([put.status, await put.json()]).toEqual([400, { error: `the body is larger than ${MAX_BODY_BYTES} bytes` }]);
  });
});
