/**
 * What leaves the agent names paths as the edge named them: relative to the workspace. A file
 * system error's own message carries the absolute host path ("ENOENT: no such file or directory,
 * open '/srv/…/workspace/a.txt'"); it is rewritten from its errno code, system call and the
 * workspace-relative path, and any other message has the workspace's absolute path taken out.
 * The agent's own directories outside the workspace (its state, the shadow repository, the diff
 * base, the spool) are named by a stand-in, "(agent state)/…", never by their host path.
 */
import { realpathSync } from "node:fs";
import path from "node:path";
import type { AgentFrame } from "@outpost/protocol";
import { AgentError, errnoCode } from "./errors.js";
import { isInside } from "./jail.js";

const ERRNO_TEXT: Record<string, string> = {
  ENOENT: "no such file or directory",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EISDIR: "is a directory",
  ENOTDIR: "not a directory",
  EEXIST: "already exists",
  ENOTEMPTY: "directory not empty",
  ELOOP: "too many levels of symbolic links",
  ENAMETOOLONG: "name too long",
  EINVAL: "invalid argument",
  EXDEV: "crosses file systems",
  EBUSY: "busy",
  ETXTBSY: "text file busy",
  EROFS: "read-only file system",
  ENOSPC: "no space left on the device",
  EDQUOT: "disk quota exceeded",
  EFBIG: "file too large",
  EMFILE: "too many open files",
  ENFILE: "too many open files in the system",
  EIO: "input/output error",
};

/** The workspace as configured and as its real path (they differ when it is reached through a symlink), longest first. */
export function workspaceRoots(workspace: string): string[] {
  const roots = new Set([path.resolve(workspace)]);
  try {
    roots.add(realpathSync(workspace));
  } catch {
    // gone: the configured path is all there is to hide
  }
  return [...roots].sort((a, b) => b.length - a.length);
}

/** A directory of the agent's own (outside the workspace) and the stand-in that names it in messages. */
export type PrivateDir = { root: string; as: string };

/** Each directory as given and as its real path, longest first (a directory inside another is matched first). */
export function privateDirs(dirs: Array<{ dir: string | undefined; as: string }>): PrivateDir[] {
  const out = new Map<string, string>();
  for (const { dir, as } of dirs) {
    if (!dir) continue;
    for (const root of workspaceRoots(dir)) if (root !== path.parse(root).root) out.set(root, as);
  }
  return [...out].map(([root, as]) => ({ root, as })).sort((a, b) => b.root.length - a.root.length);
}

/** `p` as the edge knows it: relative to the workspace ("." for its root), or a stand-in when it is elsewhere. */
export function relativeName(p: string, roots: string[]): string {
  for (const root of roots) {
    if (isInside(root, p)) return path.relative(root, p).split(path.sep).join("/") || ".";
  }
  return "(outside the workspace)";
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * Takes every workspace root out of free text: "<root>/a/b" → "a/b", "<root>" → "." (not
 * "<root>-old/…", another directory); and names each private directory by its stand-in:
 * "<state>/x" → "(agent state)/x". Longest first, so a workspace inside the state directory (a
 * systemd unit's layout) reads as workspace-relative.
 */
export function scrubRoots(text: string, roots: string[], hidden: PrivateDir[] = []): string {
  const all = [...roots.map((root) => ({ root, as: "" })), ...hidden].sort((a, b) => b.root.length - a.root.length);
  let out = text;
  for (const { root, as } of all) {
    const at = new RegExp(`${escape(root)}(?:${escape(path.sep)}|(?![\\w.-]))`, "g");
    out = out.replace(at, (m) => (m.endsWith(path.sep) ? (as ? `${as}/` : "") : as || "."));
  }
  return out;
}

/** The error to send back: the same code, with no absolute workspace or private path in its message. */
export function confineError(err: unknown, roots: string[], hidden: PrivateDir[] = []): unknown {
  if (err instanceof AgentError) return scrubbed(err, roots, hidden);
  const code = errnoCode(err);
  const e = err as { path?: unknown; dest?: unknown; syscall?: unknown; message?: unknown };
  if (code && typeof e.path === "string") {
    const text = ERRNO_TEXT[code] ?? code;
    const dest = typeof e.dest === "string" ? ` -> '${relativeName(e.dest, roots)}'` : "";
    const call = typeof e.syscall === "string" ? `${e.syscall} ` : "";
    return Object.assign(new Error(`${code}: ${text}, ${call}'${relativeName(e.path, roots)}'${dest}`), { code });
  }
  if (err instanceof Error) return Object.assign(new Error(scrubRoots(err.message, roots, hidden)), code ? { code } : {});
  return typeof err === "string" ? scrubRoots(err, roots, hidden) : err;
}

function scrubbed(err: AgentError, roots: string[], hidden: PrivateDir[]): AgentError {
  const message = scrubRoots(err.message, roots, hidden);
  return message === err.message ? err : new AgentError(err.code, message);
}

/**
 * A frame with a free-text message (a run's exit error) put through `scrub` (scrubRoots, as for an
 * error reply); any other frame as it is, without calling `scrub` (a run's output frames are many).
 */
export function confineFrame<F extends AgentFrame>(frame: F, scrub: (text: string) => string): F {
  if (frame.kind !== "run.exit" || frame.error === undefined) return frame;
  return { ...frame, error: scrub(frame.error) };
}
