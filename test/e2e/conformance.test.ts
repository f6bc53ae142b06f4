/**
 * The conformance kit (npm run conformance) over every provider in the repo that can run here, one
 * control plane for all: local, worktree, sandbox (bubblewrap), docker and the worked example under
 * examples/ each pass every step of the contract through real hosts and agents. The cloud providers
 * (e2b, daytona, cloudflare-containers) pass it against local fakes of their services
 * (scripts/lib/fakes/): the fake runs the real agent the provider starts, in a temporary directory
 * standing for the sandbox, and teardown must leave the fake with nothing. They were never run
 * against the live services. Sandbox and docker say why when they skip.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatResults, runConformance, STEPS } from "../../scripts/lib/conformance.js";
import { ROOT } from "../../scripts/lib/dev-vars.js";
import { startCloudFake } from "../../scripts/lib/fakes/index.js";
import { startHarness, type Harness } from "./helpers.js";
import { bwrapUnavailable, dockerUnavailable, skipReason } from "./requirements.js";

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

async function conforms(provider: string, o: { config?: Record<string, unknown>; providerDirs?: string[]; leftovers?: (env: { id: string; resourceId: string }) => string[] } = {}): Promise<void> {
  const results = await runConformance({ provider, admin: h.admin, dir: join(h.dir, `conformance-${provider}`), stepTimeoutMs: 30_000, ...o });
  const table = formatResults(provider, results);
  console.log(table);
  expect(results.map((r) => r.step)).toEqual([...STEPS]);
  expect(results.filter((r) => r.ok !== true), table).toEqual([]);
}

describe("every provider passes the conformance kit", () => {
  it("local", async () => {
    await conforms("local");
  });

  it("worktree", async () => {
    const repo = join(h.dir, "repo");
    const git = (...args: string[]) => execFileSync("git", ["-C", repo, ...args], { encoding: "utf8" });
    execFileSync("git", ["init", "-q", repo]);
    git("-c", "user.email=t@e", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "base");
    await conforms("worktree", { config: { repository: repo } });
    expect(git("branch", "--list", "outpost/*").trim()).toBe("");
    expect(git("worktree", "list").trim().split("\n")).toHaveLength(1);
  });

  it("the worked example, examples/scratch-provider (an external provider loaded with --provider-dir)", async () => {
    await conforms("scratch", { providerDirs: [join(ROOT, "examples", "scratch-provider")], config: { welcome: "hello from the example\n" } });
  });

  it.skipIf(skipReason("the sandbox provider's conformance", bwrapUnavailable()))("sandbox", async () => {
    await conforms("sandbox");
  });

  it.skipIf(skipReason("the docker provider's conformance", dockerUnavailable()))("docker", async () => {
    const containers = (id: string) => execFileSync("docker", ["ps", "-aq", "--filter", `label=outpost.environment=${id}`], { encoding: "utf8" }).trim();
    await conforms("docker", { leftovers: ({ id }) => (containers(id) ? [`container ${containers(id)} of ${id}`] : []) });
  });

  for (const provider of ["e2b", "daytona", "cloudflare-containers"]) {
    it(`${provider}, against a local fake of its service`, async () => {
      const fake = await startCloudFake(provider, { dir: join(h.dir, `fake-${provider}`) });
      try {
        await conforms(provider, { config: fake.config, leftovers: () => fake.leftovers() });
        expect(fake.leftovers()).toEqual([]);
      } finally {
        await fake.close();
      }
    });
  }
});
