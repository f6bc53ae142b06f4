/**
 * The host's memory of what it manages: one record per environment (provider, resource id, the
 * provider's notes), in a file outside every workspace, written atomically after every change. It is
 * what the host reports in its hello, and the only thing it will ever tear down: a resource id the
 * control plane names but this file does not know is never touched. A lock file beside it keeps a
 * second host process off the same state.
 */
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as z from "zod";
import type { HostResource } from "@outpost/protocol";
import { errnoCode } from "../errors.js";
import { alive } from "./processes.js";

const ResourceRecord = z.object({
  environmentId: z.string().min(1),
  provider: z.string().min(1),
  resourceId: z.string().min(1).max(512),
  notes: z.record(z.string(), z.string()).default({}),
  createdAt: z.string(),
});
export type ResourceRecord = z.infer<typeof ResourceRecord>;

const HostStateFile = z.object({ host: z.string(), resources: z.array(ResourceRecord) });

/** `$XDG_STATE_HOME/outpost-agent/host-<name>.json`, or `~/.local/state/outpost-agent/host-<name>.json`. */
export function defaultHostStatePath(name: string, env: NodeJS.ProcessEnv, home: string = os.homedir()): string {
  const base = env.XDG_STATE_HOME && path.isAbsolute(env.XDG_STATE_HOME) ? env.XDG_STATE_HOME : path.join(home, ".local", "state");
  return path.join(base, "outpost-agent", `host-${name}.json`);
}

/** Beside the state file: `host-<name>/` holds one runtime directory per environment. */
export function runtimeRootFor(stateFile: string): string {
  return path.join(path.dirname(stateFile), path.basename(stateFile, ".json"));
}

export class HostStateError extends Error {}

export class HostState {
  #records = new Map<string, ResourceRecord>();
  #locked = false;

  private constructor(
    readonly file: string,
    readonly host: string,
  ) {}

  /** Locks and reads the file (missing: empty). A malformed file or one of another host is an error, never silently reset. */
  static open(file: string, host: string): HostState {
    const state = new HostState(file, host);
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    state.#lock();
    try {
      state.#read();
    } catch (err) {
      state.close();
      throw err;
    }
    return state;
  }

  get size(): number {
    return this.#records.size;
  }

  get(environmentId: string): ResourceRecord | undefined {
    return this.#records.get(environmentId);
  }

  list(): ResourceRecord[] {
    return [...this.#records.values()];
  }

  resources(): HostResource[] {
    return this.list().map(({ environmentId, provider, resourceId }) => ({ environmentId, provider, resourceId }));
  }

  put(record: Omit<ResourceRecord, "createdAt"> & { createdAt?: string }): void {
    const createdAt = record.createdAt ?? this.#records.get(record.environmentId)?.createdAt ?? new Date().toISOString();
    this.#records.set(record.environmentId, { ...record, createdAt });
    this.#write();
  }

  remove(environmentId: string): boolean {
    const had = this.#records.delete(environmentId);
    if (had) this.#write();
    return had;
  }

  close(): void {
    if (!this.#locked) return;
    this.#locked = false;
    rmSync(this.#lockFile, { force: true });
  }

  get #lockFile(): string {
    return `${this.file}.lock`;
  }

  #lock(): void {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(this.#lockFile, "wx", 0o600);
        writeSync(fd, `${process.pid}\n`);
        closeSync(fd);
        this.#locked = true;
        return;
      } catch (err) {
        if (errnoCode(err) !== "EEXIST") throw new HostStateError(`cannot create the lock ${this.#lockFile}: ${err instanceof Error ? err.message : String(err)}`);
      }
      const holder = Number(readFileSync(this.#lockFile, "utf8").trim());
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && alive(holder)) {
        throw new HostStateError(`the state file ${this.file} is in use by another host process (pid ${holder})`);
      }
      // Left by a host that died: take it over.
      rmSync(this.#lockFile, { force: true });
    }
    throw new HostStateError(`cannot lock ${this.file}`);
  }

  #read(): void {
    let text: string;
    try {
      text = readFileSync(this.file, "utf8");
    } catch (err) {
      if (errnoCode(err) === "ENOENT") return;
      throw new HostStateError(`cannot read the state file ${this.file}: ${err instanceof Error ? err.message : String(err)}`);
    }
    let parsed;
    try {
      parsed = HostStateFile.safeParse(JSON.parse(text));
    } catch {
      throw new HostStateError(`the state file ${this.file} is not valid JSON; fix or move it (it lists the environments this host manages)`);
    }
    if (!parsed.success) throw new HostStateError(`the state file ${this.file} is malformed: ${parsed.error.issues[0]?.message ?? "invalid"}`);
    if (parsed.data.host !== this.host) throw new HostStateError(`the state file ${this.file} belongs to host '${parsed.data.host}', not '${this.host}'`);
    for (const r of parsed.data.resources) this.#records.set(r.environmentId, r);
  }

  #write(): void {
    const temp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(temp, `${JSON.stringify({ host: this.host, resources: this.list() }, null, 2)}\n`, { mode: 0o600 });
    renameSync(temp, this.file);
  }
}
