/**
 * What must outlive the agent process so a restarted agent continues the link where the last one
 * stopped: the highest edge seq processed (`recv`, sent as hello's ack so the edge does not resend
 * what was done) and the highest seq this agent may have used (`lastSeq`, so seqs never repeat).
 *
 * Writes are atomic (temp file + rename) and synchronous (the file is tiny): debounced to at most one
 * a second for `recv`, immediate when a new block of seqs is reserved, and final on exit. While the
 * agent runs, the file's lastSeq is the reserved ceiling; a clean exit writes the exact value.
 * The file lives outside the workspace, which belongs to the commands the agent runs.
 */
import { mkdirSync, readFileSync, realpathSync, renameSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as z from "zod";
import type { Clock, TimerHandle } from "./clock.js";
import { errnoCode } from "./errors.js";
import type { Logger } from "./log.js";

export const STATE_WRITE_INTERVAL_MS = 1_000;

const AgentState = z.object({
  environmentId: z.string().min(1),
  resourceId: z.string().max(512).optional(),
  recv: z.number().int().nonnegative(),
  lastSeq: z.number().int().nonnegative(),
});
export type AgentState = z.infer<typeof AgentState>;

/** `$XDG_STATE_HOME/outpost-agent/<env>.json`, or `~/.local/state/outpost-agent/<env>.json`. */
export function defaultStatePath(environmentId: string, env: NodeJS.ProcessEnv, home: string = os.homedir()): string {
  const base = env.XDG_STATE_HOME && path.isAbsolute(env.XDG_STATE_HOME) ? env.XDG_STATE_HOME : path.join(home, ".local", "state");
  return path.join(base, "outpost-agent", `${environmentId}.json`);
}

/** True when `file` (which may not exist yet) is the workspace or lies inside it, symlinks resolved. */
export function insideWorkspace(file: string, workspace: string): boolean {
  const root = realpathSync(workspace);
  const target = realExisting(path.resolve(file));
  const rel = path.relative(root, target);
  return rel === "" || (!rel.startsWith(`..${path.sep}`) && rel !== ".." && !path.isAbsolute(rel));
}

/** The real path of the deepest existing ancestor, with the part that does not exist yet appended. */
function realExisting(file: string): string {
  const rest: string[] = [];
  let at = file;
  for (;;) {
    try {
      return path.join(realpathSync(at), ...rest.reverse());
    } catch {
      const parent = path.dirname(at);
      if (parent === at) return file;
      rest.push(path.basename(at));
      at = parent;
    }
  }
}

/** Reads the state for `environmentId`; anything missing, unreadable or for another environment starts fresh. */
export function loadState(file: string, environmentId: string, log: Logger): AgentState {
  const fresh: AgentState = { environmentId, recv: 0, lastSeq: 0 };
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    if (errnoCode(err) !== "ENOENT") log.warn(`cannot read the state file ${file} (${err instanceof Error ? err.message : String(err)}); starting fresh`);
    return fresh;
  }
  let parsed: ReturnType<typeof AgentState.safeParse>;
  try {
    parsed = AgentState.safeParse(JSON.parse(text));
  } catch {
    log.warn(`the state file ${file} is not valid JSON; starting fresh`);
    return fresh;
  }
  if (!parsed.success) {
    log.warn(`the state file ${file} is malformed; starting fresh`);
    return fresh;
  }
  if (parsed.data.environmentId !== environmentId) {
    log.warn(`the state file ${file} belongs to environment ${parsed.data.environmentId}, not ${environmentId}; starting fresh`);
    return fresh;
  }
  return parsed.data;
}

export class StateStore {
  #state: AgentState;
  #ceiling: number;
  #dirty = false;
  #lastWrite = -Infinity;
  #timer: TimerHandle | null = null;
  #closed = false;

  constructor(
    readonly file: string,
    initial: AgentState,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    this.#state = { ...initial };
    this.#ceiling = initial.lastSeq;
  }

  get state(): AgentState {
    return { ...this.#state };
  }

  /** Writes the file now (creating its folder), so a bad location shows up at start, not at exit. */
  init(): void {
    mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
    this.#write(true);
  }

  /** Records progress; the file follows within STATE_WRITE_INTERVAL_MS. */
  update(progress: { recv?: number; lastSeq?: number }): void {
    if (this.#closed) return;
    const next = { ...this.#state, ...progress };
    if (next.recv === this.#state.recv && next.lastSeq === this.#state.lastSeq) return;
    this.#state = next;
    this.#dirty = true;
    if (this.#timer) return;
    const wait = Math.max(0, this.#lastWrite + STATE_WRITE_INTERVAL_MS - this.clock.now());
    this.#timer = this.clock.setTimeout(() => {
      this.#timer = null;
      if (this.#dirty) this.#write();
    }, wait);
  }

  /** Seqs up to `ceiling` may be used from now on: on disk before the first of them is sent. */
  reserve(ceiling: number): void {
    if (ceiling <= this.#ceiling) return;
    this.#ceiling = ceiling;
    this.#write();
  }

  /** The final write, with the exact last seq; later updates are ignored. */
  close(final: { recv: number; lastSeq: number }): void {
    if (this.#closed) return;
    if (this.#timer) this.clock.clearTimeout(this.#timer);
    this.#timer = null;
    this.#state = { ...this.#state, ...final };
    this.#ceiling = final.lastSeq;
    this.#closed = true;
    this.#write();
  }

  #write(strict = false): void {
    const content = { ...this.#state, lastSeq: Math.max(this.#state.lastSeq, this.#ceiling) };
    const temp = `${this.file}.${process.pid}.tmp`;
    try {
      writeFileSync(temp, `${JSON.stringify(content)}\n`, { mode: 0o600 });
      renameSync(temp, this.file);
      this.#dirty = false;
      this.#lastWrite = this.clock.now();
    } catch (err) {
      if (strict) throw err;
      this.log.warn(`cannot write the state file ${this.file}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}
