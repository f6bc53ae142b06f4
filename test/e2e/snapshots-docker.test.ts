/**
 * Snapshots between providers: a workspace served by a local agent (A) is snapshotted, exported to
 * R2 and imported into a container made by the docker provider (B), whose agent runs git and tar
 * from the base image (scripts/docker-base-image.sh); then B's own change comes back to A as an
 * incremental bundle. Identical files by checksum both ways, and the hierarchy (thread, objective,
 * parents) intact across the move. Needs a Docker daemon and the base image; skips and says why
 * without them.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as z from "zod";
import type { SnapshotExport } from "@outpost/protocol";
import { startProviderHost, type ProviderHost } from "../../scripts/lib/provider-host.js";
import { checksums } from "../lib/workspace-files.js";
import { connectAgent } from "./environments.js";
import { startHarness, type Harness } from "./helpers.js";
import { dockerUnavailable, skipReason } from "./requirements.js";

const docker = (...args: string[]) => execFileSync("docker", args, { encoding: "utf8", timeout: 30_000 }).trim();

/** What this test reads of narrative.json (the client answers it as a plain record). */
const Narrative = z.object({
  objective: z.object({ id: z.string() }),
  thread: z.object({ id: z.string() }),
  lineage: z.array(z.object({ id: z.string(), parentId: z.string().nullable(), environmentId: z.string() })),
});

describe.skipIf(skipReason("snapshots into the docker provider", dockerUnavailable()))("snapshots: local agent ⇄ docker provider", () => {
  let h: Harness;
  let host: ProviderHost | undefined;
  const created: string[] = [];

  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await host?.stop();
    for (const id of created) {
      const left = docker("ps", "-aq", "--filter", `label=outpost.environment=${id}`);
      for (const c of left.split("\n").filter(Boolean)) docker("rm", "-f", "-v", c);
    }
    await h?.close();
  });

  it("A → B (docker) and back: identical files by checksum, hierarchy intact", async () => {
    // B: a container from the base image, its workspace a host directory.
    const dir = join(h.dir, "hosts", "docker-snap");
    host = await startProviderHost({ admin: h.admin, name: "docker-snap", dir, args: ["--providers", "docker"] });
    const { environment: B } = await h.admin.createEnvironment({ name: "snap-docker", provider: "docker" });
    created.push(B.id);
    await h.admin.waitForEnvironment(B.id, "running", { timeoutMs: 30_000 });
    const bWorkspace = join(dir, "environments", B.id);
    await h.admin.writeFile(B.id, "only-in-b.txt", "b's own\n");

    // A: a local agent with a small tree, a binary file and an ignored directory.
    const a = await h.admin.createEnvironment({ name: "snap-local", provider: "local" });
    const { workspace: aWorkspace } = await h.workspace();
    mkdirSync(join(aWorkspace, "src", "deep", "er"), { recursive: true });
    writeFileSync(join(aWorkspace, ".gitignore"), "cache/\n");
    writeFileSync(join(aWorkspace, "README.md"), "# moved between providers\n");
    writeFileSync(join(aWorkspace, "src", "main.ts"), "export const where = 'a';\n");
    writeFileSync(join(aWorkspace, "src", "deep", "er", "data.bin"), Buffer.from([0, 255, 1, 254, 2, 253]));
    mkdirSync(join(aWorkspace, "cache"));
    writeFileSync(join(aWorkspace, "cache", "tmp.txt"), "ignored\n");
    const { agent } = await connectAgent(h, a.environment.id, a.agentToken, aWorkspace);
    const A = a.environment.id;

    const objective = await h.admin.createObjective({ title: "cross-provider" });
    const thread = await h.admin.createThread({ objectiveId: objective.id, title: "local then docker" });

    // A → B, full bundle, replace.
    const s1 = await h.admin.createSnapshot({ environment: A, threadId: thread.id, message: "from a", export: { format: "bundle" } });
    expect(s1).toMatchObject({ threadId: thread.id, objectiveId: objective.id, environmentId: A, parentId: null });
    const moved = await h.admin.importSnapshot(s1.id, { environment: B.id, strategy: "replace" });
    expect(moved.import.conflicts).toEqual([]);
    expect(moved.import.changed).toContain("only-in-b.txt");
    const fromA = await checksums(aWorkspace);
    delete fromA["cache/tmp.txt"];
    expect(await checksums(bWorkspace)).toEqual(fromA);
    expect(Object.keys(fromA)).toContain("src/deep/er/data.bin");
    expect(moved.snapshot.environments.sort()).toEqual([A, B.id].sort());

    // B changes a file (inside the container, with the image's own git behind the snapshot) and
    // snapshots: the same thread, s1 its parent.
    const edit = await h.admin.exec(B.id, { command: ["sh", "-c", "echo \"export const where = 'b';\" > src/main.ts && echo new > src/deep/from-b.txt"] });
    expect(edit.exitCode).toBe(0);
    const s2 = await h.admin.createSnapshot({ environment: B.id, message: "from b", export: { format: "bundle", baseSnapshotId: s1.id } });
    expect(s2).toMatchObject({ threadId: thread.id, objectiveId: objective.id, environmentId: B.id, parentId: s1.id });
    const inc: SnapshotExport = s2.exports[0]!;
    expect(inc.baseSnapshotId).toBe(s1.id);

    // B → A, incremental, replace: A has B's files; A's ignored directory stays.
    const { import: backIn } = await h.admin.importSnapshot(s2.id, { environment: A, exportId: inc.id, strategy: "replace" });
    const back = await checksums(aWorkspace);
    delete back["cache/tmp.txt"];
    expect(back).toEqual(await checksums(bWorkspace));
    expect(readFileSync(join(aWorkspace, "src", "main.ts"), "utf8")).toBe("export const where = 'b';\n");
    expect(readFileSync(join(aWorkspace, "cache", "tmp.txt"), "utf8")).toBe("ignored\n");

    // The hierarchy survived the move: the thread lists both (and A's safety snapshot taken before
    // the import, on the thread A was on), and s2's narrative names s1 in its lineage.
    const t = await h.admin.getThread(thread.id);
    expect(t.thread.objectiveId).toBe(objective.id);
    expect(backIn.preImport).not.toBeNull();
    expect(t.snapshots.map((s) => s.id).sort()).toEqual([s1.id, s2.id, backIn.preImport!.snapshotId].sort());
    expect(t.snapshots.every((s) => s.objectiveId === objective.id)).toBe(true);
    const narrative = Narrative.parse(await h.admin.getSnapshotNarrative(s2.id));
    expect(narrative.objective.id).toBe(objective.id);
    expect(narrative.thread.id).toBe(thread.id);
    expect(narrative.lineage.find((l) => l.id === s2.id)).toMatchObject({ parentId: s1.id, environmentId: B.id });
    expect(narrative.lineage.find((l) => l.id === s1.id)).toMatchObject({ environmentId: A });
    expect((await h.admin.getSnapshot(s2.id)).environments.sort()).toEqual([A, B.id].sort());
  }, 180_000);
});
