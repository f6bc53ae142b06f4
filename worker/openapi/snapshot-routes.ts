/** The hierarchy and snapshot routes, for the OpenAPI document (see routes.ts). */
import * as z from "zod";
import {
  CreateObjectiveBody,
  CreateSnapshotBody,
  CreateThreadBody,
  DiffSnapshotsBody,
  ExportSnapshotBody,
  ImportSnapshotBody,
  MergeSnapshotBody,
  Objective,
  Run,
  Snapshot,
  SnapshotBranchBody,
  SnapshotBranchResult,
  SnapshotExport,
  SnapshotImportResult,
  Thread,
} from "@outpost/protocol";
import type { RouteSpec } from "./spec.js";

const Limit = z.object({ limit: z.coerce.number().int().min(1).max(500).optional() });
const SnapshotSummary = Snapshot.omit({ exports: true, environments: true });
const SnapshotResponse = z.object({ snapshot: Snapshot });
const ImportResponse = z.object({ import: SnapshotImportResult.extend({ intoThread: z.string().nullable() }), snapshot: Snapshot });
const text = (contentType: string) => ({ raw: { contentType, schema: { type: "string" } } });
const S = "/v1/snapshots";

export const SNAPSHOT_ROUTES: RouteSpec[] = [
  { id: "createObjective", method: "post", path: "/v1/objectives", tag: "hierarchy", summary: "Create an objective", auth: "operator", body: CreateObjectiveBody, responses: { 201: z.object({ objective: Objective }) } },
  { id: "listObjectives", method: "get", path: "/v1/objectives", tag: "hierarchy", summary: "The org's objectives, newest first", auth: "viewer", query: Limit, responses: { 200: z.object({ objectives: z.array(Objective) }) } },
  { id: "getObjective", method: "get", path: "/v1/objectives/{id}", tag: "hierarchy", summary: "An objective with its threads", auth: "viewer", params: { id: "obj_…" }, responses: { 200: z.object({ objective: Objective, threads: z.array(Thread) }) } },
  { id: "createThread", method: "post", path: "/v1/threads", tag: "hierarchy", summary: "Create a thread, under an objective or branched from another thread", auth: "operator", body: CreateThreadBody, responses: { 201: z.object({ thread: Thread }) }, errors: [404] },
  { id: "listThreads", method: "get", path: "/v1/threads", tag: "hierarchy", summary: "Threads, newest first (?objectiveId=)", auth: "viewer", query: Limit.extend({ objectiveId: z.string().optional() }), responses: { 200: z.object({ threads: z.array(Thread) }) } },
  {
    id: "getThread",
    method: "get",
    path: "/v1/threads/{id}",
    tag: "hierarchy",
    summary: "A thread with its runs and snapshots",
    auth: "viewer",
    params: { id: "thr_…" },
    responses: { 200: z.object({ thread: Thread, runs: z.array(Run.pick({ id: true, environmentId: true, state: true, createdAt: true })), snapshots: z.array(SnapshotSummary) }) },
  },
  {
    id: "createSnapshot",
    method: "post",
    path: S,
    tag: "snapshots",
    summary: "Snapshot an environment's workspace (a commit in its shadow repository), optionally exporting it to R2",
    auth: "operator",
    body: CreateSnapshotBody,
    responses: { 201: SnapshotResponse },
    errors: [409],
  },
  { id: "listSnapshots", method: "get", path: S, tag: "snapshots", summary: "Snapshots, newest first (?threadId=, ?environment=)", auth: "viewer", query: Limit.extend({ threadId: z.string().optional(), environment: z.string().optional() }), responses: { 200: z.object({ snapshots: z.array(SnapshotSummary) }) } },
  { id: "getSnapshot", method: "get", path: `${S}/{id}`, tag: "snapshots", summary: "A snapshot: its place in the hierarchy, exports and the environments that hold it", auth: "viewer", params: { id: "snap_…" }, responses: { 200: SnapshotResponse } },
  {
    id: "exportSnapshot",
    method: "post",
    path: `${S}/{id}/export`,
    tag: "snapshots",
    summary: "Stream a git bundle (full, or incremental against baseSnapshotId) or a tar.gz of the snapshot into R2, with its sha256",
    auth: "operator",
    params: { id: "snap_…" },
    body: ExportSnapshotBody,
    responses: { 201: z.object({ export: SnapshotExport, snapshot: Snapshot }) },
    errors: [409],
  },
  { id: "downloadSnapshotExport", method: "get", path: `${S}/{id}/exports/{exportId}`, tag: "snapshots", summary: "The bytes of an export, from R2", auth: "viewer", params: { id: "snap_…", exportId: "exp_…" }, responses: { 200: text("application/octet-stream") } },
  { id: "getSnapshotNarrative", method: "get", path: `${S}/{id}/narrative`, tag: "snapshots", summary: "narrative.json: the hierarchy stored beside the snapshot's bundles", auth: "viewer", params: { id: "snap_…" }, responses: { 200: { raw: { contentType: "application/json", schema: { type: "object" } } } } },
  {
    id: "branchSnapshot",
    method: "post",
    path: `${S}/{id}/branch`,
    tag: "snapshots",
    summary:
      "A branch ready for a pull request in the environment's own repository: outpost/<name> (default: the snapshot's thread), rooted at the user's HEAD, one commit with the snapshot's files and a message from its narrative; the user's work tree, index and HEAD untouched; 409 when the branch exists",
    auth: "operator",
    params: { id: "snap_…" },
    body: SnapshotBranchBody,
    responses: { 201: z.object({ branch: SnapshotBranchResult.extend({ environmentId: z.string(), message: z.string() }), snapshot: Snapshot }) },
    errors: [409, 422],
  },
  {
    id: "importSnapshot",
    method: "post",
    path: `${S}/{id}/import`,
    tag: "snapshots",
    summary: "Bring the snapshot into an environment: verified by size and sha256 before the workspace changes, then replace, patch or branch",
    auth: "operator",
    params: { id: "snap_…" },
    body: ImportSnapshotBody,
    responses: { 200: ImportResponse },
    errors: [409, 422],
  },
  { id: "diffSnapshots", method: "post", path: `${S}/diff`, tag: "snapshots", summary: "The patch (or stat, or git-format mail) between two snapshots or two environments", auth: "viewer", body: DiffSnapshotsBody, responses: { 200: text("text/x-diff") }, errors: [409] },
  { id: "mergeSnapshot", method: "post", path: `${S}/merge`, tag: "snapshots", summary: "Merge a snapshot's (or an environment's) changes into an environment as a patch; conflicts listed", auth: "operator", body: MergeSnapshotBody, responses: { 200: ImportResponse }, errors: [409, 422] },
];
