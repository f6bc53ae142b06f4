/**
 * A local fake of the Cloudflare Containers companion Worker's contract
 * (provider-agent/providers/cloudflare-containers/companion/src/index.ts) for the conformance kit,
 * that really runs things. A container instance is a FakeMachine built from the companion's image
 * (companion/Dockerfile: the agent bundle at /outpost/cli.js, /workspace and /outpost-state, WORKDIR
 * /workspace, CMD node /outpost/cli.js); its CMD runs on this machine with the PUT's environment
 * variables. As on Cloudflare, an instance's disk does not outlive it: starting a stopped one
 * starts from the image again.
 *
 * Under the fake's URL, `Authorization: Bearer <token>` on every call, errors `{ error }`:
 *   PUT /containers/{name} { env } → { name, state: "running", started } (started only when it was not running)
 *   GET /containers/{name} → { name, state: "running" | "stopped" }; 404 when never created or destroyed
 *   DELETE /containers/{name} → 204; 404 when there was nothing
 */
import { randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync } from "node:fs";
import type { ServerResponse } from "node:http";
import { join } from "node:path";
import { CONTAINER_NAME, CONTAINER_NAME_RULE, containerEnv } from "../../../provider-agent/providers/cloudflare-containers/companion/src/contract.js";
import { AGENT_BUNDLE } from "../agent-process.js";
import { FakeMachine } from "./machine.js";
import { FakeService, json, type Call } from "./service.js";
import { bearer, type CloudFake, type CloudFakeOptions } from "./cloud-fake.js";


type Instance = { name: string; machine: FakeMachine | null; starts: number };

export async function startFakeCloudflareContainers(o: CloudFakeOptions): Promise<CloudFake> {
  const token = randomBytes(24).toString("base64url");
  const bundle = o.agentBundle ?? AGENT_BUNDLE;
  const instances = new Map<string, Instance>();
  const destroyed: FakeMachine[] = [];
  const service = await FakeService.start();
  mkdirSync(o.dir, { recursive: true });

  const problem = (res: ServerResponse, status: number, error: string) => json(res, status, { error });
  const running = (i: Instance) => i.machine !== null && i.machine.running().length > 0;
  /** A fresh instance from the image: its disk is the image's, nothing of an earlier run. */
  const boot = async (i: Instance, env: Record<string, string>) => {
    if (i.machine) {
      destroyed.push(i.machine);
      await i.machine.destroy();
    }
    i.starts += 1;
    const machine = new FakeMachine(join(o.dir, `${i.name}-${i.starts}`), ["/home", "/workspace", "/outpost-state", "/outpost"], "/home/node");
    for (const dir of ["/workspace", "/outpost-state", "/outpost"]) mkdirSync(machine.path(dir), { recursive: true });
    copyFileSync(bundle, machine.path("/outpost/cli.js"));
    machine.start("node", ["/outpost/cli.js"], { cwd: "/workspace", env, tag: "cmd" });
    i.machine = machine;
  };
  const route = (call: Call, res: ServerResponse): string | null => {
    if (bearer(call.headers.authorization) !== token) {
      problem(res, 401, "missing or wrong bearer token");
      return null;
    }
    const name = call.params.name ?? "";
    if (!CONTAINER_NAME.test(name)) {
      problem(res, 400, CONTAINER_NAME_RULE);
      return null;
    }
    return name;
  };

  service
    .on("PUT /containers/:name", async (call, res) => {
      const name = route(call, res);
      if (name === null) return;
      // The companion's own check (contract.ts), on the body's bytes.
      const vars = containerEnv(call.body);
      if (typeof vars === "string") return problem(res, 400, vars);
      const i = instances.get(name) ?? { name, machine: null, starts: 0 };
      instances.set(name, i);
      if (running(i)) return json(res, 200, { name, state: "running", started: false });
      await boot(i, vars);
      json(res, 200, { name, state: "running", started: true });
    })
    .on("GET /containers/:name", (call, res) => {
      const name = route(call, res);
      if (name === null) return;
      const i = instances.get(name);
      if (!i) return problem(res, 404, `no container ${name}`);
      json(res, 200, { name, state: running(i) ? "running" : "stopped" });
    })
    .on("DELETE /containers/:name", async (call, res) => {
      const name = route(call, res);
      if (name === null) return;
      const i = instances.get(name);
      if (!i) return problem(res, 404, `no container ${name}`);
      instances.delete(name);
      if (i.machine) {
        destroyed.push(i.machine);
        await i.machine.destroy();
      }
      res.writeHead(204).end();
    });
  for (const method of ["POST", "PATCH"]) service.on(`${method} /containers/:name`, (call, res) => (route(call, res) === null ? undefined : problem(res, 405, "use PUT, GET or DELETE")));

  return {
    provider: "cloudflare-containers",
    service,
    config: { companionUrl: service.url, companionToken: token },
    leftovers: () => [...[...instances.keys()].map((name) => `container ${name} (GET /containers/${name} finds it)`), ...destroyed.flatMap((m) => m.leftovers())],
    async close() {
      for (const i of [...instances.values()]) {
        instances.delete(i.name);
        await i.machine?.destroy();
      }
      await service.close();
    },
  };
}
