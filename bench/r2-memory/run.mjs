// Where workerd's memory goes when 200 MB stream through it, without any Outpost code: one fresh
// Miniflare (the workerd wrangler dev runs) per case, its peak RSS (VmHWM) before and after.
//   node bench/r2-memory/run.mjs worker|object digest|r2 [frames] [MB]
// e.g. `node bench/r2-memory/run.mjs object r2 frames 200`. Reported in README.md (Snapshots, Memory).
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";

const [from = "worker", to = "digest", framesArg = "", mbArg = "200"] = process.argv.slice(2);
const frames = framesArg === "frames";
const chunk = Number(process.env.CHUNK ?? 262144);
const persist = mkdtempSync(join(tmpdir(), "r2-memory-"));
const mf = new Miniflare({
  modules: true,
  scriptPath: fileURLToPath(new URL("./worker.js", import.meta.url)),
  compatibilityDate: "2026-04-20",
  durableObjects: { SOURCE: "Source" },
  r2Buckets: ["BUCKET"],
  r2Persist: persist,
});
await mf.ready;
const workerd = () =>
  readdirSync("/proc").filter((n) => {
    if (!/^\d+$/.test(n)) return false;
    try {
      const stat = readFileSync(`/proc/${n}/stat`, "utf8");
      return readFileSync(`/proc/${n}/comm`, "utf8").trim() === "workerd" && Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === process.pid;
    } catch {
      return false;
    }
  });
const peak = () => Math.max(...workerd().map((p) => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, "utf8"))[1]) / 1024));
const url = (mb) => `http://x/?mb=${mb}&from=${from}&to=${to}&frames=${frames ? 1 : 0}&chunk=${chunk}`;
await (await mf.dispatchFetch(url(1))).text(); // warm: code loaded, object and bucket made
const before = peak();
const t = Date.now();
await (await mf.dispatchFetch(url(Number(mbArg)))).text();
const after = peak();
console.log(`${mbArg} MB ${from} → ${to}${frames ? " (JSON+base64 frames)" : ""}, ${chunk} B chunks: workerd peak RSS ${before.toFixed(0)} → ${after.toFixed(0)} MB (+${(after - before).toFixed(0)}) in ${((Date.now() - t) / 1000).toFixed(1)} s`);
await mf.dispose();
rmSync(persist, { recursive: true, force: true });
