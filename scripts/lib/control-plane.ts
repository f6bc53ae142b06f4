/**
 * The control plane running locally: the real Worker and Durable Objects under `wrangler dev`,
 * with D1, DO and R2 state persisted in a directory of our choosing. `npm start` and the e2e
 * tests both start it through here.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Health } from "@outpost/protocol";
import { ROOT } from "./dev-vars.js";
import { freePort, LOOPBACK, portFree, waitPortFree } from "./ports.js";
import { spawnGroup, type Exit, type ProcessGroup } from "./process-group.js";
import { waitFor } from "./wait.js";

export const D1_DATABASE = "outpost";
export const WRANGLER_CONFIG = join(ROOT, "wrangler.toml");

export interface ControlPlaneOptions {
  port: number;
  /** wrangler's --persist-to: D1, Durable Object and R2 state live here across restarts. */
  persistTo: string;
  /**
   * The token signing key. When given, the Worker reads it from a private env file passed with
   * --env-file, which also makes wrangler ignore the repo's .dev.vars (tests must not depend on it).
   * When omitted, wrangler reads .dev.vars next to wrangler.toml, as `wrangler dev` always does.
   */
  secret?: string;
  /** Apply the D1 migrations before starting (idempotent; about 3 s). Default true. */
  migrate?: boolean;
  /** Devtools port; by default a free one, so that several control planes can run side by side. */
  inspectorPort?: number;
  /** Bound on the wait for GET /v1/health to answer. Default 60 s. */
  readyTimeoutMs?: number;
  /**
   * Another wrangler.toml (default: the repo's). The bench points it at a copy of the sources, so
   * that edits made while it runs do not make wrangler rebuild and restart the Worker mid-request.
   */
  config?: string;
  /** More variables for the Worker (they override wrangler.toml's [vars]); written with the secret, never on the command line. */
  vars?: Record<string, string>;
  /** Every output line of wrangler (and of the migration run). */
  onLine?: (line: string) => void;
}

export interface ControlPlane {
  url: string;
  port: number;
  persistTo: string;
  /** Process group id of wrangler and its workerd children. */
  pid: number;
  /** Settles if wrangler exits (on its own or after stop/kill). */
  exited: Promise<Exit>;
  /** wrangler's last output lines. */
  output(): string;
  /**
   * How often wrangler rebuilt and restarted the Worker since it started ("Reloading local server"):
   * it does so whenever a file of the bundle, the assets or the config changes, dropping every
   * WebSocket and failing requests in flight (a POST with wrangler's 503 "Your worker restarted
   * mid-request"). 0 for a control plane started from a snapshot (scripts/lib/snapshot.ts).
   */
  reloads(): number;
  /** SIGTERM to the group, SIGKILL after a grace period; resolves once no process is left and the port is free. */
  stop(): Promise<void>;
  /** SIGKILL to the group, immediately (a crash, not a shutdown). */
  kill(): void;
}

/** wrangler dev's line when it restarts the Worker after a change (4.x: "⎔ Reloading local server..."). */
export const RELOADING = /Reloading local server/;

/** Environment for every wrangler we run: no telemetry, no network fetch of the `cf` placeholder, plain text. */
export function wranglerEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    WRANGLER_SEND_METRICS: "false",
    WRANGLER_SEND_ERROR_REPORTS: "false",
    CLOUDFLARE_CF_FETCH_ENABLED: "false",
    NO_COLOR: "1",
    FORCE_COLOR: "0",
    ...extra,
  };
}

/** wrangler's own launcher script, run with this Node (no npx, no shell). */
export function wranglerBin(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve("wrangler/package.json")), "bin", "wrangler.js");
}

/** `wrangler d1 migrations apply outpost --local --persist-to DIR`; throws with wrangler's output when it fails. */
export async function applyMigrations(persistTo: string, o: { timeoutMs?: number; onLine?: (line: string) => void; config?: string } = {}): Promise<void> {
  const run = spawnGroup(process.execPath, [wranglerBin(), "d1", "migrations", "apply", D1_DATABASE, "--local", "--persist-to", persistTo, "--config", o.config ?? WRANGLER_CONFIG], {
    cwd: ROOT,
    env: wranglerEnv(), // stdin is not a terminal, so wrangler answers its confirmation prompt itself
    onLine: o.onLine,
  });
  const timeoutMs = o.timeoutMs ?? 60_000;
  const timer = setTimeout(() => run.kill(), timeoutMs);
  const exit = await run.exited.finally(() => clearTimeout(timer));
  await run.stop("SIGKILL", 1_000).catch(() => undefined); // nothing of it may linger
  if (exit.code !== 0) {
    const how = exit.signal ? `was killed (${exit.signal}${exit.signal === "SIGKILL" ? `, after ${timeoutMs} ms?` : ""})` : `exited with ${exit.code}`;
    throw new Error(`applying the D1 migrations ${how}:\n${run.output()}`);
  }
}

/** Key files not yet removed; removed at exit whatever happens, so no key outlives its process. */
const secretDirs = new Set<string>();
process.once("exit", () => {
  for (const dir of secretDirs) rmSync(dir, { recursive: true, force: true });
});

export async function startControlPlane(o: ControlPlaneOptions): Promise<ControlPlane> {
  const url = `http://${LOOPBACK}:${o.port}`;
  if (!(await portFree(o.port))) {
    throw new Error(`port ${o.port} on ${LOOPBACK} is already in use (another control plane or npm start?); choose another port`);
  }
  if (o.migrate ?? true) await applyMigrations(o.persistTo, { onLine: o.onLine, config: o.config });

  const args = [
    wranglerBin(),
    "dev",
    "--config",
    o.config ?? WRANGLER_CONFIG,
    "--ip",
    LOOPBACK,
    "--port",
    String(o.port),
    "--inspector-port",
    String(o.inspectorPort ?? (await freePort())),
    "--persist-to",
    o.persistTo,
    "--show-interactive-dev-session=false",
  ];
  let secretDir: string | null = null;
  if (o.secret !== undefined) {
    // A file rather than --var: command lines are visible to every user of the machine.
    secretDir = mkdtempSync(join(tmpdir(), "outpost-secret-"));
    secretDirs.add(secretDir);
    const file = join(secretDir, "vars.env");
    const vars = Object.entries(o.vars ?? {}).map(([k, v]) => `${k}="${v}"\n`).join("");
    writeFileSync(file, `OUTPOST_JWT_SECRET="${o.secret}"\n${vars}`, { mode: 0o600 });
    args.push("--env-file", file);
  }
  const removeSecret = () => {
    if (secretDir) {
      rmSync(secretDir, { recursive: true, force: true });
      secretDirs.delete(secretDir);
    }
    secretDir = null;
  };

  let wrangler: ProcessGroup;
  let reloads = 0;
  const onLine = (line: string) => {
    if (RELOADING.test(line)) reloads++;
    o.onLine?.(line);
  };
  try {
    wrangler = spawnGroup(process.execPath, args, { cwd: ROOT, env: wranglerEnv(), onLine });
  } catch (err) {
    removeSecret();
    throw err;
  }

  const stop = async () => {
    try {
      await wrangler.stop("SIGTERM", 5_000);
      if (!(await waitPortFree(o.port, 5_000))) throw new Error(`port ${o.port} is still in use after wrangler stopped`);
    } finally {
      removeSecret();
    }
  };

  try {
    await waitFor(
      async () => {
        const res = await fetch(`${url}/v1/health`, { signal: AbortSignal.timeout(2_000) });
        return res.ok && Health.safeParse(await res.json()).success;
      },
      {
        timeoutMs: o.readyTimeoutMs ?? 60_000,
        what: `${url}/v1/health`,
        failIf: () => {
          if (wrangler.exit) return `wrangler exited (${wrangler.exit.code ?? wrangler.exit.signal})`;
          // wrangler keeps serving (and holding requests) after a failed build, waiting for a fix.
          if (/Build failed/.test(wrangler.output())) return "the Worker failed to build";
          return null;
        },
      },
    );
  } catch (err) {
    const output = wrangler.output();
    await stop().catch(() => wrangler.kill());
    throw new Error(`${err instanceof Error ? err.message : String(err)}\nwrangler's output:\n${output}`);
  }

  return {
    url,
    port: o.port,
    persistTo: o.persistTo,
    pid: wrangler.pid,
    exited: wrangler.exited,
    output: () => wrangler.output(),
    reloads: () => reloads,
    stop,
    kill: () => {
      wrangler.kill();
      removeSecret();
    },
  };
}
