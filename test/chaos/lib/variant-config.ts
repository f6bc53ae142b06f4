/**
 * A variant of a wrangler.toml with other rate limits, for tests that need small ones: written next
 * to it (so its relative paths hold), with the AUTH_FAILURES limit and period replaced. Given the
 * harness's copy of the sources (startHarness's `config` option), never the repo's wrangler.toml.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

export function wranglerVariant(config: string, authFailures: { limit: number; period: 10 | 60 }): string {
  const before = readFileSync(config, "utf8");
  const toml = before.replace(/simple = \{ limit = \d+, period = \d+ \}/, `simple = { limit = ${authFailures.limit}, period = ${authFailures.period} }`);
  if (toml === before) throw new Error("wrangler.toml has no AUTH_FAILURES simple limit to replace");
  const file = join(dirname(config), `wrangler.auth-${authFailures.limit}-${authFailures.period}.toml`);
  writeFileSync(file, toml);
  return file;
}
