/**
 * A local fake of E2B (https://e2b.dev/docs/api-reference, and envd's spec in e2b-dev/infra,
 * packages/envd/spec) for the conformance kit: the parts the `e2b` provider calls, with E2B's
 * documented request and response shapes, that really run things. A sandbox is a FakeMachine (a
 * temporary directory, `/home` private to it); envd's Start runs the process given on this machine.
 *
 * Control plane, under the fake's URL, `X-API-Key` on every call:
 *   POST /sandboxes { templateID, timeout, secure?, metadata? } → 201 { sandboxID, templateID, clientID, envdVersion, envdAccessToken?, domain }
 *   GET /sandboxes → [{ sandboxID, templateID, clientID, state, startedAt, endAt, metadata }]
 *   GET /sandboxes/{id} → { …, state: "running" | "paused", envdAccessToken?, domain }; 404 when gone
 *   POST /sandboxes/{id}/pause → 204 (processes stopped, files kept); POST /sandboxes/{id}/connect { timeout } → 201 resumed, 200 running
 *   DELETE /sandboxes/{id} → 204; 404 when gone
 * envd, under `/envd/{sandboxID}` (config sandboxUrl), `X-Access-Token` for a secure sandbox, `Authorization: Basic <user:>`:
 *   POST /files?path=…&username=… (application/octet-stream) → [{ path, name, type: "file" }]
 *   POST /filesystem.Filesystem/MakeDir { path } (Connect unary JSON) → { entry }; 409 already_exists
 *   POST /process.Process/Start (Connect server stream, application/connect+json) { process: { cmd, args, envs, cwd }, tag }
 *     → { event: { start: { pid } } }, …, { event: { end: { exitCode, exited, status } } }, end of stream; the process outlives the stream
 *   POST /process.Process/List {} → { processes: [{ config, pid, tag }] }
 */
import { randomBytes } from "node:crypto";
import type { ServerResponse } from "node:http";
import posix from "node:path/posix";
import type { FakeMachine, MachineProcess } from "./machine.js";
import { json, type Call } from "./service.js";
import { randomId, type CloudFake, type CloudFakeOptions } from "./cloud-fake.js";
import { folderInto, SandboxFleet, uploadInto } from "./sandboxes.js";

type Sandbox = {
  id: string;
  templateID: string;
  state: "running" | "paused";
  envdAccessToken: string | null;
  metadata: Record<string, string>;
  startedAt: string;
  endAt: string;
  machine: FakeMachine;
  configs: Map<MachineProcess, { cmd: string; args: string[]; envs: Record<string, string>; cwd?: string }>;
  timer: NodeJS.Timeout;
};

const USERS = new Set(["user", "root"]);

export async function startFakeE2b(o: CloudFakeOptions & { templates?: string[] }): Promise<CloudFake> {
  const apiKey = `e2b_${randomBytes(20).toString("hex")}`;
  const templates = new Set(o.templates ?? ["base"]);
  const authorized = (call: Call, res: ServerResponse): boolean => {
    if (call.headers["x-api-key"] === apiKey) return true;
    json(res, 401, { code: 401, message: "Invalid API key, it must start with 'e2b_' prefix" });
    return false;
  };
  const fleet = await SandboxFleet.start<Sandbox>({
    dir: o.dir,
    authorized,
    notFound: (res, id) => json(res, 404, { code: 404, message: `sandbox "${id}" doesn't exist or you don't have access to it` }),
    describe: (id) => `e2b sandbox ${id} (GET /sandboxes lists it)`,
    onRemove: (s) => clearTimeout(s.timer),
  });
  const { service } = fleet;
  const sandboxOf = (call: Call, res: ServerResponse) => fleet.lookup(call, res);
  const view = (s: Sandbox) => ({ sandboxID: s.id, templateID: s.templateID, clientID: "fake", state: s.state, startedAt: s.startedAt, endAt: s.endAt, metadata: s.metadata, cpuCount: 2, memoryMB: 512, envdVersion: "0.2.0" });
  const expiry = (s: Sandbox, seconds: number) => {
    clearTimeout(s.timer);
    s.endAt = new Date(Date.now() + seconds * 1000).toISOString();
    // E2B kills a sandbox when its timeout runs out.
    s.timer = setTimeout(() => void fleet.remove(s), Math.min(seconds, 2_000_000) * 1000);
    s.timer.unref();
  };

  service
    .on("POST /sandboxes", (call, res) => {
      if (!authorized(call, res)) return;
      const body = call.json as { templateID?: unknown; timeout?: unknown; secure?: unknown; metadata?: unknown } | undefined;
      if (typeof body?.templateID !== "string") return json(res, 400, { code: 400, message: "templateID is required" });
      if (!templates.has(body.templateID)) return json(res, 404, { code: 404, message: `template '${body.templateID}' not found` });
      const timeout = typeof body.timeout === "number" && body.timeout > 0 ? body.timeout : 15;
      const sandboxID = `i${randomId(19)}`;
      const machine = fleet.machine(sandboxID, ["/home", "/root"], "/home/user");
      const s: Sandbox = {
        id: sandboxID,
        templateID: body.templateID,
        state: "running",
        envdAccessToken: body.secure === true ? randomBytes(24).toString("hex") : null,
        metadata: (body.metadata ?? {}) as Record<string, string>,
        startedAt: new Date().toISOString(),
        endAt: "",
        machine,
        configs: new Map(),
        timer: setTimeout(() => {}, 0),
      };
      fleet.add(s);
      expiry(s, timeout);
      json(res, 201, { sandboxID, templateID: s.templateID, clientID: "fake", envdVersion: "0.2.0", envdAccessToken: s.envdAccessToken, domain: null });
    })
    .on("GET /sandboxes", (call, res) => {
      if (authorized(call, res)) json(res, 200, fleet.all().map(view));
    })
    .on("GET /sandboxes/:id", (call, res) => {
      const s = sandboxOf(call, res);
      if (s) json(res, 200, { ...view(s), envdAccessToken: s.envdAccessToken, domain: null });
    })
    .on("POST /sandboxes/:id/pause", async (call, res) => {
      const s = sandboxOf(call, res);
      if (!s) return;
      if (s.state === "paused") return json(res, 409, { code: 409, message: "sandbox is already paused" });
      // A paused sandbox keeps its files; its processes do not survive a resume here.
      await s.machine.killAll();
      s.state = "paused";
      res.writeHead(204).end();
    })
    .on("POST /sandboxes/:id/connect", (call, res) => {
      const s = sandboxOf(call, res);
      if (!s) return;
      const timeout = (call.json as { timeout?: unknown } | undefined)?.timeout;
      if (typeof timeout === "number" && timeout > 0) expiry(s, timeout);
      const resumed = s.state === "paused";
      s.state = "running";
      json(res, resumed ? 201 : 200, { sandboxID: s.id, templateID: s.templateID, clientID: "fake", envdVersion: "0.2.0", envdAccessToken: s.envdAccessToken, domain: null });
    })
    .on("DELETE /sandboxes/:id", async (call, res) => {
      const s = sandboxOf(call, res);
      if (!s) return;
      await fleet.remove(s);
      res.writeHead(204).end();
    });

  /** envd answers only for a running sandbox, with its access token and a known user. */
  const envd = (call: Call, res: ServerResponse): { s: Sandbox; user: string } | null => {
    const s = fleet.get(call.params.id);
    if (!s || s.state !== "running") {
      json(res, 502, { code: 502, message: "sandbox not found or not running" });
      return null;
    }
    if (s.envdAccessToken && call.headers["x-access-token"] !== s.envdAccessToken) {
      json(res, 401, { code: "unauthenticated", message: "invalid access token" });
      return null;
    }
    const basic = /^Basic (.+)$/.exec(call.headers.authorization ?? "")?.[1];
    const user = basic ? Buffer.from(basic, "base64").toString("utf8").split(":")[0]! : "user";
    if (!USERS.has(user)) {
      json(res, 401, { code: "unauthenticated", message: `invalid user '${user}'` });
      return null;
    }
    return { s, user };
  };
  const inside = (user: string, p: string) => (posix.isAbsolute(p) ? posix.normalize(p) : posix.join(user === "root" ? "/root" : `/home/${user}`, p));

  service
    .on("POST /envd/:id/files", (call, res) => {
      const e = envd(call, res);
      if (!e) return;
      const path = call.query.get("path");
      if (!path) return json(res, 400, { code: 400, message: "path is required" });
      if (!(call.headers["content-type"] ?? "").startsWith("application/octet-stream")) return json(res, 400, { code: 400, message: "expected application/octet-stream" });
      const target = inside(call.query.get("username") ?? e.user, path);
      if (!uploadInto(e.s.machine, target, call.body)) return json(res, 400, { code: 400, message: `${target} is outside the sandbox's writable folders` });
      json(res, 200, [{ path: target, name: posix.basename(target), type: "file" }]);
    })
    .on("POST /envd/:id/filesystem.Filesystem/MakeDir", (call, res) => {
      const e = envd(call, res);
      if (!e) return;
      const path = (call.json as { path?: unknown } | undefined)?.path;
      if (typeof path !== "string" || path === "") return json(res, 400, { code: "invalid_argument", message: "path is required" });
      const target = inside(e.user, path);
      const made = folderInto(e.s.machine, target);
      if (made === "outside") return json(res, 400, { code: "invalid_argument", message: `${target} is outside the sandbox's writable folders` });
      if (made === "exists") return json(res, 409, { code: "already_exists", message: `directory ${target} already exists` });
      json(res, 200, { entry: { name: posix.basename(target), type: "FILE_TYPE_DIRECTORY", path: target } });
    })
    .on("POST /envd/:id/process.Process/List", (call, res) => {
      const e = envd(call, res);
      if (!e) return;
      const processes = e.s.machine.running().map((p) => ({ config: e.s.configs.get(p), pid: p.pid, ...(p.tag ? { tag: p.tag } : {}) }));
      json(res, 200, { processes });
    })
    .on("POST /envd/:id/process.Process/Start", (call, res) => {
      const e = envd(call, res);
      if (!e) return;
      const request = unenvelope(call.body) as { process?: { cmd?: unknown; args?: unknown; envs?: unknown; cwd?: unknown }; tag?: unknown } | null;
      const p = request?.process;
      if (!(call.headers["content-type"] ?? "").startsWith("application/connect+json") || typeof p?.cmd !== "string") {
        return json(res, 400, { code: "invalid_argument", message: "expected one application/connect+json message { process: { cmd, … } }" });
      }
      const config = {
        cmd: p.cmd,
        args: Array.isArray(p.args) ? p.args.map(String) : [],
        envs: (p.envs ?? {}) as Record<string, string>,
        ...(typeof p.cwd === "string" ? { cwd: inside(e.user, p.cwd) } : {}),
      };
      res.writeHead(200, { "content-type": "application/connect+json" });
      let started: MachineProcess;
      try {
        started = e.s.machine.start(config.cmd, config.args, { cwd: config.cwd, env: config.envs, ...(typeof request?.tag === "string" ? { tag: request.tag } : {}) });
      } catch (err) {
        res.end(envelope({ error: { code: "internal", message: err instanceof Error ? err.message : String(err) } }, 2));
        return;
      }
      e.s.configs.set(started, config);
      res.write(envelope({ event: { start: { pid: started.pid } } }));
      service.hold(res);
      // The stream ends when the process does; a client that went away leaves it running.
      void started.group.exited.then((exit) => {
        if (res.writableEnded || res.destroyed) return;
        res.write(envelope({ event: { end: { exitCode: exit.code ?? -1, exited: exit.code !== null, status: exit.signal ? `signal: ${exit.signal}` : `exit status ${exit.code}` } } }));
        res.end(envelope({}, 2));
      });
    });

  return fleet.cloudFake("e2b", { apiKey, apiUrl: service.url, sandboxUrl: `${service.url}/envd/{sandboxId}`, template: "base" });
}

/** One Connect envelope: flags, big-endian length, JSON. */
function envelope(message: unknown, flags = 0): Buffer {
  const body = Buffer.from(JSON.stringify(message), "utf8");
  const head = Buffer.alloc(5);
  head.writeUInt8(flags, 0);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** The first message of a Connect streaming request body, or null. */
function unenvelope(body: Buffer): unknown {
  if (body.length < 5) return null;
  const length = body.readUInt32BE(1);
  if (body.length < 5 + length) return null;
  try {
    return JSON.parse(body.subarray(5, 5 + length).toString("utf8")) as unknown;
  } catch {
    return null;
  }
}
