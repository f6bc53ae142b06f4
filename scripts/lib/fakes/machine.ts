/**
 * What the cloud fakes run things in: a "machine" is a temporary directory on this computer that
 * stands for a sandbox's or a container's own filesystem, and the processes started in it are real
 * processes here (each in its own process group). A real sandbox has its own mount namespace; the
 * fake has none, so it emulates one: the machine's private directories (`/home`, or `/workspace`
 * and `/outpost-state` for a container) are mapped under the temporary directory, and every other
 * path is this computer's (its node, sh and /etc stand for the image). The mapping is applied to
 * the paths the service's API receives: file paths, a process's cwd, argv and environment values.
 */
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { join, posix } from "node:path";
import { spawnGroup, type ProcessGroup } from "../process-group.js";

export type MachineProcess = { id: string; pid: number; tag?: string; group: ProcessGroup; started: number };

export class FakeMachine {
  readonly processes: MachineProcess[] = [];
  #next = 1;

  /**
   * @param root the temporary directory that holds the machine's private directories
   * @param privateDirs absolute paths inside the machine that live under `root` (e.g. `/home`)
   * @param home the machine user's home directory (inside the machine)
   */
  constructor(
    readonly root: string,
    private readonly privateDirs: string[],
    private readonly home: string,
  ) {
    mkdirSync(this.path(home), { recursive: true });
  }

  /** Where a path inside the machine is on this computer (`..` resolved first, so it cannot climb out of `root`). */
  path(inside: string): string {
    const p = posix.normalize(inside);
    return this.isPrivate(p) ? join(this.root, p) : p;
  }

  /**
   * Where a path the service's file API was given is on this computer, or null when it is outside
   * the machine's private folders: the fake has no filesystem of its own there, and writing to this
   * computer's would be wrong.
   */
  filePath(inside: string): string | null {
    const p = posix.normalize(inside);
    return this.isPrivate(p) ? join(this.root, p) : null;
  }

  isPrivate(inside: string): boolean {
    return inside.startsWith("/") && this.privateDirs.some((d) => inside === d || inside.startsWith(`${d}/`));
  }

  /** A whole argv word or environment value that is a private path is mapped; anything else is left alone. */
  word(value: string): string {
    return this.isPrivate(value) ? this.path(value) : value;
  }

  /** A shell command string: every private path that starts a word (or follows a quote or `=`) is mapped. */
  shell(command: string): string {
    let out = command;
    for (const dir of this.privateDirs) {
      const re = new RegExp(`(^|[\\s'"=])${dir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(?=[/'"\\s]|$)`, "g");
      out = out.replace(re, (_m, before: string) => `${before}${join(this.root, dir)}`);
    }
    return out;
  }

  /** Starts a process in the machine: argv, cwd and environment values mapped; HOME is the machine's. */
  start(cmd: string, args: string[], o: { cwd?: string; env?: Record<string, string>; tag?: string } = {}): MachineProcess {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: this.path(this.home), LANG: "C.UTF-8" };
    for (const [k, v] of Object.entries(o.env ?? {})) env[k] = this.word(v);
    const cwd = this.path(o.cwd ?? this.home);
    // "node" is this computer's node (the image's node), whatever PATH the tests run with.
    const file = cmd === "node" ? process.execPath : this.word(cmd);
    const group = spawnGroup(file, args.map((a) => this.word(a)), { cwd, env, keepLines: 100 });
    const p: MachineProcess = { id: String(this.#next++), pid: group.pid, group, started: Date.now(), ...(o.tag ? { tag: o.tag } : {}) };
    this.processes.push(p);
    return p;
  }

  /** Runs a shell command string in the machine (Daytona's process API takes one). */
  startShell(command: string, o: { cwd?: string; env?: Record<string, string> } = {}): MachineProcess {
    return this.start("/bin/sh", ["-c", this.shell(command)], o);
  }

  running(): MachineProcess[] {
    return this.processes.filter((p) => p.group.exit === null);
  }

  /** Kills every process of the machine (SIGKILL, as a service that destroys a sandbox does). */
  async killAll(): Promise<void> {
    await Promise.all(this.processes.map((p) => p.group.stop("SIGKILL", 0).catch(() => undefined)));
  }

  /** Kills everything and removes the machine's directory. */
  async destroy(): Promise<void> {
    await this.killAll();
    rmSync(this.root, { recursive: true, force: true });
  }

  /** What is left of a destroyed machine: live processes, its directory. */
  leftovers(): string[] {
    const left = this.processes.filter((p) => p.group.alive()).map((p) => `process group ${p.pid} (${p.tag ?? "untagged"})`);
    if (existsSync(this.root)) left.push(`the directory ${this.root}`);
    return left;
  }
}
