/**
 * /v1/snapshots: take a snapshot in an environment, list and read them, export them to R2 (git
 * bundle, full or incremental, or tar.gz), import them into any environment with a strategy, diff
 * two snapshots or two environments, merge one environment's changes into another as a patch, and
 * make a branch ready for a pull request in an environment's own repository.
 */
import { Hono } from "hono";
import * as z from "zod";
import {
  CreateSnapshotBody,
  DiffSnapshotsBody,
  ExportSnapshotBody,
  ImportSnapshotBody,
  MergeSnapshotBody,
  SNAPSHOT_ID,
  SnapshotBranchBody,
  timeOrderedId,
  type Snapshot,
  type SnapshotExport,
} from "@outpost/protocol";
import { requireRole, type AuthVars } from "../auth.js";
import type { Env } from "../env.js";
import { unwrap } from "../outcome.js";
import { HttpError } from "../problem.js";
import { getSnapshot, getThread, listSnapshots, locate, recordSnapshot } from "../snapshot-index.js";
import { pullRequestMessage, requireRepository } from "../snapshot-branch.js";
import { exportToR2, importFromR2, narrativeKey } from "../snapshot-transfer.js";
import { environmentStub, resolveEnvironmentId } from "../stub.js";
import { parseBody, readJson } from "../validate.js";

type App = { Bindings: Env; Variables: AuthVars };
type Side = { snapshotId: string } | { environment: string };

async function mustGet(env: Env, org: string, id: string): Promise<Snapshot> {
  const s = SNAPSHOT_ID.test(id) ? await getSnapshot(env.DB, org, id) : null;
  if (!s) throw new HttpError(404, "not_found", `No snapshot ${id}.`);
  return s;
}

/** Takes a snapshot in an environment now and records it. */
async function take(env: Env, org: string, environmentId: string, o: { threadId?: string; runId?: string; message?: string }): Promise<Snapshot> {
  const thread = o.threadId ? await getThread(env.DB, org, o.threadId) : null;
  const snapshotId = timeOrderedId("snap");
  const taken = unwrap(
    await environmentStub(env, org, environmentId).takeSnapshot({
      snapshotId,
      ...(o.threadId ? { threadId: o.threadId } : {}),
      ...(o.runId ? { runId: o.runId } : {}),
      ...(thread?.objectiveId ? { objectiveId: thread.objectiveId } : {}),
      ...(o.message ? { message: o.message } : {}),
    }),
  );
  await recordSnapshot(env.DB, org, environmentId, taken, new Date().toISOString());
  return mustGet(env, org, snapshotId);
}

/** The export to bring: the one asked for, or the newest full bundle, made now when there is none. */
async function exportFor(env: Env, org: string, s: Snapshot, exportId?: string): Promise<SnapshotExport> {
  if (exportId) {
    const e = s.exports.find((x) => x.id === exportId);
    if (!e) throw new HttpError(404, "not_found", `Snapshot ${s.id} has no export ${exportId}.`);
    return e;
  }
  const full = [...s.exports].reverse().find((x) => x.format === "bundle" && x.baseSnapshotId === null);
  return full ?? exportToR2(env, org, s, { format: "bundle" });
}

async function resolveSide(env: Env, org: string, side: Side): Promise<Snapshot> {
  if ("snapshotId" in side) return mustGet(env, org, side.snapshotId);
  return take(env, org, await resolveEnvironmentId(env, org, side.environment), { message: "taken for a comparison" });
}

/** The snapshot's commit in `environmentId`, fetched there (shadow repository only) when it is not yet. */
async function bringTo(env: Env, org: string, s: Snapshot, environmentId: string): Promise<string> {
  const here = await locate(env.DB, org, s.id, environmentId);
  if (here) return here;
  const r = await importFromR2(env, org, s, await exportFor(env, org, s), environmentId, "fetch");
  return r.commit;
}

const Limit = z.coerce.number().int().min(1).max(500).default(100);

export const snapshots = new Hono<App>()
  .post("/", requireRole("operator"), async (c) => {
    const body = parseBody(CreateSnapshotBody, await readJson(c.req.raw));
    const { org } = c.get("user");
    const environmentId = await resolveEnvironmentId(c.env, org, body.environment);
    let snapshot = await take(c.env, org, environmentId, body);
    if (body.export) {
      const base = body.export.baseSnapshotId ? await mustGet(c.env, org, body.export.baseSnapshotId) : null;
      await exportToR2(c.env, org, snapshot, { format: body.export.format, base });
      snapshot = await mustGet(c.env, org, snapshot.id);
    }
    return c.json({ snapshot }, 201, { location: `/v1/snapshots/${snapshot.id}` });
  })
  .get("/", requireRole("viewer"), async (c) => {
    const { org } = c.get("user");
    const limit = parseBody(Limit, c.req.query("limit"), "limit");
    const threadId = c.req.query("threadId");
    const envArg = c.req.query("environment");
    const environmentId = envArg ? await resolveEnvironmentId(c.env, org, envArg) : undefined;
    return c.json({ snapshots: await listSnapshots(c.env.DB, org, { ...(threadId ? { threadId } : {}), ...(environmentId ? { environmentId } : {}), limit }) });
  })
  .post("/diff", requireRole("viewer"), async (c) => {
    const body = parseBody(DiffSnapshotsBody, await readJson(c.req.raw));
    const { org } = c.get("user");
    if (("environment" in body.from || "environment" in body.to) && c.get("user").role === "viewer") {
      throw new HttpError(403, "forbidden", "Comparing environments takes snapshots of them: that needs the operator role.");
    }
    const from = await resolveSide(c.env, org, body.from);
    const to = await resolveSide(c.env, org, body.to);
    const where = from.environmentId;
    const fromCommit = (await locate(c.env.DB, org, from.id, where)) ?? from.commit;
    const toCommit = await bringTo(c.env, org, to, where);
    const stream = unwrap(await environmentStub(c.env, org, where).diffSnapshots({ from: fromCommit, to: toCommit, format: body.format }));
    const type = body.format === "format-patch" ? "message/rfc822" : "text/x-diff";
    return new Response(stream, { headers: { "content-type": `${type}; charset=utf-8`, "x-outpost-from": from.id, "x-outpost-to": to.id, "cache-control": "no-store" } });
  })
  .post("/merge", requireRole("operator"), async (c) => {
    const body = parseBody(MergeSnapshotBody, await readJson(c.req.raw));
    const { org } = c.get("user");
    const into = await resolveEnvironmentId(c.env, org, body.into);
    const from = await resolveSide(c.env, org, body.from);
    const result = await importFromR2(c.env, org, from, await exportFor(c.env, org, from), into, "patch");
    return c.json({ import: result, snapshot: await mustGet(c.env, org, from.id) });
  })
  .get("/:id", requireRole("viewer"), async (c) => c.json({ snapshot: await mustGet(c.env, c.get("user").org, c.req.param("id")) }))
  .post("/:id/export", requireRole("operator"), async (c) => {
    const body = parseBody(ExportSnapshotBody, await readJson(c.req.raw));
    const { org } = c.get("user");
    const snapshot = await mustGet(c.env, org, c.req.param("id"));
    const base = body.baseSnapshotId ? await mustGet(c.env, org, body.baseSnapshotId) : null;
    const exported = await exportToR2(c.env, org, snapshot, { format: body.format, base });
    return c.json({ export: exported, snapshot: await mustGet(c.env, org, snapshot.id) }, 201);
  })
  .get("/:id/exports/:exportId", requireRole("viewer"), async (c) => {
    const { org } = c.get("user");
    const snapshot = await mustGet(c.env, org, c.req.param("id"));
    const exp = snapshot.exports.find((e) => e.id === c.req.param("exportId"));
    if (!exp) throw new HttpError(404, "not_found", `Snapshot ${snapshot.id} has no export ${c.req.param("exportId")}.`);
    const object = await c.env.BUNDLES.get(exp.key);
    if (!object) throw new HttpError(404, "not_found", `The bundle ${exp.id} is missing from storage.`);
    return new Response(object.body, {
      headers: { "content-type": "application/octet-stream", "content-length": String(object.size), "x-outpost-sha256": exp.sha256, "cache-control": "no-store" },
    });
  })
  .get("/:id/narrative", requireRole("viewer"), async (c) => {
    const { org } = c.get("user");
    const snapshot = await mustGet(c.env, org, c.req.param("id"));
    const object = await c.env.BUNDLES.get(narrativeKey(org, snapshot.id));
    if (!object) throw new HttpError(404, "not_found", `Snapshot ${snapshot.id} has not been exported yet.`);
    return new Response(object.body, { headers: { "content-type": "application/json" } });
  })
  .post("/:id/branch", requireRole("operator"), async (c) => {
    const body = parseBody(SnapshotBranchBody, await readJson(c.req.raw));
    const { org } = c.get("user");
    const snapshot = await mustGet(c.env, org, c.req.param("id"));
    const target = await resolveEnvironmentId(c.env, org, body.environment);
    if (!(await locate(c.env.DB, org, snapshot.id, target))) await requireRepository(c.env, org, target);
    const commit = await bringTo(c.env, org, snapshot, target);
    const name = body.name ?? (snapshot.threadId ?? snapshot.id).replace(/[^A-Za-z0-9._-]/g, "-");
    const message = await pullRequestMessage(c.env, org, snapshot);
    const branch = unwrap(await environmentStub(c.env, org, target).branchSnapshot({ commit, name, message }));
    return c.json({ branch: { ...branch, environmentId: target, message }, snapshot }, 201);
  })
  .post("/:id/import", requireRole("operator"), async (c) => {
    const body = parseBody(ImportSnapshotBody, await readJson(c.req.raw));
    const { org } = c.get("user");
    const snapshot = await mustGet(c.env, org, c.req.param("id"));
    const target = await resolveEnvironmentId(c.env, org, body.environment);
    const result = await importFromR2(c.env, org, snapshot, await exportFor(c.env, org, snapshot, body.exportId), target, body.strategy);
    return c.json({ import: result, snapshot: await mustGet(c.env, org, snapshot.id) });
  });
