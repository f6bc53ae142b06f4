import { defineConfig } from "vitest/config";

/**
 * Three projects:
 * - workers: Worker and Durable Object code inside workerd (the Workers vitest integration);
 * - unit:    the provider-agent's modules in Node (real files, processes and sockets);
 * - e2e:     the real Worker under `wrangler dev` with real provider-agent processes on 127.0.0.1.
 */
export default defineConfig({
  test: {
    projects: [
      "test/workers/vitest.config.ts",
      "test/chaos/vitest.config.ts",
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          environment: "node",
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          environment: "node",
          testTimeout: 90_000,
          hookTimeout: 90_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
