/**
 * What changed in a git workspace against HEAD, read with git itself: `git status` for the list,
 * `git diff` per file for the text. Always argv, never a shell; read-only (no optional locks, no
 * fsmonitor hook, no external diff or textconv programs); pathspecs taken literally.
 */
import { lstat } from "node:fs/promises";
import path from "node:path";
import { AgentError } from "../errors.js";
import { runGit, type GitRun } from "./git-runner.js";

/** The id of git's empty tree: the base of a repository that has no commit yet. */
export const EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
const NULL_OID = /^0+$/;

export type GitChange = {
  path: string;
  status: "added" | "modified" | "deleted" | "renamed";
  from?: string;
  /** How to get its text: against the base, as an untracked file, or an exact rename with no text change. */
  source: "tracked" | "untracked" | "moved";
};

/** Runs git in the workspace (see git-runner.ts); keeps at most `maxBytes` of stdout (then stops git) and says so. */
export async function git(workspace: string, args: string[], options: { maxBytes?: number; input?: string } = {}): Promise<GitRun & { truncated: boolean }> {
  const r = await runGit(["-C", workspace, "-c", "core.fsmonitor=false", "-c", "core.quotePath=false", ...args], {
    env: { GIT_OPTIONAL_LOCKS: "0", GIT_LITERAL_PATHSPECS: "1", GIT_TERMINAL_PROMPT: "0", LC_ALL: "C" },
    maxBytes: options.maxBytes ?? 64 * 1024 * 1024,
    ...(options.input === undefined ? {} : { input: options.input }),
  });
  return { ...r, truncated: r.truncated ?? false };
}

async function gitOk(workspace: string, args: string[], input?: string): Promise<Buffer> {
  const r = await git(workspace, args, input === undefined ? {} : { input });
  if (r.code !== 0) throw new AgentError("agent_error", `git ${args[0]} failed: ${r.stderr || `exit code ${r.code}`}`);
  return r.stdout;
}

/** Whether the workspace is a git repository of its own (a `.git` directory or file at its root). */
export async function isGitWorkspace(workspace: string): Promise<boolean> {
  return (await lstat(path.join(workspace, ".git")).catch(() => null)) !== null;
}

/** HEAD, or the empty tree in a repository without commits. */
export async function gitBase(workspace: string): Promise<string> {
  const r = await git(workspace, ["rev-parse", "--verify", "-q", "HEAD^{commit}"]);
  return r.code === 0 ? "HEAD" : EMPTY_TREE;
}

type Deleted = { path: string; headOid: string };

/** Files that differ from HEAD (staged or not) and untracked files, with renames. */
export async function gitChanges(workspace: string): Promise<GitChange[]> {
  const raw = await gitOk(workspace, ["status", "--porcelain=v2", "-z", "--untracked-files=all", "--find-renames"]);
  const tokens = raw.toString("utf8").split("\0");
  const changes: GitChange[] = [];
  const deleted: Deleted[] = [];
  const untracked: string[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const line = tokens[i] as string;
    if (line === "") continue;
    const fields = line.split(" ");
    const kind = fields[0];
    if (kind === "?") untracked.push(line.slice(2));
    else if (kind === "1") {
      const [x, y] = [...(fields[1] as string)];
      const file = fields.slice(8).join(" ");
      const headOid = fields[6] as string;
      const inHead = !NULL_OID.test(headOid);
      const inWorktree = y !== "D" && !(x === "D" && y === ".");
      if (!inHead && !inWorktree) continue; // added to the index, then removed from the disk
      if (!inHead) changes.push({ path: file, status: "added", source: "tracked" });
      else if (!inWorktree) {
        if (x === ".") deleted.push({ path: file, headOid });
        else changes.push({ path: file, status: "deleted", source: "tracked" });
      } else changes.push({ path: file, status: "modified", source: "tracked" });
    } else if (kind === "2") {
      const xy = fields[1] as string;
      const score = fields[8] as string;
      const file = fields.slice(9).join(" ");
      const from = tokens[++i] as string;
      if (xy[1] === "D") changes.push({ path: from, status: "deleted", source: "tracked" });
      else if (score.startsWith("C")) changes.push({ path: file, status: "added", source: "tracked" });
      else changes.push({ path: file, status: "renamed", from, source: "tracked" });
    } else if (kind === "u") {
      changes.push({ path: fields.slice(10).join(" "), status: "modified", source: "tracked" });
    }
  }
  const moved = await pairExactRenames(workspace, deleted, untracked);
  for (const d of deleted) {
    const to = moved.get(d.path);
    if (to) changes.push({ path: to, status: "renamed", from: d.path, source: "moved" });
    else changes.push({ path: d.path, status: "deleted", source: "tracked" });
  }
  const taken = new Set(moved.values());
  for (const u of untracked) if (!taken.has(u)) changes.push({ path: u, status: "added", source: "untracked" });
  return changes.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * A file moved without `git mv` shows as deleted plus untracked; when the untracked file has the
 * deleted one's exact content it is reported as a rename. Only untracked files of a matching size
 * are hashed.
 */
async function pairExactRenames(workspace: string, deleted: Deleted[], untracked: string[]): Promise<Map<string, string>> {
  const pairs = new Map<string, string>();
  if (deleted.length === 0 || untracked.length === 0) return pairs;
  const sizes = (await gitOk(workspace, ["cat-file", "--batch-check=%(objectname) %(objectsize)"], deleted.map((d) => d.headOid).join("\n") + "\n"))
    .toString("utf8")
    .trim()
    .split("\n")
    .map((l) => Number(l.split(" ")[1]));
  const wanted = new Set(sizes.filter((s) => Number.isFinite(s)));
  const candidates: string[] = [];
  for (const u of untracked) {
    const st = await lstat(path.join(workspace, u)).catch(() => null);
    if (st?.isFile() && wanted.has(st.size)) candidates.push(u);
  }
  if (candidates.length === 0) return pairs;
  const oids = (await gitOk(workspace, ["hash-object", "--stdin-paths"], candidates.join("\n") + "\n")).toString("utf8").trim().split("\n");
  const byOid = new Map<string, string>();
  candidates.forEach((c, i) => {
    const oid = oids[i];
    if (oid && !byOid.has(oid)) byOid.set(oid, c);
  });
  for (const d of deleted) {
    const to = byOid.get(d.headOid);
    if (to) {
      pairs.set(d.path, to);
      byOid.delete(d.headOid);
    }
  }
  return pairs;
}

export type FileText = { binary: boolean; diff?: string; truncated?: boolean };

const DIFF_FLAGS = ["--no-color", "--no-ext-diff", "--no-textconv", "--src-prefix=a/", "--dst-prefix=b/"];

/** The unified diff of one change, at most `maxBytes` of it. */
export async function gitFileDiff(workspace: string, base: string, change: GitChange, maxBytes: number): Promise<FileText> {
  if (change.source === "moved") {
    return { binary: false, diff: `diff --git a/${change.from} b/${change.path}\nsimilarity index 100%\nrename from ${change.from}\nrename to ${change.path}\n` };
  }
  const args =
    change.source === "untracked"
      ? ["diff", "--no-index", ...DIFF_FLAGS, "--", "/dev/null", change.path]
      : change.status === "renamed"
        ? ["diff", base, "-M", ...DIFF_FLAGS, "--", change.from as string, change.path]
        : ["diff", base, ...DIFF_FLAGS, "--", change.path];
  const r = await git(workspace, args, { maxBytes });
  // `diff --no-index` exits 1 when the files differ; a truncated run was stopped by us.
  if (!r.truncated && r.code !== 0 && r.code !== 1) throw new AgentError("agent_error", `git diff failed for ${change.path}: ${r.stderr || `exit code ${r.code}`}`);
  const text = r.stdout.toString("utf8");
  if (/^Binary files .* differ$/m.test(text) || text.includes("\nGIT binary patch\n")) return { binary: true };
  return clip(text, maxBytes, r.truncated);
}

/** Cuts diff text to `maxBytes` at a line boundary. */
export function clip(text: string, maxBytes: number, alreadyCut = false): FileText {
  if (!alreadyCut && Buffer.byteLength(text) <= maxBytes) return { binary: false, diff: text };
  let cut = Buffer.from(text).subarray(0, maxBytes).toString("utf8");
  const nl = cut.lastIndexOf("\n");
  cut = nl >= 0 ? cut.slice(0, nl + 1) : "";
  // A multi-byte character split at the cap decodes as U+FFFD; never leave a half line.
  return { binary: false, diff: cut, truncated: true };
}
