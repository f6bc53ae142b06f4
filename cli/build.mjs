// Bundles the CLI into one file, dist/outpost.js (client, protocol, zod and ws inside); see scripts/lib/bundle.mjs.
import { bundle } from "../scripts/lib/bundle.mjs";

await bundle({ dir: new URL(".", import.meta.url), entry: "src/main.ts", outfile: "dist/outpost.js" });
