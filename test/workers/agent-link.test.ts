import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { CLOSE } from "@outpost/protocol";
import { call, createEnvironment, eventually, expectProblem, stateOf, TestAgent, userToken } from "./helpers.js";
import type { EnvironmentObject } from "../../durable-objects/environment.js";

async function indexedState(org: string, id: string): Promise<string | undefined> {
  const row = await env.DB.prepare("SELECT state FROM environments WHERE org = ? AND id = ?").bind(org, id).first<{ state: string }>();
  return row?.state;
}

/** Answers each request the way a real agent would, from a table of canned behaviours per op. */
function serve(agent: TestAgent, handle: (req: Record<string, unknown>) => void): { stop: () => void } {
  let running = true;
  void (async () => {
    while (running) {
      const req = await agent.next("request", 10_000).catch(() => null);
      if (!req) return;
      handle(req);
    }
  })();
  return { stop: () => void (running = false) };
}

describe("the agent link", () => {
  it("hello → welcome → running; exec round trip; close → disconnected (record and index)", async () => {
    const token = await userToken({ org: "org-link" });
    const { environment, agentToken } = await createEnvironment(token, "link");
    const agent = await TestAgent.connect(environment.id, agentToken);
    agent.hello();
    const welcome = await agent.next("welcome");
    expect(welcome).toMatchObject({ kind: "welcome", environmentId: environment.id, protocol: "1.0" });
    expect(await eventually(async () => (await stateOf(token, environment.id)) === "running")).toBe(true);
    expect(await indexedState("org-link", environment.id)).toBe("running");

    const server = serve(agent, (req) => {
      expect(req.op).toBe("exec");
      agent.send({ v: 1, kind: "reply", re: req.id, ok: true, result: { exitCode: 0, signal: null, stdout: "hi\n", stderr: "", durationMs: 3 } });
    });
    const res = await call("POST", `/v1/environments/${environment.id}/exec`, { token, json: { command: ["echo", "hi"] } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ exitCode: 0, stdout: "hi\n", stderr: "" });
    server.stop();

    const got = (await (await call("GET", `/v1/environments/${environment.id}`, { token })).json()) as { environment: { connected: boolean; agent: { hostname: string } } };
    expect(got.environment.connected).toBe(true);
    expect(got.environment.agent.hostname).toBe("test-host");

    agent.ws.close(1000, "bye");
    expect(await eventually(async () => (await stateOf(token, environment.id)) === "disconnected")).toBe(true);
    expect(await indexedState("org-link", environment.id)).toBe("disconnected");
    await expectProblem(await call("POST", `/v1/environments/${environment.id}/exec`, { token, json: { command: ["id"] } }), 409, "agent_not_connected");
  });

  it("heartbeat ping is answered by auto-response, which the object can read without a write", async () => {
    const token = await userToken({ org: "org-ping" });
    const { environment, agentToken } = await createEnvironment(token, "ping");
    const agent = await TestAgent.ready(environment.id, agentToken);
    agent.ws.send("ping");
    await eventually(async () => agent.texts.includes("pong"));
    const stub = env.ENVIRONMENTS.get(env.ENVIRONMENTS.idFromName(`org-ping/${environment.id}`));
    const stamp = await runInDurableObject(stub, (_obj: EnvironmentObject, ctx) => {
      const [ws] = ctx.getWebSockets("agent");
      return ctx.getWebSocketAutoResponseTimestamp(ws!)?.getTime() ?? null;
    });
    expect(stamp).not.toBeNull();
    agent.ws.close(1000);
  });

  it("maps agent errors and timeouts to HTTP: error code → status; no answer → timeout", async () => {
    const token = await userToken({ org: "org-errors" });
    const { environment, agentToken } = await createEnvironment(token, "errors");
    const agent = await TestAgent.ready(environment.id, agentToken);
    const server = serve(agent, (req) => {
      if (req.op === "file.read") agent.send({ v: 1, kind: "reply", re: req.id, ok: false, error: { code: "not_found", message: "no such file: a.txt" } });
      // exec: never answered
    });
    const nf = await expectProblem(await call("GET", `/v1/environments/${environment.id}/files?path=a.txt`, { token }), 404, "not_found");
    expect(nf.detail).toContain("a.txt");
    // A command timeout of 1 ms plus the edge's grace: the agent never answers, so the edge gives up.
    const stub = env.ENVIRONMENTS.get(env.ENVIRONMENTS.idFromName(`org-errors/${environment.id}`));
    const out = await runInDurableObject(stub, (obj: EnvironmentObject) => {
      obj.timing.execGraceMs = 20;
      return obj.exec({ command: ["sleep", "100"], timeoutMs: 1 });
    });
    expect(out.ok).toBe(false);
    expect(!out.ok && out.error.code).toBe("timeout");
    const cancel = await agent.next("cancel");
    expect(cancel.re).toBeTypeOf("string");
    server.stop();
    agent.ws.close(1000);
  });

  it("streams a file read in chunks and a file write in chunks", async () => {
    const token = await userToken({ org: "org-files" });
    const { environment, agentToken } = await createEnvironment(token, "files");
    const agent = await TestAgent.ready(environment.id, agentToken);
    const written: string[] = [];
    const server = serve(agent, (req) => {
      if (req.op === "file.read") {
        // Sequenced like a real agent's frames, so the edge keeps them in order whatever the load.
        agent.send({ v: 1, kind: "chunk", seq: 1, re: req.id, n: 0, data: btoa("hello ") });
        agent.send({ v: 1, kind: "chunk", seq: 2, re: req.id, n: 1, data: btoa("world") });
        agent.send({ v: 1, kind: "reply", seq: 3, re: req.id, ok: true, result: { size: 11 } });
      }
      if (req.op === "file.write") {
        void (async () => {
          for (;;) {
            const chunk = await agent.next("chunk");
            written.push(atob(chunk.data as string));
            if (chunk.last) break;
          }
          agent.send({ v: 1, kind: "reply", re: req.id, ok: true, result: { size: written.join("").length } });
        })();
      }
    });
    const read = await call("GET", `/v1/environments/${environment.id}/files?path=dir/a.txt`, { token });
    expect(read.status).toBe(200);
    expect(await read.text()).toBe("hello world");
    const put = await call("PUT", `/v1/environments/${environment.id}/files?path=b.txt`, { token, body: "some bytes" });
    expect(put.status).toBe(200);
    expect(await put.json()).toEqual({ size: 10 });
    expect(written.join("")).toBe("some bytes");
    server.stop();
    agent.ws.close(1000);
  });

  it("refuses a hello with another major protocol version with close code 4004", async () => {
    const token = await userToken({ org: "org-version" });
    const { environment, agentToken } = await createEnvironment(token, "version");
    const agent = await TestAgent.connect(environment.id, agentToken);
    agent.hello("2.0");
    expect((await agent.waitClosed()).code).toBe(CLOSE.versionMismatch);
    expect(await stateOf(token, environment.id)).toBe("created");
  });

  it("answers garbage with an error frame and keeps the link", async () => {
    const token = await userToken({ org: "org-garbage" });
    const { environment, agentToken } = await createEnvironment(token, "garbage");
    const agent = await TestAgent.connect(environment.id, agentToken);
    agent.send("{not json");
    expect(((await agent.next("error")).error as { code: string }).code).toBe("bad_request");
    agent.send({ v: 1, kind: "reply", re: "x", ok: true, result: 1 }); // before hello
    expect(((await agent.next("error")).error as { message: string }).message).toContain("hello");
    agent.hello();
    await agent.next("welcome");
    agent.ws.close(1000);
  });

  it("a newer agent connection replaces the older one (4002)", async () => {
    const token = await userToken({ org: "org-replace" });
    const { environment, agentToken } = await createEnvironment(token, "replace");
    const first = await TestAgent.ready(environment.id, agentToken);
    const second = await TestAgent.ready(environment.id, agentToken);
    expect((await first.waitClosed()).code).toBe(CLOSE.replaced);
    expect(await stateOf(token, environment.id)).toBe("running");
    second.ws.close(1000);
  });
});

describe("agent tokens", () => {
  it("are bound to one environment, refused on other routes, and revoked by rotation", async () => {
    const token = await userToken({ org: "org-agent-tokens" });
    const a = await createEnvironment(token, "a");
    const b = await createEnvironment(token, "b");
    // A's token on B's connect route → 403, before B's object is touched.
    const cross = await call("GET", `/v1/environments/${b.environment.id}/connect`, { token: a.agentToken, headers: { upgrade: "websocket" } });
    await expectProblem(cross, 403, "forbidden");
    // A user token on the connect route → 403.
    await expectProblem(await call("GET", `/v1/environments/${a.environment.id}/connect`, { token, headers: { upgrade: "websocket" } }), 403, "forbidden");
    await expectProblem(await call("GET", `/v1/environments/${a.environment.id}/connect`, { headers: { upgrade: "websocket" } }), 401);

    const agent = await TestAgent.ready(a.environment.id, a.agentToken);
    const rotated = await call("POST", `/v1/environments/${a.environment.id}/agent-token`, { token });
    expect(rotated.status).toBe(201);
    const { agentToken: fresh, generation } = (await rotated.json()) as { agentToken: string; generation: number };
    expect(generation).toBe(2);
    expect((await agent.waitClosed()).code).toBe(CLOSE.unauthorized);
    const old = await call("GET", `/v1/environments/${a.environment.id}/connect`, { token: a.agentToken, headers: { upgrade: "websocket" } });
    expect(old.status).toBe(401);
    const again = await TestAgent.ready(a.environment.id, fresh);
    again.ws.close(1000);
  });
});
