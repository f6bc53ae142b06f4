/**
 * The provider conformance kit: drives one provider through the whole contract against a real
 * control plane, a real `outpost-agent host` and the real agent it starts, the way a user would
 * through the HTTP API, and says which steps held. The host and its agents reach the control plane
 * through a TCP proxy, so the kit can cut their links. Used by `npm run conformance` and its tests.
 */
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import { OutpostClient } from "./api.js";
import { processesMentioning } from "./processes.js";
import { listHosts, startProviderHost, type ProviderHost } from "./provider-host.js";
import { startTcpProxy, type TcpProxy } from "./tcp-proxy.js";
import { waitFor } from "./wait.js";

export interface ConformanceOptions {
  /** The provider's id (a built-in, or one in `providerDirs`). */
  provider: string;
  /** Directories of external providers to load (`--provider-dir`). */
  providerDirs?: string[];
  /** The environment's config. */
  config?: Record<string, unknown>;
  /** More flags for the host (`--capabilities …`). */
  hostArgs?: string[];
  /** A running control plane and an admin of an org in it. */
  admin: OutpostClient;
  /** Where the host keeps its state and environments; the kit creates it. */
  dir: string;
  /** Bound on each wait. Default 30 s. */
  stepTimeoutMs?: number;
  /** More things that must be gone after teardown (a provider's own leftovers check). */
  leftovers?: (env: { id: string; resourceId: string }) => string[] | Promise<string[]>;
  log?: (line: string) => void;
}

export type StepResult = { step: string; ok: boolean | null; ms: number; detail?: string };

/** The contract, in order; a step runs only when every earlier one held. */
export const STEPS = [
  "host registers",
  "create",
  "running",
  "exec",
  "files",
  "path jail",
  "diff",
  "reconnect after a cut link",
  "recover by resource id",
  "stop",
  "teardown leaves nothing",
] as const;
export type Step = (typeof STEPS)[number];

type Env = { id: string; state: string; host: string | null; provider: string; resourceId: string | null; connected: boolean };

class StepFailed extends Error {}
const check = (cond: unknown, message: string): void => {
  if (!cond) throw new StepFailed(message);
};

export async function runConformance(o: ConformanceOptions): Promise<StepResult[]> {
  const results: StepResult[] = [];
  const timeoutMs = o.stepTimeoutMs ?? 30_000;
  const log = o.log ?? (() => {});
  const admin = o.admin;
  let proxy: TcpProxy | undefined;
  let host: ProviderHost | undefined;
  let env: Env | undefined;
  const hostName = `conf-${o.provider}`.slice(0, 60).replace(/[^a-z0-9-]/g, "-");
  const api = async <T>(method: string, path: string, json?: unknown, expectStatus = 200): Promise<T> => {
    const res = await admin.request(method, path, json === undefined ? {} : { json, timeoutMs: 60_000 });
    const text = await res.text();
    check(res.status === expectStatus, `${method} ${path}: expected ${expectStatus}, got ${res.status}: ${text.slice(0, 300)}`);
    return (text ? JSON.parse(text) : null) as T;
  };
  const getEnv = async () => (await api<{ environment: Env }>("GET", `/v1/environments/${env!.id}`)).environment;
  const exec = (command: string[]) => api<{ exitCode: number; stdout: string; stderr: string }>("POST", `/v1/environments/${env!.id}/exec`, { command, timeoutMs: 20_000 });
  const running = (what: string) => waitFor(async () => (await getEnv()).state === "running" && (await getEnv()).connected, { timeoutMs, what, failIf: hostDied });
  const hostDied = () => (host?.process.exit ? `the host exited:\n${host.process.output()}` : null);
  const events = async () => (await api<{ events: Array<{ type: string; data: Record<string, unknown> }> }>("GET", `/v1/environments/${env!.id}/events?limit=1000`)).events;

  const steps: Record<Step, () => Promise<string | void>> = {
    "host registers": async () => {
      const port = Number(new URL(admin.url).port);
      proxy = await startTcpProxy(port);
      const proxied = new OutpostClient(`http://127.0.0.1:${proxy.port}`, admin.token);
      const dirs = (o.providerDirs ?? []).flatMap((d) => ["--provider-dir", d]);
      host = await startProviderHost({ admin: proxied, name: hostName, dir: o.dir, args: ["--providers", o.provider, ...dirs, ...(o.hostArgs ?? [])], timeoutMs });
      const offered = (await listHosts(admin)).find((h) => h.name === hostName);
      check(offered?.providers.some((p) => p.id === o.provider), `the host does not offer ${o.provider}`);
      return `through a TCP proxy on port ${proxy.port}`;
    },
    create: async () => {
      // Created through the proxy: the URL the agent is told to dial is the one the request came in on.
      const proxied = new OutpostClient(`http://127.0.0.1:${proxy!.port}`, admin.token);
      const res = await proxied.request("POST", "/v1/environments", { json: { name: `conformance-${Date.now().toString(36)}`, provider: o.provider, host: hostName, config: o.config ?? {} }, timeoutMs: 150_000 });
      const text = await res.text();
      check(res.status === 201, `POST /v1/environments: ${res.status} ${text.slice(0, 500)}`);
      env = (JSON.parse(text) as { environment: Env }).environment;
      check(env.host === hostName && env.provider === o.provider, `placed on ${env.host} with ${env.provider}`);
      check(typeof env.resourceId === "string" && env.resourceId.length > 0, "no resource id recorded");
      return `resource ${env.resourceId}`;
    },
    running: async () => {
      await running("the environment's agent to connect");
    },
    exec: async () => {
      const ok = await exec(["sh", "-c", "echo conformance; echo to-stderr >&2; exit 3"]);
      check(ok.exitCode === 3 && ok.stdout === "conformance\n" && ok.stderr === "to-stderr\n", `exec answered ${JSON.stringify(ok)}`);
      const pwd = await exec(["pwd"]);
      check(pwd.exitCode === 0 && pwd.stdout.trim().length > 0, "pwd printed nothing");
      return `workspace ${pwd.stdout.trim()}`;
    },
    files: async () => {
      const bytes = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7) % 256));
      const put = await admin.request("PUT", `/v1/environments/${env!.id}/files?path=conformance/data.bin`, { body: bytes, headers: { "content-length": String(bytes.length) } });
      check(put.ok, `PUT: ${put.status} ${await put.text()}`);
      const got = Buffer.from(await (await admin.request("GET", `/v1/environments/${env!.id}/files?path=conformance/data.bin`)).arrayBuffer());
      check(got.equals(bytes), `read back ${got.length} bytes, wrote ${bytes.length}`);
      const stat = await api<{ type: string; size: number }>("GET", `/v1/environments/${env!.id}/files/stat?path=conformance/data.bin`);
      check(stat.type === "file" && stat.size === bytes.length, `stat ${JSON.stringify(stat)}`);
      const list = await api<{ entries: Array<{ path: string }> }>("GET", `/v1/environments/${env!.id}/files/list?path=conformance`);
      check(list.entries.some((e) => e.path.endsWith("data.bin")), "list does not show the file");
      // Node is in every environment (it runs the agent); wc may not be (a minimal image).
      const seen = await exec(["node", "-e", "process.stdout.write(String(require('fs').statSync('conformance/data.bin').size))"]);
      check(seen.stdout === String(bytes.length), `the commands see ${seen.stdout || seen.stderr} bytes in conformance/data.bin, not ${bytes.length}`);
    },
    "path jail": async () => {
      for (const bad of ["../outside", "/etc/passwd", "a/../../b"]) {
        const res = await admin.request("GET", `/v1/environments/${env!.id}/files?path=${encodeURIComponent(bad)}`);
        check(res.status === 400, `GET files?path=${bad}: ${res.status}`);
      }
      const link = await exec(["node", "-e", "require('fs').symlinkSync('/', 'conformance/escape')"]);
      check(link.exitCode === 0, `cannot make a symlink: ${link.stderr}`);
      const res = await admin.request("GET", `/v1/environments/${env!.id}/files/stat?path=conformance/escape/etc`);
      check(res.status >= 400 && res.status < 500, `a symlink out of the workspace was followed: ${res.status}`);
      await api("DELETE", `/v1/environments/${env!.id}/files?path=conformance/escape`);
    },
    diff: async () => {
      await admin.writeFile(env!.id, "conformance/notes.txt", "one\ntwo\n");
      const diff = await api<{ base: string; files: Array<{ path: string; status: string }> }>("GET", `/v1/environments/${env!.id}/diff`);
      const added = diff.files.find((f) => f.path === "conformance/notes.txt");
      check(added?.status === "added", `diff (${diff.base}) does not show conformance/notes.txt added: ${JSON.stringify(diff.files.map((f) => `${f.status} ${f.path}`))}`);
      return `base ${diff.base}, ${diff.files.length} file(s)`;
    },
    "reconnect after a cut link": async () => {
      const before = (await events()).filter((e) => e.type === "agent.connected").length;
      const accepted = proxy!.accepted;
      proxy!.cut();
      await waitFor(async () => (await events()).filter((e) => e.type === "agent.connected").length > before, { timeoutMs, what: "the agent to reconnect after the cut", failIf: hostDied });
      await running("the environment to be running again");
      check((await exec(["true"])).exitCode === 0, "exec after the reconnect failed");
      await waitFor(async () => (await listHosts(admin)).some((h) => h.name === hostName && h.connected), { timeoutMs, what: "the host to reconnect after the cut" });
      return `${proxy!.accepted - accepted} new connection(s) through the proxy`;
    },
    "recover by resource id": async () => {
      const resourceId = env!.resourceId;
      await api("POST", `/v1/environments/${env!.id}/restart`);
      await waitFor(async () => (await events()).some((e) => e.type === "provider.recover"), { timeoutMs, what: "the host to recover the environment", failIf: hostDied });
      const recover = (await events()).filter((e) => e.type === "provider.recover").at(-1)!;
      check(recover.data.recovered === true && recover.data.resourceId === resourceId, `recover answered ${JSON.stringify(recover.data)}`);
      await running("the recovered environment to be running");
      const after = await getEnv();
      check(after.resourceId === resourceId, `the resource id changed: ${resourceId} → ${after.resourceId}`);
      check((await exec(["cat", "conformance/notes.txt"])).stdout === "one\ntwo\n", "the workspace did not survive the recovery");
    },
    stop: async () => {
      const stopped = await api<{ environment: Env }>("POST", `/v1/environments/${env!.id}/stop`);
      check(stopped.environment.state === "stopped", `state ${stopped.environment.state}`);
      await waitFor(async () => !(await getEnv()).connected, { timeoutMs, what: "the agent to disconnect" });
    },
    "teardown leaves nothing": async () => {
      const { id } = env!;
      const resourceId = env!.resourceId!;
      await api("DELETE", `/v1/environments/${id}`);
      const runtimeDir = join(o.dir, "state", "outpost-agent", `host-${hostName}`, id);
      const left = async () => {
        const found: string[] = [];
        const reported = (await listHosts(admin)).find((h) => h.name === hostName) as { resources?: Array<{ environmentId: string }> } | undefined;
        if (reported?.resources?.some((r) => r.environmentId === id)) found.push("the host still reports the resource");
        if (isAbsolute(resourceId) && existsSync(resourceId)) found.push(`${resourceId} exists`);
        if (existsSync(runtimeDir)) found.push(`the runtime directory ${runtimeDir} exists`);
        const pids = [...processesMentioning(resourceId), ...processesMentioning(id)];
        if (pids.length > 0) found.push(`processes ${[...new Set(pids)].join(", ")} mention the environment`);
        found.push(...(await (o.leftovers?.({ id, resourceId }) ?? [])));
        return found;
      };
      let last: string[] = [];
      try {
        await waitFor(async () => (last = await left()).length === 0, { timeoutMs, what: "nothing to be left" });
      } catch {
        throw new StepFailed(`left behind: ${last.join("; ")}`);
      }
      return `nothing left of ${resourceId}`;
    },
  };

  let failed = false;
  try {
    await mkdir(o.dir, { recursive: true });
    for (const step of STEPS) {
      if (failed) {
        results.push({ step, ok: null, ms: 0, detail: "not run (an earlier step failed)" });
        continue;
      }
      const started = Date.now();
      try {
        const detail = await steps[step]();
        results.push({ step, ok: true, ms: Date.now() - started, ...(detail ? { detail } : {}) });
      } catch (err) {
        failed = true;
        results.push({ step, ok: false, ms: Date.now() - started, detail: err instanceof Error ? err.message.split("\n").slice(0, 6).join(" ") : String(err) });
      }
      log(formatRow(results.at(-1)!));
    }
  } finally {
    if (failed && env) await admin.request("DELETE", `/v1/environments/${env.id}`).catch(() => undefined);
    await host?.stop();
    await proxy?.close();
  }
  return results;
}

function formatRow(r: StepResult): string {
  const mark = r.ok === true ? "pass" : r.ok === false ? "FAIL" : "skip";
  return `${mark.padEnd(4)}  ${r.step.padEnd(28)} ${`${r.ms} ms`.padStart(9)}  ${r.detail ?? ""}`.trimEnd();
}

/** The results as a table for people. */
export function formatResults(provider: string, results: StepResult[]): string {
  const passed = results.filter((r) => r.ok === true).length;
  return [`conformance of provider '${provider}': ${passed}/${results.length} passed`, ...results.map(formatRow)].join("\n");
}
