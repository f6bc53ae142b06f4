/**
 * deploy/agent/Dockerfile, built and run for real: the image (on the local base image, nothing
 * pulled) starts the provider-agent as uid 1000 from its environment variables alone, the agent
 * dials the real control plane over the host network, serves its workspace, and exits 0 on
 * `docker stop`. Needs a Docker daemon and the base image (CI has both); otherwise it says why it skips.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../../scripts/lib/dev-vars.js";
import { startHarness, type Harness } from "./helpers.js";
import { DOCKER_IMAGE, dockerUnavailable, skipReason } from "./requirements.js";

const docker = (args: string[], timeout = 30_000) => execFileSync("docker", args, { cwd: ROOT, encoding: "utf8", timeout, stdio: ["ignore", "pipe", "pipe"] }).trim();
const suffix = randomBytes(4).toString("hex");
const TAG = `outpost-agent-example:e2e-${suffix}`;
const CONTAINER = `outpost-agent-example-${suffix}`;

describe.skipIf(skipReason("the agent image test", dockerUnavailable()))("deploy/agent/Dockerfile", () => {
  let h: Harness;
  let secrets = "";

  beforeAll(async () => {
    docker(["build", "-q", "-f", "deploy/agent/Dockerfile", "--build-arg", `BASE=${DOCKER_IMAGE}`, "-t", TAG, "provider-agent"], 120_000);
    h = await startHarness();
  }, 180_000);
  afterAll(async () => {
    try {
      docker(["rm", "-f", CONTAINER]);
    } catch {
      // never started
    }
    try {
      docker(["rmi", "-f", TAG]);
    } catch {
      // never built
    }
    if (secrets) rmSync(secrets, { recursive: true, force: true });
    await h?.close();
  });

  it("runs the agent from OUTPOST_URL and OUTPOST_AGENT_TOKEN, as uid 1000 in /home/outpost/workspace", async () => {
    const { environment, agentToken } = await h.admin.createEnvironment({ name: "in-docker", provider: "local" });
    // The token goes in an env file, not on docker's command line.
    secrets = mkdtempSync(join(tmpdir(), "outpost-agent-image-"));
    const envFile = join(secrets, "agent.env");
    writeFileSync(envFile, `OUTPOST_URL=${h.cp.url}\nOUTPOST_AGENT_TOKEN=${agentToken}\n`, { mode: 0o600 });
    docker(["run", "-d", "--name", CONTAINER, "--network", "host", "--env-file", envFile, TAG]);

    const running = await h.admin.waitForEnvironment(environment.id, (e) => e.state === "running" && e.connected, {
      timeoutMs: 30_000,
      failIf: () => (docker(["inspect", "-f", "{{.State.Running}}", CONTAINER]) === "false" ? `the container exited:\n${docker(["logs", CONTAINER])}` : null),
    });
    expect(running.agent?.capabilities).toEqual(expect.arrayContaining(["exec", "files"]));

    const who = await h.admin.exec(environment.id, { command: ["node", "-e", "process.stdout.write(`${process.getuid()} ${process.cwd()} ${process.env.HOME}`)"] });
    expect(who).toMatchObject({ exitCode: 0, stdout: "1000 /home/outpost/workspace /home/outpost" });
    expect(await h.admin.writeFile(environment.id, "from-the-api.txt", "written through the edge\n")).toEqual({ size: 25 });
    expect((await h.admin.exec(environment.id, { command: ["cat", "from-the-api.txt"] })).stdout).toBe("written through the edge\n");
    // The state file (and the forward endpoint's file beside it) live beside the workspace, not in it.
    expect((await h.admin.exec(environment.id, { command: ["ls", "-A", "/home/outpost/state"] })).stdout).toBe("agent.json\nagent.json.endpoint.json\nagent.json.groups.json\n");
  });

  it("exits 0 on docker stop, and the environment records the clean disconnect", async () => {
    docker(["stop", "-t", "15", CONTAINER], 30_000);
    expect(docker(["inspect", "-f", "{{.State.ExitCode}}", CONTAINER])).toBe("0");
    await h.admin.waitForEnvironment("in-docker", (e) => e.state === "disconnected" && !e.connected, { timeoutMs: 15_000 });
  });
});
