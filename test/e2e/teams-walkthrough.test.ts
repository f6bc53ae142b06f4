/**
 * docs/teams.md, step 2, followed as written: its commands run in a shell from the repository
 * (`npx outpost …`, `npx outpost-agent host …`) against a real control plane, with only the URL
 * replaced by this test's and OUTPOST_TOKEN standing in for the profile `npm start` writes. Before
 * the environment is archived, step 1's usage commands run against it unchanged but for its name,
 * which is the walkthrough's point: a host-placed environment is used like the local one.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnGroup, type ProcessGroup } from "../../scripts/lib/process-group.js";
import { signUserToken } from "../../scripts/lib/tokens.js";
import { markdownSection, shBlocks } from "../lib/markdown.js";
import { killLeftovers, startHarness, waitFor, type Harness } from "./helpers.js";

const REPO = new URL("../..", import.meta.url).pathname;
const DOC_URL = "http://127.0.0.1:8787";

/** The shell lines of each ```sh block of the section whose heading starts with `## ${n}.`, continuations joined. */
const sectionLines = (markdown: string, n: number) => shBlocks(markdownSection(markdown, `${n}.`));

let h: Harness;
let host: ProcessGroup | null = null;
let env: NodeJS.ProcessEnv;
beforeAll(async () => {
  h = await startHarness();
  const { OUTPOST_HOST_TOKEN: _h, OUTPOST_URL: _u, OUTPOST_TOKEN: _t, OUTPOST_PROFILE: _p, ...inherited } = process.env;
  env = {
    ...inherited,
    OUTPOST_TOKEN: await signUserToken({ secret: h.secret, org: "e2e", role: "admin", subject: "walkthrough", ttl: 3600 }),
    XDG_DATA_HOME: join(h.dir, "xdg-data"),
    XDG_STATE_HOME: join(h.dir, "xdg-state"),
  };
  mkdirSync(env.XDG_DATA_HOME!, { recursive: true });
  mkdirSync(env.XDG_STATE_HOME!, { recursive: true });
});
afterAll(async () => {
  await host?.stop("SIGTERM", 5_000).catch(() => host?.kill());
  killLeftovers(join(h?.dir ?? "/nonexistent", "xdg-data"));
  await h?.close();
});

/** Runs one documented line (asynchronously: a blocked event loop would let the API client's kept-alive sockets go stale). */
async function sh(line: string): Promise<{ stdout: string; stderr: string }> {
  try {
    return await promisify(execFile)("sh", ["-c", line.replaceAll(DOC_URL, h.cp.url)], { cwd: REPO, env, encoding: "utf8", timeout: 60_000 });
  } catch (err) {
    const e = err as { code?: unknown; stderr?: string };
    throw new Error(`\`${line}\` failed (${String(e.code)}): ${e.stderr ?? String(err)}`);
  }
}

describe("docs/teams.md, followed", () => {
  it("step 2: a host token, a host on this machine, an environment pinned to it and used as in step 1, then archived", async () => {
    const doc = readFileSync(join(REPO, "docs/teams.md"), "utf8");
    const usage = sectionLines(doc, 1)[1]!;
    expect(usage.length).toBeGreaterThan(3);
    const outputs: Record<string, string> = {};
    let created: string | null = null;
    for (const line of sectionLines(doc, 2).flat()) {
      const exported = /^export ([A-Z_]+)=/.exec(line);
      if (exported) {
        env[exported[1]!] = (await sh(`${line}; printf '%s' "$${exported[1]}"`)).stdout.trim();
        expect(env[exported[1]!], line).toBeTruthy();
      } else if (line.startsWith("npx outpost-agent host")) {
        host = spawnGroup("sh", ["-c", `exec ${line}`], { cwd: REPO, env });
        await waitFor(
          async () => {
            const hosts = (await (await h.admin.request("GET", "/v1/hosts")).json()) as { hosts: Array<{ name: string; connected: boolean }> };
            return hosts.hosts.some((x) => x.name === "my-laptop" && x.connected);
          },
          { timeoutMs: 30_000, what: `the host to connect (${host.output()})` },
        );
      } else {
        const rm = /^npx outpost env rm (\S+)/.exec(line);
        if (rm) {
          const name = rm[1]!;
          await waitFor(async () => (await (await h.admin.request("GET", `/v1/environments/${name}`)).json() as { environment: { state: string } }).environment.state === "running", { timeoutMs: 30_000, what: `${name} to run` });
          // Step 1's commands, for this environment: unchanged but for its name.
          for (const u of usage) outputs[u] = (await sh(u.replace(/(npx outpost [a-z]+) local\b/, `$1 ${name}`))).stdout;
          const { environment } = (await (await h.admin.request("GET", `/v1/environments/${name}`)).json()) as { environment: { resourceId: string } };
          created = environment.resourceId;
        }
        outputs[line] = (await sh(line)).stdout;
      }
    }
    expect(outputs["npx outpost hosts list"]).toContain("my-laptop");
    expect(outputs["npx outpost exec scratch -- pwd"]?.trim()).toContain(env.XDG_DATA_HOME);
    const cat = Object.entries(outputs).find(([k]) => k.startsWith("npx outpost cat"));
    expect(cat?.[1]).toBe("hello\n");
    const diff = Object.entries(outputs).find(([k]) => k.startsWith("npx outpost diff"));
    expect(diff?.[1]).toContain("notes/hello.txt");
    expect(created).toContain(env.XDG_DATA_HOME);
    await waitFor(() => !existsSync(created!), { timeoutMs: 20_000, what: "the host to remove the environment's directory" });
  });
});
