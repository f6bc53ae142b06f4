/**
 * A local fake of Daytona's REST API (https://www.daytona.io/docs, the OpenAPI of daytonaio/daytona
 * apps/api: sandbox and toolbox controllers) for the conformance kit: the parts the `daytona`
 * provider calls, with Daytona's documented shapes, that really run things. A sandbox is a
 * FakeMachine (a temporary directory, `/home` private to it, user `daytona`); a session's command
 * string runs with `sh -c` on this machine (each command in a shell of its own: unlike Daytona, a
 * session keeps no shell state between commands).
 *
 * Under the fake's URL, `Authorization: Bearer <apiKey>` on every call:
 *   POST /sandbox { snapshot?, labels? } → { id, state: "creating", labels, user, … }; it is "started" once looked at
 *   GET /sandbox → [sandbox]; GET /sandbox/{id} → sandbox, 404 when gone
 *   POST /sandbox/{id}/start, POST /sandbox/{id}/stop (processes end, files kept); DELETE /sandbox/{id} → 200, 404 when gone
 * Toolbox (a started sandbox only):
 *   POST /toolbox/{id}/toolbox/files/upload?path=… (multipart, field `file`); POST /toolbox/{id}/toolbox/files/folder?path=…&mode=…
 *   POST /toolbox/{id}/toolbox/process/session { sessionId } (409 when it exists); DELETE …/process/session/{sessionId} (its commands end)
 *   POST …/process/session/{sessionId}/exec { command, runAsync } → { cmdId } (runAsync) or { cmdId, output, exitCode }
 *   GET …/process/session/{sessionId} → { sessionId, commands: [{ id, command, exitCode }] } (exitCode null while it runs)
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { ServerResponse } from "node:http";
import posix from "node:path/posix";
import type { FakeMachine, MachineProcess } from "./machine.js";
import { json, type Call } from "./service.js";
import { bearer, type CloudFake, type CloudFakeOptions } from "./cloud-fake.js";
import { folderInto, SandboxFleet, uploadInto } from "./sandboxes.js";

type State = "creating" | "started" | "stopped";
type Command = { id: string; command: string; process: MachineProcess };
type Sandbox = { id: string; state: State; looked: boolean; snapshot: string; labels: Record<string, string>; createdAt: string; machine: FakeMachine; sessions: Map<string, Command[]> };

const HOME = "/home/daytona";

export async function startFakeDaytona(o: CloudFakeOptions & { snapshots?: string[] }): Promise<CloudFake> {
  const apiKey = `dtn_${randomBytes(20).toString("hex")}`;
  const snapshots = new Set(o.snapshots ?? ["daytona-default"]);
  const notFound = (res: ServerResponse, what: string) => json(res, 404, { statusCode: 404, message: `${what} not found`, error: "Not Found" });
  const authorized = (call: Call, res: ServerResponse): boolean => {
    if (bearer(call.headers.authorization) === apiKey) return true;
    json(res, 401, { statusCode: 401, message: "Unauthorized" });
    return false;
  };
  const fleet = await SandboxFleet.start<Sandbox>({
    dir: o.dir,
    authorized,
    notFound: (res, id) => notFound(res, `Sandbox with ID or name ${id}`),
    describe: (id) => `daytona sandbox ${id} (GET /sandbox lists it)`,
  });
  const { service } = fleet;
  const sandboxOf = (call: Call, res: ServerResponse) => fleet.lookup(call, res);
  const view = (s: Sandbox) => ({
    id: s.id,
    organizationId: "fake",
    snapshot: s.snapshot,
    user: "daytona",
    env: {},
    labels: s.labels,
    public: false,
    target: "local",
    cpu: 1,
    gpu: 0,
    memory: 1,
    disk: 3,
    state: s.state,
    createdAt: s.createdAt,
  });
  const endSessions = async (s: Sandbox) => {
    await s.machine.killAll();
    s.sessions.clear();
  };

  service
    .on("POST /sandbox", (call, res) => {
      if (!authorized(call, res)) return;
      const body = (call.json ?? {}) as { snapshot?: unknown; labels?: unknown };
      const snapshot = typeof body.snapshot === "string" ? body.snapshot : "daytona-default";
      if (!snapshots.has(snapshot)) return json(res, 400, { statusCode: 400, message: `Snapshot ${snapshot} not found. Did you add it through the Daytona Dashboard?`, error: "Bad Request" });
      const id = randomUUID();
      const s: Sandbox = { id, state: "creating", looked: false, snapshot, labels: (body.labels ?? {}) as Record<string, string>, createdAt: new Date().toISOString(), machine: fleet.machine(id, ["/home"], HOME), sessions: new Map() };
      fleet.add(s);
      json(res, 200, view(s));
    })
    .on("GET /sandbox", (call, res) => {
      if (!authorized(call, res)) return;
      const labels = call.query.get("labels");
      const want = labels ? (JSON.parse(labels) as Record<string, string>) : {};
      json(res, 200, fleet.all().filter((s) => Object.entries(want).every(([k, v]) => s.labels[k] === v)).map(view));
    })
    .on("GET /sandbox/:id", (call, res) => {
      const s = sandboxOf(call, res);
      if (!s) return;
      json(res, 200, view(s));
      // Still on its way at the first look, started after it: a client has to wait for "started".
      if (s.state === "creating") s.state = "started";
    })
    .on("POST /sandbox/:id/start", (call, res) => {
      const s = sandboxOf(call, res);
      if (!s) return;
      if (s.state === "stopped") s.state = "creating";
      json(res, 200, view(s));
    })
    .on("POST /sandbox/:id/stop", async (call, res) => {
      const s = sandboxOf(call, res);
      if (!s) return;
      await endSessions(s);
      s.state = "stopped";
      json(res, 200, view(s));
    })
    .on("DELETE /sandbox/:id", async (call, res) => {
      const s = sandboxOf(call, res);
      if (!s) return;
      await fleet.remove(s);
      json(res, 200, { ...view(s), state: "destroyed" });
    });

  /** The toolbox answers for a started sandbox only. */
  const toolbox = (call: Call, res: ServerResponse): Sandbox | null => {
    const s = sandboxOf(call, res);
    if (s && s.state !== "started") {
      json(res, 400, { statusCode: 400, message: `Sandbox is not started (state ${s.state})`, error: "Bad Request" });
      return null;
    }
    return s;
  };
  const inside = (p: string) => (posix.isAbsolute(p) ? posix.normalize(p) : posix.join(HOME, p));
  const commandView = (c: Command) => ({ id: c.id, command: c.command, exitCode: c.process.group.exit ? (c.process.group.exit.code ?? 137) : null });

  service
    .on("POST /toolbox/:id/toolbox/files/upload", async (call, res) => {
      const s = toolbox(call, res);
      if (!s) return;
      const path = call.query.get("path");
      if (!path) return json(res, 400, { statusCode: 400, message: "path is required" });
      let file: ReturnType<FormData["get"]> = null;
      try {
        const form = await new Request("http://x/", { method: "POST", body: call.body, headers: { "content-type": call.headers["content-type"] ?? "" } }).formData();
        file = form.get("file");
      } catch {
        // not multipart
      }
      if (!file || typeof file === "string") return json(res, 400, { statusCode: 400, message: "expected multipart/form-data with a file field 'file'" });
      if (!uploadInto(s.machine, inside(path), Buffer.from(await file.arrayBuffer()))) return json(res, 400, { statusCode: 400, message: `${path} is outside the sandbox's writable folders` });
      res.writeHead(200).end();
    })
    .on("POST /toolbox/:id/toolbox/files/folder", (call, res) => {
      const s = toolbox(call, res);
      if (!s) return;
      const path = call.query.get("path");
      const mode = call.query.get("mode") ?? "755";
      if (!path || !/^[0-7]{3,4}$/.test(mode)) return json(res, 400, { statusCode: 400, message: "path and an octal mode are required" });
      if (folderInto(s.machine, inside(path), parseInt(mode, 8)) === "outside") return json(res, 400, { statusCode: 400, message: `${path} is outside the sandbox's writable folders` });
      res.writeHead(200).end();
    })
    .on("POST /toolbox/:id/toolbox/process/session", (call, res) => {
      const s = toolbox(call, res);
      if (!s) return;
      const sessionId = (call.json as { sessionId?: unknown } | undefined)?.sessionId;
      if (typeof sessionId !== "string" || sessionId === "") return json(res, 400, { statusCode: 400, message: "sessionId is required" });
      if (s.sessions.has(sessionId)) return json(res, 409, { statusCode: 409, message: `session ${sessionId} already exists` });
      s.sessions.set(sessionId, []);
      res.writeHead(201).end();
    })
    .on("DELETE /toolbox/:id/toolbox/process/session/:session", async (call, res) => {
      const s = toolbox(call, res);
      if (!s) return;
      const commands = s.sessions.get(call.params.session ?? "");
      if (!commands) return notFound(res, `session ${call.params.session}`);
      s.sessions.delete(call.params.session!);
      await Promise.all(commands.map((c) => c.process.group.stop("SIGKILL", 0).catch(() => undefined)));
      res.writeHead(204).end();
    })
    .on("POST /toolbox/:id/toolbox/process/session/:session/exec", async (call, res) => {
      const s = toolbox(call, res);
      if (!s) return;
      const commands = s.sessions.get(call.params.session ?? "");
      if (!commands) return notFound(res, `session ${call.params.session}`);
      const body = call.json as { command?: unknown; runAsync?: unknown; async?: unknown } | undefined;
      if (typeof body?.command !== "string") return json(res, 400, { statusCode: 400, message: "command is required" });
      const c: Command = { id: randomUUID(), command: body.command, process: s.machine.startShell(body.command, { cwd: HOME }) };
      commands.push(c);
      if (body.runAsync === true || body.async === true) return json(res, 200, { cmdId: c.id });
      const exit = await c.process.group.exited;
      json(res, 200, { cmdId: c.id, output: c.process.group.output(), exitCode: exit.code ?? 137 });
    })
    .on("GET /toolbox/:id/toolbox/process/session/:session", (call, res) => {
      const s = toolbox(call, res);
      if (!s) return;
      const commands = s.sessions.get(call.params.session ?? "");
      if (!commands) return notFound(res, `session ${call.params.session}`);
      json(res, 200, { sessionId: call.params.session, commands: commands.map(commandView) });
    });

  return fleet.cloudFake("daytona", { apiKey, apiUrl: service.url });
}
