/**
 * The operations the edge asks of an agent (`request.op`), each with its params and its result.
 * Streams that belong to a request travel as `chunk` frames with `re` = the request id; see wire.ts.
 */
import * as z from "zod";
import * as S from "./snapshots.js";

const Path = z.string().max(4096);
const Base64 = z.string();

/**
 * exec: argv, never a shell unless `shell` is true (then `command` is one string run by /bin/sh -c).
 * With `stream`, stdout and stderr are sent as chunk frames (`stream` names which; base64 data)
 * as they come, and the reply carries empty stdout/stderr; otherwise both are captured (capped) in
 * the reply. `stdin` (base64) is written to the process and then closed; without it stdin is empty.
 * On timeout or cancel the whole process group gets SIGTERM, then SIGKILL after a grace period.
 */
export const ExecParams = z.object({
  command: z.array(z.string().max(65536)).min(1).max(4096),
  cwd: Path.optional(),
  env: z.record(z.string(), z.string()).optional(),
  timeoutMs: z.number().int().positive().max(24 * 3600 * 1000).optional(),
  shell: z.boolean().optional(),
  stream: z.boolean().optional(),
  stdin: Base64.max(16 * 1024 * 1024).optional(),
});
export type ExecParams = z.infer<typeof ExecParams>;

export const ExecResult = z.object({
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable().optional(),
  stdout: z.string(),
  stderr: z.string(),
  durationMs: z.number().nonnegative(),
  timedOut: z.boolean().optional(),
  cancelled: z.boolean().optional(),
  truncated: z.boolean().optional(),
});
export type ExecResult = z.infer<typeof ExecResult>;

/**
 * file.read: the agent sends the bytes as chunk frames (n = 0, 1, …; the last has last: true, an
 * empty file is one empty last chunk), paced by the edge's credit, then the reply.
 */
export const FileReadParams = z.object({ path: Path });
export const FileReadResult = z.object({ size: z.number().int().nonnegative() });
/**
 * file.write: after the request the edge sends the bytes as chunk frames (n = 0, 1, …; the final
 * one has last: true), paced by the agent's credit. The agent writes a temp file beside the target
 * and renames it over the target only when `size` bytes have arrived, so a reader never sees a
 * half-written file.
 */
export const FileWriteParams = z.object({ path: Path, size: z.number().int().nonnegative() });
export const FileWriteResult = z.object({ size: z.number().int().nonnegative() });
export const FileDeleteParams = z.object({ path: Path, recursive: z.boolean().optional() });
export const FileDeleteResult = z.object({ deleted: z.boolean() });

export const FileType = z.enum(["file", "directory", "symlink", "other"]);
export const FileStat = z.object({
  path: z.string(),
  type: FileType,
  size: z.number().int().nonnegative(),
  mtimeMs: z.number(),
  mode: z.number().int(),
});
export type FileStat = z.infer<typeof FileStat>;
export const FileStatParams = z.object({ path: Path });
/** file.list: the entries of a directory ("" or "." is the workspace root); recursive walks the tree. */
export const FileListParams = z.object({
  path: Path,
  recursive: z.boolean().optional(),
  maxEntries: z.number().int().positive().max(100_000).optional(),
});
export const FileListResult = z.object({ entries: z.array(FileStat), truncated: z.boolean() });
export const FileMkdirParams = z.object({ path: Path, recursive: z.boolean().optional() });
export const FileMkdirResult = z.object({ created: z.boolean() });
export const FileMoveParams = z.object({ from: Path, to: Path, overwrite: z.boolean().optional() });
export const FileMoveResult = z.object({ moved: z.boolean() });
export const FileCopyParams = z.object({ from: Path, to: Path, overwrite: z.boolean().optional() });
export const FileCopyResult = z.object({ copied: z.boolean() });

/**
 * diff: what changed in the workspace against its base: git HEAD when the workspace is a git
 * repository, otherwise the state recorded when the agent first started in it.
 */
export const DiffParams = z.object({ maxFileBytes: z.number().int().positive().max(16 * 1024 * 1024).optional() });
export const DiffFile = z.object({
  path: z.string(),
  status: z.enum(["added", "modified", "deleted", "renamed"]),
  from: z.string().optional(),
  binary: z.boolean(),
  diff: z.string().optional(),
  truncated: z.boolean().optional(),
});
export const DiffResult = z.object({ base: z.enum(["git", "snapshot"]), files: z.array(DiffFile) });
export type DiffResult = z.infer<typeof DiffResult>;

/**
 * run.start: start a long-lived agent process (the remote agent loop) in the workspace. `message`
 * is written to its stdin (then closed) and set as OUTPOST_RUN_MESSAGE. Output and exit are reported
 * by `run.output` and `run.exit` frames, which are reliable and outlive disconnects.
 */
export const RunStartParams = z.object({
  runId: z.string().min(1).max(128),
  command: z.array(z.string().max(65536)).min(1).max(4096),
  env: z.record(z.string(), z.string()).optional(),
  message: z.string().max(1024 * 1024).optional(),
  /** The run's place in the hierarchy: its end snapshot goes on this thread. */
  threadId: z.string().max(128).optional(),
  objectiveId: z.string().max(128).optional(),
});
export const RunStartResult = z.object({ pid: z.number().int() });
export const RunCancelParams = z.object({ runId: z.string().min(1).max(128) });
export const RunCancelResult = z.object({ cancelled: z.boolean() });

/** shutdown: the environment is being stopped; the agent replies, ends its work and exits. */
export const ShutdownParams = z.object({ reason: z.string().max(512) });
export const ShutdownResult = z.object({});

/**
 * token.renew: the control plane issued this environment's agent a new token (same generation, a
 * changed spawn scope); the agent uses it from now on for its local endpoint and reconnects.
 */
export const TokenRenewParams = z.object({ token: z.string().min(1).max(16384) });
export const TokenRenewResult = z.object({});

export const Ops = {
  exec: { params: ExecParams, result: ExecResult },
  "file.read": { params: FileReadParams, result: FileReadResult },
  "file.write": { params: FileWriteParams, result: FileWriteResult },
  "file.delete": { params: FileDeleteParams, result: FileDeleteResult },
  "file.stat": { params: FileStatParams, result: FileStat },
  "file.list": { params: FileListParams, result: FileListResult },
  "file.mkdir": { params: FileMkdirParams, result: FileMkdirResult },
  "file.move": { params: FileMoveParams, result: FileMoveResult },
  "file.copy": { params: FileCopyParams, result: FileCopyResult },
  diff: { params: DiffParams, result: DiffResult },
  "run.start": { params: RunStartParams, result: RunStartResult },
  "run.cancel": { params: RunCancelParams, result: RunCancelResult },
  shutdown: { params: ShutdownParams, result: ShutdownResult },
  "token.renew": { params: TokenRenewParams, result: TokenRenewResult },
  "snapshot.take": { params: S.SnapshotTakeParams, result: S.SnapshotTaken },
  "snapshot.bundle": { params: S.SnapshotBundleParams, result: S.SnapshotBundleResult },
  "snapshot.read": { params: S.SnapshotReadParams, result: S.SnapshotReadResult },
  "snapshot.import": { params: S.SnapshotImportParams, result: S.SnapshotImportResult },
  "snapshot.diff": { params: S.SnapshotDiffParams, result: S.SnapshotDiffResult },
  "snapshot.branch": { params: S.SnapshotBranchParams, result: S.SnapshotBranchResult },
} as const;
export type OpName = keyof typeof Ops;
export type OpParams<O extends OpName> = z.infer<(typeof Ops)[O]["params"]>;
export type OpResult<O extends OpName> = z.infer<(typeof Ops)[O]["result"]>;
export const OpName = z.enum(Object.keys(Ops) as [OpName, ...OpName[]]);
export type FileReadResult = z.infer<typeof FileReadResult>;
export type FileWriteResult = z.infer<typeof FileWriteResult>;
export type FileDeleteResult = z.infer<typeof FileDeleteResult>;
