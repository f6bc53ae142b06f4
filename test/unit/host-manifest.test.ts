/** Provider manifests (`outpost-provider.yaml`) and loading providers: built-in and from a directory. */
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HostedProvider } from "../../provider-agent/src/host/hosted.js";
import { BUILTIN_PROVIDERS, loadBuiltin, loadProviderDir, loadProviders } from "../../provider-agent/src/host/loader.js";
import { parseManifest } from "../../provider-agent/src/host/manifest.js";
import { silentLogger } from "../../provider-agent/src/log.js";
import { manifestErrors } from "@outpost/protocol";
import { agentToken, ENV_ID, tempDir, TestEdge } from "./helpers.js";
import { agentCommand } from "./host-helpers.js";

const GOOD = `name: Docker
id: docker
version: 1.2.0
runtime: node
entrypoint: ./provider.mjs
category: docker
capabilities: [containers, gpu]
config:
  image:
    type: string
    default: node:20
    description: the image to run
  token:
    type: string
    secret: true
    required: true
`;

let base: { dir: string; cleanup: () => Promise<void> };
beforeEach(async () => {
  base = await tempDir("outpost-manifest-");
});
afterEach(async () => {
  await base.cleanup();
});

describe("parseManifest", () => {
  it("accepts a good manifest, filling defaults", () => {
    const r = parseManifest(GOOD, "m.yaml");
    expect(r).toEqual({
      ok: true,
      manifest: {
        name: "Docker",
        id: "docker",
        version: "1.2.0",
        runtime: "node",
        entrypoint: "./provider.mjs",
        category: "docker",
        capabilities: ["containers", "gpu"],
        config: { image: { type: "string", default: "node:20", description: "the image to run" }, token: { type: "string", secret: true, required: true } },
      },
    });
    const minimal = parseManifest("name: X\nid: x\nversion: 0.1.0\nruntime: node\nentrypoint: x.js\ncategory: cloud\n", "m.yaml");
    expect(minimal.ok && minimal.manifest).toMatchObject({ capabilities: [], config: {} });
  });

  it.each([
    ["name", "name: Docker\n", "name: \n", /^m\.yaml \(line 1\): name: /],
    ["id", "id: docker\n", "id: Docker_1\n", /^m\.yaml \(line 2\): id: id must be lowercase letters, digits or '-'$/],
    ["version", "version: 1.2.0\n", "version: '1.2'\n", /^m\.yaml \(line 3\): version: version must be semver/],
    ["runtime", "runtime: node\n", "runtime: python\n", /^m\.yaml \(line 4\): runtime: /],
    ["entrypoint", "entrypoint: ./provider.mjs\n", "entrypoint: ''\n", /^m\.yaml \(line 5\): entrypoint: /],
    ["category", "category: docker\n", "category: vm\n", /^m\.yaml \(line 6\): category: /],
    ["a capability", "capabilities: [containers, gpu]\n", "capabilities: [containers, GPU]\n", /^m\.yaml \(line 7\): capabilities\.1: /],
    ["a config field's type", "    type: string\n    default: node:20\n", "    type: int\n    default: node:20\n", /^m\.yaml \(line 10\): config\.image\.type: /],
    ["a config key", "  image:\n", "  9image:\n", /^m\.yaml \(line 9\): config\.9image: .*config keys are identifiers$/],
  ])("names the field when %s is wrong, with its line", (_name, from, to, message) => {
    const r = parseManifest(GOOD.replace(from, to), "m.yaml");
    expect(r.ok).toBe(false);
    expect(!r.ok && r.errors).toHaveLength(1);
    expect(!r.ok && r.errors[0]).toMatch(message);
  });

  it("names a missing field at the object that lacks it, and reports every problem at once", () => {
    const r = parseManifest("name: X\nversion: one\nruntime: node\ncategory: local\n", "m.yaml");
    expect(r.ok).toBe(false);
    const errors = !r.ok ? r.errors : [];
    expect(errors).toHaveLength(3);
    expect(errors.some((e) => /^m\.yaml \(line 1\): id: /.test(e))).toBe(true);
    expect(errors.some((e) => /^m\.yaml \(line 2\): version: /.test(e))).toBe(true);
    expect(errors.some((e) => /^m\.yaml \(line 1\): entrypoint: /.test(e))).toBe(true);
    // The same lines as the protocol's manifestErrors, located.
    const data = { name: "X", version: "one", runtime: "node", category: "local" };
    expect(errors.map((e) => e.replace(/^m\.yaml \(line \d+\): /, ""))).toEqual(manifestErrors(data));
  });

  it("reports YAML syntax errors and duplicate keys with their line", () => {
    const broken = parseManifest("name: X\nid: [x\n", "m.yaml");
    expect(!broken.ok && broken.errors[0]).toMatch(/^m\.yaml \(line \d\): /);
    const duplicate = parseManifest(`${GOOD}id: again\n`, "m.yaml");
    expect(!duplicate.ok && duplicate.errors[0]).toMatch(/^m\.yaml \(line 17\): .*unique/i);
    expect(parseManifest("just a string", "m.yaml")).toMatchObject({ ok: false, errors: [expect.stringMatching(/^m\.yaml \(line 1\): \(root\): /)] });
  });
});

describe("built-in providers", () => {
  it.each(BUILTIN_PROVIDERS)("%s has a valid manifest with a builtin: entrypoint", (id) => {
    const r = loadBuiltin(id);
    expect(r.ok).toBe(true);
    expect(r.ok && r.providers[0]!.manifest).toMatchObject({ id, entrypoint: `builtin:${id}`, runtime: "node", category: ({ docker: "docker", e2b: "cloud", daytona: "cloud", "cloudflare-containers": "cloud" } as Record<string, string>)[id] ?? "local" });
  });

  it("worktree requires a repository and defaults baseRef and branchPrefix", () => {
    const r = loadBuiltin("worktree");
    expect(r.ok && r.providers[0]!.manifest.config).toMatchObject({
      repository: { type: "string", required: true },
      baseRef: { type: "string", default: "HEAD" },
      branchPrefix: { type: "string", default: "outpost/" },
    });
  });

  it("an unknown built-in is an error listing the real ones", () => {
    expect(loadBuiltin("kubernetes")).toEqual({ ok: false, errors: [`there is no built-in provider 'kubernetes' (built-in: ${BUILTIN_PROVIDERS.join(", ")})`] });
  });
});

/** A provider that is one file: it makes a directory and starts the agent in it through the context alone. */
const EXTERNAL_PROVIDER = `
import { mkdir, rm, stat } from "node:fs/promises";
import path from "node:path";
const exists = (p) => stat(p).then(() => true, () => false);
export default class ScratchProvider {
  constructor(manifest) { this.manifest = manifest; }
  async create(env) {
    const dir = path.join(env.root, "scratch-" + env.environmentId);
    await mkdir(dir, { recursive: true });
    await env.agent.start({ workspace: dir, resourceId: dir });
    return { resourceId: dir, notes: { flavour: env.config.flavour } };
  }
  async recover(env, resource) {
    if (!(await exists(resource.resourceId))) return { resourceId: resource.resourceId, recovered: false };
    await env.agent.ensure({ workspace: resource.resourceId, resourceId: resource.resourceId });
    return { resourceId: resource.resourceId, recovered: true };
  }
  async health(resource) { return { state: (await exists(resource.resourceId)) ? "running" : "gone" }; }
  async teardown(resource) {
    const had = await exists(resource.resourceId);
    await rm(resource.resourceId, { recursive: true, force: true });
    return had;
  }
}
`;

async function providerDir(name: string, manifest: string, files: Record<string, string> = {}): Promise<string> {
  const dir = path.join(base.dir, name);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, "outpost-provider.yaml"), manifest);
  for (const [file, text] of Object.entries(files)) await writeFile(path.join(dir, file), text);
  return dir;
}

const scratchManifest = (entrypoint = "provider.mjs", id = "scratch") =>
  `name: Scratch\nid: ${id}\nversion: 0.0.1\nruntime: node\nentrypoint: ${entrypoint}\ncategory: local\ncapabilities: [scratch]\nconfig:\n  flavour:\n    type: string\n    default: plain\n`;

describe("external providers (--provider-dir)", () => {
  it("loads a provider that is one module plus a manifest, and runs it through the host's mechanics", async () => {
    const dir = await providerDir("scratch", scratchManifest(), { "provider.mjs": EXTERNAL_PROVIDER });
    const all = await loadProviders([dir]);
    expect(all.ok && all.providers.map((p) => p.manifest.id)).toEqual([...BUILTIN_PROVIDERS, "scratch"]);
    const loaded = await loadProviderDir(dir);
    if (!loaded.ok) throw new Error(loaded.errors.join("\n"));
    const { manifest, impl } = loaded.providers[0]!;
    const root = path.join(base.dir, "root");
    const hosted = new HostedProvider(manifest, impl, { root, runtimeRoot: path.join(base.dir, "state"), agentCommand, log: silentLogger });
    expect(hosted.offer()).toEqual({ id: "scratch", name: "Scratch", version: "0.0.1", category: "local", capabilities: ["scratch"], config: { flavour: { type: "string", default: "plain" } } });

    const edge = await TestEdge.start();
    try {
      const token = agentToken();
      const signal = AbortSignal.timeout(30_000);
      const created = await hosted.create({ environmentId: ENV_ID, config: { flavour: "spicy" }, url: edge.url, agentToken: token }, signal);
      const dir2 = path.join(root, `scratch-${ENV_ID}`);
      expect(created).toEqual({ resourceId: dir2, notes: { flavour: "spicy" } });
      expect(await edge.frame(0, (f) => f.kind === "hello", 20_000)).toMatchObject({ workspace: dir2 });
      expect(await hosted.teardown({ environmentId: ENV_ID, resourceId: dir2, notes: {} }, signal)).toBe(true);
      expect(existsSync(dir2)).toBe(false);
      // The host stopped the agent it started for the provider, and removed its runtime directory.
      await (await edge.connection(0)).closed;
      expect(existsSync(hosted.runtimeDir(ENV_ID))).toBe(false);
    } finally {
      await edge.close();
    }
  }, 60_000);

  it("accepts a plain object as the default export", async () => {
    const object = `export default { async create() { return "r"; }, async recover(e, r) { return { resourceId: r.resourceId, recovered: true }; }, async health() { return { state: "running" }; }, async teardown() { return true; } };`;
    const dir = await providerDir("obj", scratchManifest("obj.mjs", "obj"), { "obj.mjs": object });
    expect((await loadProviderDir(dir)).ok).toBe(true);
  });

  it.each([
    ["a missing manifest", async () => path.join(base.dir, "nothing-here"), /outpost-provider\.yaml: cannot read/],
    ["an invalid manifest", async () => providerDir("bad", scratchManifest().replace("id: scratch", "id: Scratch!")), /outpost-provider\.yaml \(line 2\): id: /],
    ["a missing entrypoint file", async () => providerDir("nofile", scratchManifest("gone.mjs")), /entrypoint: .*gone\.mjs does not exist/],
    ["an entrypoint outside the directory", async () => providerDir("escape", scratchManifest("../elsewhere.mjs")), /entrypoint: must be a path inside/],
    ["a builtin: entrypoint", async () => providerDir("builtin", scratchManifest("builtin:local")), /entrypoint: 'builtin:' is reserved/],
    ["a module that does not load", async () => providerDir("syntax", scratchManifest(), { "provider.mjs": "export default {" }), /provider\.mjs: cannot load/],
    [
      "a default export missing methods",
      async () => providerDir("partial", scratchManifest(), { "provider.mjs": "export default { async create() { return 'x'; }, async health() {} };" }),
      /must be a provider class or object with create, recover, health, teardown \(missing: recover, teardown\)/,
    ],
  ])("refuses %s, naming the file and field", async (_name, make, message) => {
    const r = await loadProviderDir(await make());
    expect(r.ok).toBe(false);
    expect(!r.ok && r.errors.join("\n")).toMatch(message);
  });

  it("refuses a provider id that is already taken", async () => {
    const dir = await providerDir("dup", scratchManifest("provider.mjs", "local"), { "provider.mjs": EXTERNAL_PROVIDER });
    const r = await loadProviders([dir]);
    expect(r).toEqual({ ok: false, errors: [`${path.join(dir, "outpost-provider.yaml")}: id: 'local' is already provided by builtin:local/outpost-provider.yaml`] });
  });
});
