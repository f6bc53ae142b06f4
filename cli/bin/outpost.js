#!/usr/bin/env node
// Thin launcher: the CLI itself is the bundle in ../dist/outpost.js.
import { existsSync } from "node:fs";

const bundle = new URL("../dist/outpost.js", import.meta.url);
if (!existsSync(bundle)) {
  process.stderr.write("outpost: dist/outpost.js is missing; build it first with `npm run build:cli` (from the repo root).\n");
  process.exit(1);
}
await import(bundle.href);
