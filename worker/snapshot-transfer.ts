/**
 * Snapshot bundles between environments and R2. Export: the agent writes the bundle and says its
 * size and sha256; its bytes stream agent → Durable Object → here → R2 through a FixedLengthStream
 * while a DigestStream hashes them, and the object is kept only when both checksums agree; a
 * `narrative.json` beside it carries the hierarchy. Import: R2 → here → Durable Object → agent,
 * with the size and sha256 recorded at export, which the agent checks before the workspace changes.
 * Memory stays bounded: nothing here holds more than the chunks in flight.
 */
import { timeOrderedId, type BundleFormat, type ImportStrategy, type Snapshot, type SnapshotExport, type SnapshotImportResult } from "@outpost/protocol";
import type { Env } from "./env.js";
import { newId } from "./ids.js";
import { unwrap } from "./outcome.js";
import { HttpError } from "./problem.js";
import { addLocation, getObjective, getThread, insertExport, insertThread, listSnapshots, recordSnapshot, runSummary } from "./snapshot-index.js";
import { environmentStub } from "./stub.js";

const hex = (buf: ArrayBuffer) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");

export function bundleKey(org: string, snapshotId: string, exportId: string, format: BundleFormat): string {
  return `${org}/snapshots/${snapshotId}/${exportId}.${format === "bundle" ? "bundle" : "tar.gz"}`;
}

export const narrativeKey = (org: string, snapshotId: string) => `${org}/snapshots/${snapshotId}/narrative.json`;

/** Bundles the snapshot in the environment that took it and stores it in R2; records the export. */
export async function exportToR2(env: Env, org: string, snapshot: Snapshot, o: { format: BundleFormat; base?: Snapshot | null }): Promise<SnapshotExport> {
  if (o.base && o.format !== "bundle") throw new HttpError(400, "bad_request", "Only a git bundle can be incremental; leave out baseSnapshotId for a tar.gz.");
  const stub = environmentStub(env, org, snapshot.environmentId);
  const out = unwrap(
    await stub.exportSnapshot({ snapshotId: snapshot.id, commit: snapshot.commit, format: o.format, ...(o.base ? { baseCommit: o.base.commit } : {}) }),
  );
  const id = newId("exp");
  const key = bundleKey(org, snapshot.id, id, o.format);
  const fixed = new FixedLengthStream(out.size);
  const digest = new crypto.DigestStream("SHA-256");
  const put = env.BUNDLES.put(key, fixed.readable, {
    httpMetadata: { contentType: o.format === "bundle" ? "application/x-git-bundle" : "application/gzip" },
    customMetadata: { snapshot: snapshot.id, sha256: out.sha256 },
  });
  const pump = (async () => {
    const upload = fixed.writable.getWriter();
    const hash = digest.getWriter();
    for await (const piece of out.body as unknown as AsyncIterable<Uint8Array>) {
      await hash.write(piece);
      await upload.write(piece);
    }
    await hash.close();
    await upload.close();
  })();
  try {
    await Promise.all([pump, put]);
  } catch (err) {
    await env.BUNDLES.delete(key).catch(() => undefined);
    throw new HttpError(502, "agent_error", `The bundle did not reach storage whole: ${err instanceof Error ? err.message : String(err)}`);
  }
  const sha256 = hex(await digest.digest);
  if (sha256 !== out.sha256) {
    await env.BUNDLES.delete(key);
    throw new HttpError(502, "integrity_failed", `The bundle changed on its way: the agent's sha256 is ${out.sha256}, the bytes that arrived hash to ${sha256}.`);
  }
  const record: SnapshotExport = { id, format: o.format, baseSnapshotId: o.base?.id ?? null, size: out.size, sha256, key, createdAt: new Date().toISOString() };
  await insertExport(env.DB, org, snapshot.id, record);
  await env.BUNDLES.put(narrativeKey(org, snapshot.id), JSON.stringify(await narrative(env, org, snapshot, record), null, 2), {
    httpMetadata: { contentType: "application/json" },
  });
  return record;
}

/** The hierarchy around a snapshot, written beside its bundles so it survives any transfer. */
export async function narrative(env: Env, org: string, snapshot: Snapshot, latest: SnapshotExport) {
  const thread = snapshot.threadId ? await getThread(env.DB, org, snapshot.threadId) : null;
  const objectiveId = snapshot.objectiveId ?? thread?.objectiveId ?? null;
  const lineage = snapshot.threadId ? await listSnapshots(env.DB, org, { threadId: snapshot.threadId, limit: 500 }) : [];
  return {
    version: 1,
    snapshot: { ...snapshot, exports: [...snapshot.exports.filter((e) => e.id !== latest.id), latest] },
    objective: objectiveId ? await getObjective(env.DB, org, objectiveId) : null,
    thread,
    run: snapshot.runId ? await runSummary(env.DB, org, snapshot.runId) : null,
    /** The thread's snapshots, newest first: id, commit, parent, run. */
    lineage: lineage.map((s) => ({ id: s.id, commit: s.commit, parentId: s.parentId, runId: s.runId, environmentId: s.environmentId, createdAt: s.createdAt })),
  };
}

/** Streams an export from R2 into an environment, which verifies it and checks it out. */
export async function importFromR2(
  env: Env,
  org: string,
  snapshot: Snapshot,
  exp: SnapshotExport,
  target: string,
  strategy: ImportStrategy,
): Promise<SnapshotImportResult & { intoThread: string | null }> {
  const object = await env.BUNDLES.get(exp.key);
  if (!object) throw new HttpError(404, "not_found", `The bundle ${exp.id} of snapshot ${snapshot.id} is missing from storage.`);
  let intoThread: string | null = null;
  if (strategy === "branch") {
    intoThread = timeOrderedId("thr");
    const now = new Date().toISOString();
    await insertThread(env.DB, org, { id: intoThread, objectiveId: snapshot.objectiveId, parentThreadId: snapshot.threadId, title: `from ${snapshot.id}`, createdAt: now });
  }
  const lineage = snapshot.threadId ? await listSnapshots(env.DB, org, { threadId: snapshot.threadId, limit: 500 }) : [];
  const refs = Object.fromEntries(lineage.map((s) => [s.id, s.commit]));
  const result = unwrap(
    await environmentStub(env, org, target).importSnapshot(
      {
        snapshotId: snapshot.id,
        commit: snapshot.commit,
        format: exp.format,
        // What was recorded at export, never what storage says now: that is what is verified.
        size: exp.size,
        sha256: exp.sha256,
        strategy,
        threadId: snapshot.threadId,
        ...(intoThread ? { intoThreadId: intoThread } : {}),
        preImportSnapshotId: timeOrderedId("snap"),
        refs,
      },
      object.body,
    ),
  );
  const at = new Date().toISOString();
  await addLocation(env.DB, org, snapshot.id, target, result.commit, at);
  if (result.preImport) await recordSnapshot(env.DB, org, target, result.preImport, at);
  return { ...result, intoThread };
}
