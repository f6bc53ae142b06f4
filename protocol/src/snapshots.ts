/**
 * Workspace snapshots (shadow git) and the hierarchy they belong to: objectives → threads → agent
 * runs → snapshots. The agent operations (`snapshot.*`) and the HTTP bodies share these schemas.
 */
import * as z from "zod";

export const SNAPSHOT_ID = /^snap_[a-z0-9]{20}$/;
export const OBJECTIVE_ID = /^obj_[a-z0-9]{20}$/;
export const THREAD_ID = /^thr_[a-z0-9]{20}$/;
const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

/** `PREFIX_` + 10 time-ordered + 10 random base32 characters (as environment and run ids). */
export function timeOrderedId(prefix: "snap" | "obj" | "thr", now = Date.now()): string {
  let time = "";
  for (let i = 0, ms = now; i < 10; i++, ms = Math.floor(ms / 32)) time = ALPHABET[ms % 32] + time;
  let rand = "";
  for (const b of crypto.getRandomValues(new Uint8Array(10))) rand += ALPHABET[b & 31];
  return `${prefix}_${time}${rand}`;
}

const Sha = z.string().regex(/^[0-9a-f]{40}$/);
const Ref = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/);
export const SnapshotId = z.string().regex(SNAPSHOT_ID, "a snapshot id (snap_…)");
export const BundleFormat = z.enum(["bundle", "tar.gz"]);
export type BundleFormat = z.infer<typeof BundleFormat>;
export const ImportStrategy = z.enum(["replace", "patch", "branch", "fetch"]);
export type ImportStrategy = z.infer<typeof ImportStrategy>;

/** What the agent reports of a snapshot it took (a commit in its shadow repository). */
export const SnapshotTaken = z.object({
  snapshotId: SnapshotId,
  commit: Sha,
  tree: Sha,
  parent: Sha.nullable(),
  threadId: Ref.nullable(),
  runId: Ref.nullable(),
  objectiveId: Ref.nullable(),
  files: z.number().int().nonnegative(),
  bytes: z.number().int().nonnegative(),
  message: z.string(),
});
export type SnapshotTaken = z.infer<typeof SnapshotTaken>;

// ---- agent operations --------------------------------------------------------------------

export const SnapshotTakeParams = z.object({
  snapshotId: SnapshotId,
  threadId: Ref.optional(),
  runId: Ref.optional(),
  objectiveId: Ref.optional(),
  message: z.string().max(4096).optional(),
});
/** snapshot.bundle: writes the bundle (or archive) beside the shadow repository; read it with snapshot.read. */
export const SnapshotBundleParams = z.object({
  snapshotId: SnapshotId,
  commit: Sha,
  format: BundleFormat,
  /** Incremental: objects the base commit already has are left out (git bundle prerequisites). */
  baseCommit: Sha.optional(),
});
export const SnapshotBundleResult = z.object({ bundleId: z.string().regex(/^[a-z0-9-]{1,64}$/), size: z.number().int().nonnegative(), sha256: z.string().regex(/^[0-9a-f]{64}$/) });
export const SnapshotReadParams = z.object({ bundleId: z.string().regex(/^[a-z0-9-]{1,64}$/) });
export const SnapshotReadResult = z.object({ size: z.number().int().nonnegative(), sha256: z.string() });
/** snapshot.import: chunks follow, like file.write; nothing in the workspace changes until size and sha256 match. */
export const SnapshotImportParams = z.object({
  snapshotId: SnapshotId,
  commit: Sha,
  format: BundleFormat,
  size: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  strategy: ImportStrategy,
  threadId: Ref.nullable(),
  /** branch: the new thread the snapshot lands on. */
  intoThreadId: Ref.optional(),
  /** The id of the safety snapshot taken of the workspace before it changes. */
  preImportSnapshotId: SnapshotId,
  /** Snapshot ids → commits carried by the bundle (narrative), made refs again on arrival. */
  refs: z.record(z.string(), Sha).optional(),
});
export const SnapshotImportResult = z.object({
  snapshotId: SnapshotId,
  commit: Sha,
  strategy: ImportStrategy,
  threadId: Ref.nullable(),
  /** The workspace as it was before the import, or null when the workspace was not touched. */
  preImport: SnapshotTaken.nullable(),
  conflicts: z.array(z.string()),
  changed: z.array(z.string()),
});
export type SnapshotImportResult = z.infer<typeof SnapshotImportResult>;
/** snapshot.diff: the patch between two commits of the shadow repository, streamed as chunks. */
export const SnapshotDiffParams = z.object({
  from: Sha,
  to: Sha,
  format: z.enum(["patch", "format-patch", "stat"]),
});
export const SnapshotDiffResult = z.object({ size: z.number().int().nonnegative() });

/**
 * A branch name under `outpost/` in the user's own repository: path components of letters, digits,
 * `.`, `_` and `-`, none starting with `.` or `-` nor ending in `.lock`, no `..`.
 */
export const BranchName = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[A-Za-z0-9_][A-Za-z0-9._-]*(\/[A-Za-z0-9_][A-Za-z0-9._-]*)*$/, "path components of letters, digits, . _ and -")
  .refine((n) => !n.includes("..") && !/\.lock(\/|$)/.test(n) && !n.endsWith("."), "no '..', no component ending in .lock or '.'");
/** snapshot.branch's refusal (409 invalid_state) when the workspace is not a git checkout of its own, with what to do instead. */
export const NOT_A_GIT_REPOSITORY =
  "not a git repository: the workspace has no .git of its own at its top, so there is no repository to put a pull-request branch in. " +
  "Make it one (git init, then a first commit) and ask again, or take the snapshot's changes as a git-format patch instead (outpost snapshots diff BASE_SNAPSHOT SNAPSHOT --mail).";
/**
 * snapshot.branch: a branch `outpost/<name>` in the user's own repository of the workspace, rooted
 * at the user's HEAD, whose one commit carries the snapshot's files. The user's work tree, index
 * and HEAD are not touched; an existing branch of that name is a conflict.
 */
export const SnapshotBranchParams = z.object({ commit: Sha, name: BranchName, message: z.string().min(1).max(16384) });
export const SnapshotBranchResult = z.object({
  /** The full branch name, `outpost/<name>`. */
  branch: z.string(),
  commit: Sha,
  /** The user's HEAD the branch is rooted at. */
  base: Sha,
  /** Files the commit changes against the base. */
  changed: z.array(z.string()),
});
export type SnapshotBranchResult = z.infer<typeof SnapshotBranchResult>;

// ---- HTTP bodies -------------------------------------------------------------------------

export const CreateObjectiveBody = z.object({ title: z.string().min(1).max(512), description: z.string().max(16384).optional() });
export const CreateThreadBody = z.object({
  objectiveId: z.string().regex(OBJECTIVE_ID).optional(),
  title: z.string().max(512).optional(),
  parentThreadId: z.string().regex(THREAD_ID).optional(),
});
export const CreateSnapshotBody = z.object({
  /** The environment's id or name. */
  environment: z.string().min(1).max(128),
  threadId: Ref.optional(),
  runId: Ref.optional(),
  message: z.string().max(4096).optional(),
  /** Export to R2 right away. */
  export: z.object({ format: BundleFormat.default("bundle"), baseSnapshotId: SnapshotId.optional() }).optional(),
});
export const ExportSnapshotBody = z.object({ format: BundleFormat.default("bundle"), baseSnapshotId: SnapshotId.optional() });
export const ImportSnapshotBody = z.object({
  environment: z.string().min(1).max(128),
  strategy: ImportStrategy.exclude(["fetch"]).default("replace"),
  /** Which export to bring: by default the newest full one (made now when there is none). */
  exportId: z.string().max(128).optional(),
});
/** One side of a comparison: a snapshot, or an environment as it is now (a snapshot is taken). */
export const SnapshotSide = z.union([z.object({ snapshotId: SnapshotId }), z.object({ environment: z.string().min(1).max(128) })]);
export const DiffSnapshotsBody = z.object({
  from: SnapshotSide,
  to: SnapshotSide,
  format: z.enum(["patch", "format-patch", "stat"]).default("patch"),
});
/** Merge `from`'s changes into the environment `into` as a patch (a three-way merge; conflicts listed). */
export const MergeSnapshotBody = z.object({ into: z.string().min(1).max(128), from: SnapshotSide });

/** A pull-request branch in the environment's own repository (default name: the snapshot's thread, else the snapshot). */
export const SnapshotBranchBody = z.object({ environment: z.string().min(1).max(128), name: BranchName.optional() });

export const Objective = z.object({ id: z.string(), title: z.string(), description: z.string().nullable(), createdAt: z.string() });
export type Objective = z.infer<typeof Objective>;
export const Thread = z.object({ id: z.string(), objectiveId: z.string().nullable(), parentThreadId: z.string().nullable(), title: z.string().nullable(), createdAt: z.string() });
export type Thread = z.infer<typeof Thread>;
export const SnapshotExport = z.object({
  id: z.string(),
  format: BundleFormat,
  baseSnapshotId: z.string().nullable(),
  size: z.number().int(),
  sha256: z.string(),
  key: z.string(),
  createdAt: z.string(),
});
export type SnapshotExport = z.infer<typeof SnapshotExport>;
export const Snapshot = z.object({
  id: z.string(),
  environmentId: z.string(),
  threadId: z.string().nullable(),
  runId: z.string().nullable(),
  objectiveId: z.string().nullable(),
  parentId: z.string().nullable(),
  commit: z.string(),
  tree: z.string(),
  files: z.number().int(),
  bytes: z.number().int(),
  message: z.string(),
  createdAt: z.string(),
  exports: z.array(SnapshotExport),
  /** Environments that hold the snapshot (where it was taken, and where it was imported). */
  environments: z.array(z.string()),
});
export type Snapshot = z.infer<typeof Snapshot>;
