// Bundles the agent into one standalone file, dist/cli.js: a provider can copy just that file into
// a container and run it with `node`, no node_modules needed (see scripts/lib/bundle.mjs).
import { readdirSync, readFileSync } from "node:fs";
import { bundle, buildArgs } from "../scripts/lib/bundle.mjs";

// The built-in providers' manifests travel inside the bundle (see src/host/manifest.ts).
const manifests = Object.fromEntries(
  readdirSync(new URL("providers/", import.meta.url), { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => [d.name, readFileSync(new URL(`providers/${d.name}/outpost-provider.yaml`, import.meta.url), "utf8")]),
);

const { outfile } = buildArgs(process.argv.slice(2));
await bundle({ dir: new URL(".", import.meta.url), entry: "src/cli.ts", outfile: outfile ?? "dist/cli.js", define: { __OUTPOST_BUILTIN_MANIFESTS__: JSON.stringify(manifests) } });
