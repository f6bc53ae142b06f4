/**
 * A copy of wrangler.toml with other rate limits, for tests that need small ones: paths made
 * absolute so it can live in a temp dir, and the AUTH_FAILURES limit and period replaced.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../../../scripts/lib/dev-vars.js";

export function wranglerVariant(dir: string, authFailures: { limit: number; period: 10 | 60 }): string {
  let toml = readFileSync(join(ROOT, "wrangler.toml"), "utf8");
  toml = toml.replace(/^main = "(.+)"$/m, (_, main: string) => `main = "${join(ROOT, main)}"`);
  toml = toml.replace(/^directory = "(.+)"$/m, (_, d: string) => `directory = "${join(ROOT, d)}"`);
  toml = toml.replace(/^migrations_dir = "(.+)"$/m, (_, d: string) => `migrations_dir = "${join(ROOT, d)}"`);
  const before = toml;
  toml = toml.replace(/simple = \{ limit = \d+, period = \d+ \}/, `simple = { limit = ${authFailures.limit}, period = ${authFailures.period} }`);
  if (toml === before) throw new Error("wrangler.toml has no AUTH_FAILURES simple limit to replace");
  const file = join(dir, "wrangler.toml");
  writeFileSync(file, toml);
  return file;
}
