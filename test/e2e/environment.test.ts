/**
 * The main path, end to end: an environment created over HTTP, a real agent process serving it
 * over a real WebSocket, exec and files relayed through the Worker and the Durable Object.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentProcess } from "../../scripts/lib/agent-process.js";
import { filesPath } from "../../scripts/lib/api.js";
import { connectAgent } from "./environments.js";
import { expectProblem, startHarness, type Harness } from "./helpers.js";

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

describe("an environment served by a real provider-agent", () => {
  const name = "basic";
  let id = "";
  let workspace = "";
  let agent: AgentProcess;

  it("is created over HTTP, and becomes running when its agent connects", async () => {
    const created = await h.admin.createEnvironment({ name, provider: "local" });
    id = created.environment.id;
    expect(created.environment).toMatchObject({ name, provider: "local", state: "created", connected: false });
    expect(await h.admin.getEnvironment(name)).toMatchObject({ id, state: "created" });

    ({ workspace } = await h.workspace());
    const connected = await connectAgent(h, id, created.agentToken, workspace);
    agent = connected.agent;
    const running = connected.environment;
    expect(running.agent?.capabilities).toEqual(expect.arrayContaining(["exec", "files"]));
    expect(existsSync(workspace)).toBe(true); // the agent creates its workspace
  });

  it("refuses a second environment with the same name (409)", async () => {
    await expectProblem(await h.admin.request("POST", "/v1/environments", { json: { name, provider: "local" } }), 409, "conflict");
  });

  it("exec: echo hello answers stdout 'hello\\n' and exit code 0", async () => {
    const r = await h.admin.exec(name, { command: ["echo", "hello"] });
    expect(r).toMatchObject({ exitCode: 0, stdout: "hello\n", stderr: "" });
    expect(r.durationMs).toBeGreaterThanOrEqual(0);
  });

  it("exec: a failing command's exit code and stderr pass through", async () => {
    const r = await h.admin.exec(id, { command: ["sh", "-c", "echo oops >&2; exit 7"] });
    expect(r).toMatchObject({ exitCode: 7, stdout: "", stderr: "oops\n" });
  });

  it("exec: a command that outlives its timeoutMs is killed and answered 504", async () => {
    const res = await h.admin.request("POST", `/v1/environments/${id}/exec`, { json: { command: ["sleep", "30"], timeoutMs: 300 } });
    const p = await expectProblem(res, 504, "timeout");
    expect(p.detail).toContain("300 ms");
  });

  it("exec: a command that does not exist is an error, not a crash", async () => {
    const res = await h.admin.request("POST", `/v1/environments/${id}/exec`, { json: { command: ["no-such-command-outpost-e2e"] } });
    await expectProblem(res, (s) => s >= 400 && s < 500);
    expect((await h.admin.exec(id, { command: ["true"] })).exitCode).toBe(0); // the agent is still fine
  });

  it("exec: cwd (relative to the workspace) and env are honoured", async () => {
    expect((await h.admin.exec(id, { command: ["mkdir", "-p", "sub/dir"] })).exitCode).toBe(0);
    const r = await h.admin.exec(id, { command: ["sh", "-c", 'pwd; printf "%s\\n" "$GREETING"'], cwd: "sub/dir", env: { GREETING: "hi there" } });
    expect(r).toMatchObject({ exitCode: 0, stdout: `${join(realpathSync(workspace), "sub", "dir")}\nhi there\n` });
  });

  it("files: a text file written with PUT reads back with GET and is on disk", async () => {
    expect(await h.admin.writeFile(id, "notes/hello.txt", "hello, file\n")).toEqual({ size: 12 });
    expect((await h.admin.readFile(id, "notes/hello.txt")).toString("utf8")).toBe("hello, file\n");
    expect(readFileSync(join(workspace, "notes", "hello.txt"), "utf8")).toBe("hello, file\n");
    // …and exec sees the same workspace
    expect((await h.admin.exec(id, { command: ["cat", "notes/hello.txt"] })).stdout).toBe("hello, file\n");
  });

  it("files: a 3 MB binary file round-trips byte for byte (sha256), on disk too", async () => {
    const data = randomBytes(3 * 1024 * 1024);
    expect(await h.admin.writeFile(id, "blobs/random.bin", data)).toEqual({ size: data.length });
    const back = await h.admin.readFile(id, "blobs/random.bin");
    expect(back.length).toBe(data.length);
    expect(sha256(back)).toBe(sha256(data));
    expect(sha256(readFileSync(join(workspace, "blobs", "random.bin")))).toBe(sha256(data));
  });

  it("files: an empty file round-trips", async () => {
    expect(await h.admin.writeFile(id, "empty", "")).toEqual({ size: 0 });
    expect((await h.admin.readFile(id, "empty")).length).toBe(0);
  });

  it("files: DELETE removes the file; GET then answers 404", async () => {
    expect(await h.admin.deleteFile(id, "blobs/random.bin")).toEqual({ deleted: true });
    expect(existsSync(join(workspace, "blobs", "random.bin"))).toBe(false);
    await expectProblem(await h.admin.request("GET", filesPath(id, "blobs/random.bin")), 404, "not_found");
  });

  it("PUT without Content-Length is refused (411)", async () => {
    // A streamed body makes fetch send chunked transfer encoding: no Content-Length.
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode("x"));
        c.close();
      },
    });
    const res = await fetch(`${h.cp.url}${filesPath(id, "chunked.txt")}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${h.admin.token}` },
      body,
      duplex: "half",
    } as RequestInit);
    await expectProblem(res, 411);
    expect(existsSync(join(workspace, "chunked.txt"))).toBe(false);
  });

  it("a viewer may read but not exec or write", async () => {
    const viewer = await h.client("viewer");
    expect((await viewer.readFile(id, "notes/hello.txt")).toString("utf8")).toBe("hello, file\n");
    await expectProblem(await viewer.request("POST", `/v1/environments/${id}/exec`, { json: { command: ["true"] } }), 403, "forbidden");
    await expectProblem(await viewer.request("PUT", filesPath(id, "x.txt"), { body: "x" }), 403, "forbidden");
  });

  it("another org cannot see it (404)", async () => {
    const stranger = await h.client("admin", "other-org");
    await expectProblem(await stranger.request("GET", `/v1/environments/${id}`), 404);
    await expectProblem(await stranger.request("POST", `/v1/environments/${id}/exec`, { json: { command: ["true"] } }), 404);
  });

  it("when the agent is killed (SIGKILL) the environment leaves running, and exec answers 409", async () => {
    agent.signal("SIGKILL");
    await agent.exited;
    const after = await h.admin.waitForEnvironment(id, (e) => e.state !== "running", { timeoutMs: 15_000 });
    expect(after).toMatchObject({ state: "disconnected", connected: false });
    await expectProblem(await h.admin.request("POST", `/v1/environments/${id}/exec`, { json: { command: ["echo", "hello"] } }), 409, "agent_not_connected");
    await expectProblem(await h.admin.request("GET", filesPath(id, "notes/hello.txt")), 409, "agent_not_connected");
  });
});
