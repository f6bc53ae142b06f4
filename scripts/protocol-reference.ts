/**
 * `npm run docs:protocol`: writes docs/protocol.md from the zod schemas (scripts/lib/protocol-reference.ts).
 * `--check` writes nothing and exits 1 when the file is stale.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./lib/dev-vars.js";
import { renderProtocolReference } from "./lib/protocol-reference.js";

const file = join(ROOT, "docs", "protocol.md");
const text = renderProtocolReference();
if (process.argv.includes("--check")) {
  const current = (() => {
    try {
      return readFileSync(file, "utf8");
    } catch {
      return "";
    }
  })();
  if (current !== text) {
    console.error(`${file} is stale: run npm run docs:protocol`);
    process.exit(1);
  }
  console.log(`${file} is up to date`);
} else {
  writeFileSync(file, text);
  console.log(`wrote ${file}`);
}
