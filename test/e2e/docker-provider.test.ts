/**
 * The docker provider end to end: a real `outpost-agent host --providers docker` registers with the
 * real control plane, creates a container from the local base image (scripts/docker-base-image.sh)
 * whose agent dials back over the host network, serves exec and files in /workspace (a directory on
 * the host), reports its diff, stops (the container exits with its agent), and archiving removes the
 * container and the directory. Needs a Docker daemon and the base image (CI has both); without them,
 * or with OUTPOST_DOCKER=off, it skips and says why.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startProviderHost, type ProviderHost } from "../../scripts/lib/provider-host.js";
import { startHarness, waitFor, type Harness } from "./helpers.js";
import { dockerUnavailable, skipReason } from "./requirements.js";

const docker = (...args: string[]) => execFileSync("docker", args, { encoding: "utf8", timeout: 30_000 }).trim();

type Env = { id: string; state: string; host: string | null; provider: string; resourceId: string | null; connected: boolean };

describe.skipIf(skipReason("the docker provider's end-to-end test", dockerUnavailable()))("docker provider, end to end", () => {
  let h: Harness;
  let host: ProviderHost | undefined;
  const created: string[] = [];

  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await host?.stop();
    // Whatever a failed test left running.
    for (const id of created) {
      const left = docker("ps", "-aq", "--filter", `label=outpost.environment=${id}`);
      for (const c of left.split("\n").filter(Boolean)) docker("rm", "-f", "-v", c);
    }
    await h?.close();
  });

  const getEnv = async (id: string) => ((await (await h.admin.request("GET", `/v1/environments/${id}`)).json()) as { environment: Env }).environment;

  it("creates a container whose agent serves /workspace, reports its diff, stops, and archiving removes it", async () => {
    const dir = join(h.dir, "hosts", "docker-box");
    host = await startProviderHost({ admin: h.admin, name: "docker-box", dir, args: ["--providers", "docker"] });

    const res = await h.admin.request("POST", "/v1/environments", { json: { name: "boxed", provider: "docker" } });
    expect(res.status, await res.clone().text()).toBe(201);
    const { environment } = (await res.json()) as { environment: Env };
    created.push(environment.id);
    expect(environment).toMatchObject({ host: "docker-box", provider: "docker" });
    await waitFor(async () => (await getEnv(environment.id)).state === "running", { timeoutMs: 30_000, what: "the container's agent to connect" });
    const container = `outpost-${environment.id}`;
    expect((await getEnv(environment.id)).resourceId).toBe(container);
    expect(docker("inspect", "-f", "{{.State.Running}} {{.HostConfig.NetworkMode}}", container)).toBe("true host");

    expect((await h.admin.exec(environment.id, { command: ["pwd"] })).stdout.trim()).toBe("/workspace");
    await h.admin.writeFile(environment.id, "note.txt", "from the control plane\n");
    const workspace = join(dir, "environments", environment.id);
    expect(readFileSync(join(workspace, "note.txt"), "utf8")).toBe("from the control plane\n");
    expect((await h.admin.exec(environment.id, { command: ["cat", "note.txt"] })).stdout).toBe("from the control plane\n");
    expect((await h.admin.exec(environment.id, { command: ["sh", "-c", "echo made inside > inside.txt"] })).exitCode).toBe(0);

    const diff = (await (await h.admin.request("GET", `/v1/environments/${environment.id}/diff`)).json()) as { base: string; files: Array<{ path: string; status: string; diff?: string }> };
    expect(diff.base).toBe("snapshot");
    expect(diff.files.map((f) => `${f.status} ${f.path}`).sort()).toEqual(["added inside.txt", "added note.txt"]);
    expect(diff.files.find((f) => f.path === "inside.txt")?.diff).toContain("+made inside");

    const stopped = (await (await h.admin.request("POST", `/v1/environments/${environment.id}/stop`, { timeoutMs: 40_000 })).json()) as { environment: Env };
    expect(stopped.environment.state).toBe("stopped");
    // The agent is the container's main process: it exited, so the container stopped (and is kept until archived).
    await waitFor(() => docker("inspect", "-f", "{{.State.Running}}", container) === "false", { timeoutMs: 20_000, what: "the container to stop with its agent" });

    expect((await h.admin.request("DELETE", `/v1/environments/${environment.id}`)).status).toBe(200);
    await waitFor(() => docker("ps", "-aq", "--filter", `label=outpost.environment=${environment.id}`) === "" && !existsSync(workspace), {
      timeoutMs: 30_000,
      what: "the container and its workspace to be removed",
    });
  });
});
