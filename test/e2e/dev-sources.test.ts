/**
 * Why the tests run the Worker from a copy of the sources (scripts/lib/snapshot.ts): wrangler dev
 * rebuilds and restarts the Worker whenever a file of its bundle changes, and that restart fails
 * requests in flight with wrangler's own 503 "Your worker restarted mid-request" and drops every
 * WebSocket (issues #9, #10: a rebase or a landing on main during a long run). Proven here without
 * touching the repo: every file bundled into the Worker lies inside the copy (so no edit of the
 * repo, nor npm ci, can reach it), and an edit inside the copy is what the harness's reload count
 * sees.
 */
import { execFile } from "node:child_process";
import { appendFileSync, mkdtempSync, readFileSync, realpathSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { isAbsolute, join, relative, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, expect, it } from "vitest";
import { startControlPlane, wranglerBin, wranglerEnv, type ControlPlane } from "../../scripts/lib/control-plane.js";
import { ROOT } from "../../scripts/lib/dev-vars.js";
import { freePort } from "../../scripts/lib/ports.js";
import { snapshotControlPlane } from "../../scripts/lib/snapshot.js";
import { waitFor } from "./helpers.js";

const dir = mkdtempSync(join(tmpdir(), "outpost-dev-sources-"));
let cp: ControlPlane | null = null;
afterAll(async () => {
  await cp?.stop().catch(() => cp?.kill());
  await rm(dir, { recursive: true, force: true, maxRetries: 5 }); // wrangler may still be writing its state as it stops
});

const inside = (path: string, root: string) => {
  const r = relative(root, path);
  return r !== "" && !r.startsWith("..") && !isAbsolute(r);
};

it("every file bundled into the Worker lies inside the copy of the sources, none in the repo", async () => {
  const sources = join(dir, "bundle-sources");
  const config = snapshotControlPlane(sources);
  const metafile = join(dir, "meta.json");
  // What wrangler bundles, and so what its esbuild watch mode watches in `wrangler dev`.
  await promisify(execFile)(process.execPath, [wranglerBin(), "deploy", "--dry-run", "--config", config, "--outdir", join(dir, "out"), "--metafile", metafile], { cwd: sources, env: wranglerEnv(), timeout: 120_000 });
  const inputs = Object.keys((JSON.parse(readFileSync(metafile, "utf8")) as { inputs: Record<string, unknown> }).inputs)
    .filter((p) => !p.includes(":")) // virtual modules (cloudflare:workers, wrangler's own templates by namespace)
    .map((p) => realpathSync(resolve(sources, p)));
  expect(inputs.filter((p) => p.includes("/worker/")).length).toBeGreaterThan(5);
  expect(inputs.filter((p) => p.includes("/node_modules/zod/")).length).toBeGreaterThan(5);
  const wranglerOwn = realpathSync(join(ROOT, "node_modules", "wrangler"));
  expect(inputs.filter((p) => !inside(p, realpathSync(sources)) && !inside(p, wranglerOwn))).toEqual([]);
});

it("an edit of the copy makes wrangler dev restart the Worker, and the control plane counts it", async () => {
  const sources = join(dir, "dev-sources");
  const config = snapshotControlPlane(sources);
  cp = await startControlPlane({ port: await freePort(), persistTo: join(dir, "state"), secret: "s".repeat(43), migrate: false, config, readyTimeoutMs: 60_000 });
  expect(cp.reloads()).toBe(0);
  // wrangler dev may say it is ready before its file watcher is armed (seen under load: one edit
  // right after the start was never noticed), so the edit is made again every 3 s until it is seen.
  const edit = () => appendFileSync(join(sources, "worker", "index.ts"), "\n// edited by dev-sources.test.ts\n");
  edit();
  const again = setInterval(edit, 3_000);
  try {
    await waitFor(() => cp!.reloads() > 0, { timeoutMs: 45_000, what: "wrangler dev to reload the Worker after an edit of the copy" });
  } finally {
    clearInterval(again);
  }
  await waitFor(async () => (await fetch(`${cp!.url}/v1/health`, { signal: AbortSignal.timeout(5_000) })).ok, { timeoutMs: 20_000, what: "the reloaded Worker to answer" });
}, 140_000); // its own waits (60 + 45 + 20 s) fail with what they waited for before the test's bound
