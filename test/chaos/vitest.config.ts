import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

/**
 * The chaos project: faults, hostile input and load against the real Worker (wrangler dev) with
 * real provider-agents. `npm test` runs it at CI scale; `npm run test:chaos` at full scale
 * (OUTPOST_CHAOS=full) and then writes docs/reliability.md from the figures each file records.
 */
export default defineConfig({
  resolve: {
    // Only so the route fuzzer can import the Hono app to list its routes; no Durable Object runs in Node.
    alias: { "cloudflare:workers": fileURLToPath(new URL("./lib/cloudflare-workers-shim.ts", import.meta.url)) },
  },
  test: {
    name: "chaos",
    include: ["**/*.test.ts"],
    environment: "node",
    testTimeout: 180_000,
    hookTimeout: 120_000,
    fileParallelism: false,
  },
});
