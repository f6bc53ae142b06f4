// Bundles the CLI into one file, dist/outpost.js (client, protocol, zod and ws inside); see scripts/lib/bundle.mjs.
import { bundle, buildArgs } from "../scripts/lib/bundle.mjs";

const { outfile } = buildArgs(process.argv.slice(2));
await bundle({ dir: new URL(".", import.meta.url), entry: "src/main.ts", outfile: outfile ?? "dist/outpost.js" });
