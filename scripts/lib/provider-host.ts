/**
 * `outpost-agent host` as a separate process, as an operator runs it: a host token issued by the
 * control plane (`POST /v1/hosts/tokens`), its state and environments under one directory, and a
 * wait until the registry shows it connected. Used by the end-to-end tests and the conformance kit.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { OutpostClient } from "./api.js";
import { AGENT_LAUNCHER } from "./agent-process.js";
import { ROOT } from "./dev-vars.js";
import { spawnGroup, type ProcessGroup } from "./process-group.js";
import { waitFor } from "./wait.js";

export interface ProviderHostOptions {
  /** An admin of the org the host joins. */
  admin: OutpostClient;
  name: string;
  /** Holds `state/` (XDG_STATE_HOME: the host's state file, agents' runtime dirs) and `environments/` (--root). */
  dir: string;
  /** More flags: `--providers docker`, `--capabilities gpu`, `--provider-dir DIR`, … */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

export interface ProviderHost {
  name: string;
  dir: string;
  /** `--root`: where directory-backed providers put `<environment id>/`. */
  root: string;
  process: ProcessGroup;
  /** SIGTERM (the host finishes what is under way and exits; environments keep running), SIGKILL after the grace. */
  stop(): Promise<void>;
}

export type HostView = { name: string; connected: boolean; providers: Array<{ id: string }>; capabilities: string[] };

export async function listHosts(admin: OutpostClient): Promise<HostView[]> {
  const res = await admin.request("GET", "/v1/hosts");
  if (!res.ok) throw new Error(`GET /v1/hosts: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { hosts: HostView[] }).hosts;
}

export async function startProviderHost(o: ProviderHostOptions): Promise<ProviderHost> {
  const res = await o.admin.request("POST", "/v1/hosts/tokens", { json: { name: o.name } });
  if (res.status !== 201) throw new Error(`POST /v1/hosts/tokens: ${res.status} ${await res.text()}`);
  const { token } = (await res.json()) as { token: string };
  const root = join(o.dir, "environments");
  mkdirSync(root, { recursive: true });
  const env = { ...process.env, ...o.env, OUTPOST_HOST_TOKEN: token, XDG_STATE_HOME: join(o.dir, "state") };
  const p = spawnGroup(process.execPath, [AGENT_LAUNCHER, "host", "--url", o.admin.url, "--root", root, ...(o.args ?? [])], { cwd: ROOT, env });
  try {
    await waitFor(async () => (await listHosts(o.admin)).some((x) => x.name === o.name && x.connected), {
      timeoutMs: o.timeoutMs ?? 20_000,
      what: `host ${o.name} to register`,
      failIf: () => (p.exit ? `the host exited (${p.exit.code ?? p.exit.signal}):\n${p.output()}` : null),
    });
  } catch (err) {
    p.kill();
    throw err;
  }
  return {
    name: o.name,
    dir: o.dir,
    root,
    process: p,
    async stop() {
      await p.stop("SIGTERM", 5_000).catch(() => p.kill());
    },
  };
}
