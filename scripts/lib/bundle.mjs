// The one esbuild build of our Node command lines (outpost-agent, outpost): a single ES module file
// with its dependencies inside, so it runs with plain `node`, no node_modules beside it.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

/**
 * Builds `entry` (relative to the package directory `dir`) into `outfile` (relative to `dir`, or absolute).
 * @param {{ dir: URL, entry: string, outfile: string, define?: Record<string, string> }} o
 */
export async function bundle(o) {
  const result = await build({
    absWorkingDir: fileURLToPath(o.dir),
    entryPoints: [o.entry],
    outfile: o.outfile,
    bundle: true,
    platform: "node",
    target: "node20",
    format: "esm",
    // Optional native speed-ups of ws; it works without them.
    external: ["bufferutil", "utf-8-validate"],
    // Bundled CommonJS (ws) calls require(); give the ES module one.
    banner: { js: 'import { createRequire as __cr } from "node:module"; const require = __cr(import.meta.url);' },
    define: o.define,
    legalComments: "none",
    // Whitespace and syntax only (names kept, so stack traces and errors still read): a third less
    // source for node to hold and parse; the idle agent's heap measured about 2 MB smaller.
    minifyWhitespace: true,
    minifySyntax: true,
    logLevel: "warning",
    metafile: true,
  });
  // `import { z } from "zod"` keeps zod's whole namespace, every locale of its error messages
  // included (~450 KB the agent would parse and hold); `import * as z from "zod"` keeps what is used.
  const kept = Object.values(result.metafile.outputs).flatMap((out) => Object.entries(out.inputs).filter(([, i]) => i.bytesInOutput > 0).map(([f]) => f));
  const locales = kept.filter((f) => /zod\/v4\/locales\/(?!en\.js$|index\.js$)/.test(f));
  if (locales.length) {
    throw new Error(`${o.entry}: zod's locales (${locales.length} files) got into the bundle (${locales.slice(0, 3).join(", ")}, ...): a module imports { z } from "zod"; write \`import * as z from "zod"\` instead`);
  }
}

/**
 * A build script's command line: `--outfile PATH` builds elsewhere than the default (tests build a
 * private copy rather than racing over dist/). Anything else is refused.
 * @param {string[]} args the arguments after the script's name
 * @returns {{ outfile: string | null }}
 */
export function buildArgs(args) {
  const { values } = parseArgs({ args, options: { outfile: { type: "string" } }, strict: true, allowPositionals: false });
  return { outfile: values.outfile ?? null };
}
