/**
 * What the e2b and daytona fakes have in common: a fleet of sandboxes, each a FakeMachine in a
 * directory of its own under the fake's, looked up by the `:id` of a call after its key is checked,
 * removed for good (its processes killed, its directory gone, then checked by `leftovers`), and
 * file uploads and folders confined to the sandbox's writable folders. Each fake keeps its own
 * routes, shapes and error bodies.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import type { ServerResponse } from "node:http";
import { dirname, join } from "node:path";
import type { CloudFake } from "./cloud-fake.js";
import { FakeMachine } from "./machine.js";
import { FakeService, type Call } from "./service.js";

export interface FakeSandbox {
  readonly id: string;
  readonly machine: FakeMachine;
}

export interface FleetOptions<S extends FakeSandbox> {
  /** Holds one directory per sandbox. */
  dir: string;
  /** Answers a call without the right key (and returns false), or returns true. */
  authorized: (call: Call, res: ServerResponse) => boolean;
  /** Answers a call that names no sandbox of this fleet. */
  notFound: (res: ServerResponse, id: string) => void;
  /** How `leftovers` names a sandbox still there, e.g. "e2b sandbox ID (GET /sandboxes lists it)". */
  describe: (id: string) => string;
  /** Runs when a sandbox is removed, before its machine is destroyed (timers of its own). */
  onRemove?: (s: S) => void;
}

export class SandboxFleet<S extends FakeSandbox> {
  readonly #sandboxes = new Map<string, S>();
  readonly #destroyed: FakeMachine[] = [];

  private constructor(
    readonly service: FakeService,
    private readonly o: FleetOptions<S>,
  ) {}

  static async start<S extends FakeSandbox>(o: FleetOptions<S>): Promise<SandboxFleet<S>> {
    mkdirSync(o.dir, { recursive: true });
    return new SandboxFleet<S>(await FakeService.start(), o);
  }

  /** A new machine for sandbox `id`: `writable` folders private to it, `home` its user's. */
  machine(id: string, writable: string[], home: string): FakeMachine {
    return new FakeMachine(join(this.o.dir, id), writable, home);
  }

  add(s: S): S {
    this.#sandboxes.set(s.id, s);
    return s;
  }

  get(id: string | undefined): S | undefined {
    return this.#sandboxes.get(id ?? "");
  }

  all(): S[] {
    return [...this.#sandboxes.values()];
  }

  /** The sandbox the call's `:id` names, once its key is checked; null when the answer was given already. */
  lookup(call: Call, res: ServerResponse): S | null {
    if (!this.o.authorized(call, res)) return null;
    const s = this.#sandboxes.get(call.params.id ?? "");
    if (!s) this.o.notFound(res, call.params.id ?? "");
    return s ?? null;
  }

  /** Removes a sandbox for good: its processes killed, its directory removed (and checked by leftovers). */
  async remove(s: S): Promise<void> {
    this.#sandboxes.delete(s.id);
    this.o.onRemove?.(s);
    this.#destroyed.push(s.machine);
    await s.machine.destroy();
  }

  /** The CloudFake the conformance kit holds: config for the provider, leftovers, close. */
  cloudFake(provider: string, config: Record<string, unknown>): CloudFake {
    return {
      provider,
      service: this.service,
      config,
      leftovers: () => [...[...this.#sandboxes.keys()].map(this.o.describe), ...this.#destroyed.flatMap((m) => m.leftovers())],
      close: async () => {
        for (const s of this.all()) await this.remove(s);
        await this.service.close();
      },
    };
  }
}

/** Writes an uploaded file at `target` (a path inside the sandbox); false when it is outside its writable folders. */
export function uploadInto(machine: FakeMachine, target: string, data: Buffer): boolean {
  const file = machine.filePath(target);
  if (!file) return false;
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, data);
  return true;
}

/** Makes a folder (and its parents) at `target` inside the sandbox; says whether it was there already or is outside its writable folders. */
export function folderInto(machine: FakeMachine, target: string, mode?: number): "made" | "exists" | "outside" {
  const dir = machine.filePath(target);
  if (!dir) return "outside";
  if (existsSync(dir)) return "exists";
  mkdirSync(dir, { recursive: true, ...(mode === undefined ? {} : { mode }) });
  return "made";
}
