/**
 * The sandbox (bubblewrap) provider end to end: a real `outpost-agent host --providers sandbox`
 * registers with the real control plane, the environment is placed on it, its agent runs inside
 * bwrap and serves exec and files, the workspace is the only host path it can write, and stop and
 * archive leave no process and no directory behind. Needs bwrap that can create namespaces (CI has it).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../../scripts/lib/dev-vars.js";
import { startProviderHost, type ProviderHost } from "../../scripts/lib/provider-host.js";
import { processesMentioning, startHarness, waitFor, type Harness } from "./helpers.js";
import { bwrapUnavailable, skipReason } from "./requirements.js";

type Env = { id: string; state: string; host: string | null; provider: string; resourceId: string | null; connected: boolean };

describe.skipIf(skipReason("the sandbox provider's end-to-end test", bwrapUnavailable()))("sandbox provider, end to end", () => {
  let h: Harness;
  let host: ProviderHost | undefined;
  beforeAll(async () => {
    h = await startHarness();
    host = await startProviderHost({ admin: h.admin, name: "sandbox-box", dir: join(h.dir, "hosts", "sandbox-box"), args: ["--providers", "sandbox"] });
  });
  afterAll(async () => {
    await host?.stop();
    await h?.close();
  });
  const getEnv = async (id: string) => ((await (await h.admin.request("GET", `/v1/environments/${id}`)).json()) as { environment: Env }).environment;

  it("runs the agent in bubblewrap: exec, files, diff; the workspace is the only writable mount; stop and archive leave nothing", async () => {
    const res = await h.admin.request("POST", "/v1/environments", { json: { name: "jailed", requires: { capabilities: ["sandbox"] } } });
    expect(res.status, await res.clone().text()).toBe(201);
    const { environment } = (await res.json()) as { environment: Env };
    expect(environment).toMatchObject({ host: "sandbox-box", provider: "sandbox" });
    const dir = environment.resourceId!;
    expect(dir).toBe(join(host!.root, environment.id));
    await waitFor(async () => (await getEnv(environment.id)).state === "running", { timeoutMs: 30_000, what: "the sandboxed agent to connect" });

    const sh = async (line: string) => h.admin.exec(environment.id, { command: ["sh", "-c", line] });
    expect((await sh("pwd")).stdout.trim()).toBe(dir);
    // Its own pid namespace: the sandbox's processes are few, the host's are invisible.
    expect(Number((await sh("ls /proc | grep -c '^[0-9]'")).stdout.trim())).toBeLessThan(10);

    await h.admin.writeFile(environment.id, "from-api.txt", "through the control plane\n");
    expect(readFileSync(join(dir, "from-api.txt"), "utf8")).toBe("through the control plane\n");
    expect((await sh("echo from inside > inside.txt && cat from-api.txt")).stdout).toBe("through the control plane\n");
    expect(readFileSync(join(dir, "inside.txt"), "utf8")).toBe("from inside\n");

    // Outside the workspace nothing on the host is writable: the checkout, HOME (read-only binds) …
    const probe = `outpost-sandbox-probe-${environment.id}`;
    for (const target of [join(ROOT, probe), join(process.env.HOME ?? "/root", probe)]) {
      const write = await sh(`echo x > '${target}'`);
      expect(write.exitCode, `writing ${target} from the sandbox`).not.toBe(0);
      expect(write.stderr).toMatch(/Read-only file system|Permission denied/);
      expect(existsSync(target)).toBe(false);
    }
    // … and /tmp is private: writable inside, never seen on the host (the host root here lies under /tmp too).
    for (const target of [join("/tmp", probe), join(host!.root, probe)]) {
      expect((await sh(`mkdir -p "$(dirname '${target}')" && echo x > '${target}' && cat '${target}'`)).stdout).toBe("x\n");
      expect(existsSync(target), target).toBe(false);
    }

    const diff = (await (await h.admin.request("GET", `/v1/environments/${environment.id}/diff`)).json()) as { files: Array<{ path: string; status: string }> };
    expect(diff.files.map((f) => `${f.status} ${f.path}`).sort()).toEqual(["added from-api.txt", "added inside.txt"]);

    const stopped = (await (await h.admin.request("POST", `/v1/environments/${environment.id}/stop`, { timeoutMs: 40_000 })).json()) as { environment: Env };
    expect(stopped.environment.state).toBe("stopped");
    await waitFor(() => processesMentioning(dir).length === 0, { timeoutMs: 15_000, what: "the sandbox's processes to end after stop" });

    expect((await h.admin.request("DELETE", `/v1/environments/${environment.id}`)).status).toBe(200);
    await waitFor(() => !existsSync(dir), { timeoutMs: 20_000, what: "the host to remove the sandbox's directory" });
    expect(processesMentioning(dir)).toEqual([]);
    expect(existsSync(join(host!.dir, "state", "outpost-agent", "host-sandbox-box", environment.id))).toBe(false);
  });
});
