/** Failures the agent reports over the wire: a code from the protocol and a message, never a stack. */
import type { ErrorCode, ErrorInfo } from "@outpost/protocol";

/** `cancelled` answers a cancel frame; the protocol's ERROR_STATUS has no entry for it yet. */
export type AgentErrorCode = ErrorCode | "cancelled";

export class AgentError extends Error {
  constructor(
    readonly code: AgentErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "AgentError";
  }
}

/**
 * What a file system refusal means for the caller: the path or the workspace's state is at fault
 * (a 4xx), or the disk is full (507), rather than an unexplained agent failure (502).
 */
const ERRNO_CODES: Record<string, AgentErrorCode> = {
  ENAMETOOLONG: "invalid_path",
  ELOOP: "invalid_path",
  EINVAL: "invalid_path",
  ENOENT: "not_found",
  ENOTDIR: "conflict",
  EISDIR: "conflict",
  EEXIST: "conflict",
  ENOTEMPTY: "conflict",
  EXDEV: "conflict",
  EBUSY: "conflict",
  ETXTBSY: "conflict",
  EACCES: "forbidden",
  EPERM: "forbidden",
  EROFS: "forbidden",
  ENOSPC: "no_space",
  EDQUOT: "no_space",
  EFBIG: "no_space",
};

export function toErrorInfo(err: unknown): ErrorInfo {
  if (err instanceof AgentError) return { code: err.code, message: err.message };
  const message = err instanceof Error ? err.message : String(err);
  const mapped = ERRNO_CODES[errnoCode(err) ?? ""];
  return { code: mapped ?? "agent_error", message: message || "unexpected agent failure" };
}

export function errnoCode(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && "code" in err && typeof err.code === "string" ? err.code : undefined;
}
