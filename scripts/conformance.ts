/**
 * `npm run conformance -- --provider ID [--provider-dir DIR] [--config JSON] [--capabilities LIST] [--fake]`:
 * starts a private control plane (wrangler dev on a free port, state in a temp dir), runs a real
 * `outpost-agent host` with the provider, drives it through the provider contract
 * (scripts/lib/conformance.ts), prints a pass/fail table, stops everything, and exits 1 on a failure.
 * With --fake, a cloud provider runs against its local fake service (scripts/lib/fakes/).
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { ensureAgentBundle } from "./lib/agent-process.js";
import { OutpostClient } from "./lib/api.js";
import { formatResults, runConformance, STEPS } from "./lib/conformance.js";
import { startControlPlane } from "./lib/control-plane.js";
import { FAKED_PROVIDERS, startCloudFake, type CloudFake } from "./lib/fakes/index.js";
import { freePort } from "./lib/ports.js";
import { killLeftovers } from "./lib/processes.js";
import { signUserToken } from "./lib/tokens.js";

const USAGE = `npm run conformance -- --provider ID [options]

Drives one provider through the provider contract against a local control plane and a real
provider host, and prints a pass/fail table. Steps: ${STEPS.join(", ")}.

Options:
  --provider ID         the provider to check (a built-in: local, worktree, sandbox, docker, …;
                        or the id in --provider-dir's manifest)
  --provider-dir DIR    load an external provider from DIR (repeatable)
  --config JSON         the environment's config, e.g. '{"repository":"/path/to/repo"}'
  --capabilities LIST   passed to the host
  --fake                run a cloud provider against a local fake of its service on 127.0.0.1
                        instead of the real one (${FAKED_PROVIDERS.join(", ")}): the fake
                        runs the agent the provider starts on this machine, in a temporary directory
                        standing for the sandbox, and teardown must leave the fake empty. Its config
                        (URLs, a key it accepts) is merged under --config.
  -h, --help            this text

Exit code 0 when every step passed, 1 otherwise, 2 on bad usage.
`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    strict: true,
    options: {
      provider: { type: "string" },
      "provider-dir": { type: "string", multiple: true },
      config: { type: "string" },
      capabilities: { type: "string" },
      fake: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (!values.provider) {
    process.stderr.write(`missing --provider\n\n${USAGE}`);
    return 2;
  }
  let config: Record<string, unknown> = {};
  try {
    config = values.config ? (JSON.parse(values.config) as Record<string, unknown>) : {};
  } catch {
    process.stderr.write("--config must be a JSON object\n");
    return 2;
  }
  if (values.fake && !FAKED_PROVIDERS.includes(values.provider)) {
    process.stderr.write(`--fake: no local fake for '${values.provider}' (fakes: ${FAKED_PROVIDERS.join(", ")})\n`);
    return 2;
  }
  await ensureAgentBundle();
  const dir = await mkdtemp(join(tmpdir(), "outpost-conformance-"));
  const secret = randomBytes(32).toString("base64url");
  console.log(`starting a control plane (state in ${dir}) …`);
  const cp = await startControlPlane({ port: await freePort(), persistTo: join(dir, "state"), secret, readyTimeoutMs: 60_000 });
  let fake: CloudFake | undefined;
  try {
    if (values.fake) {
      fake = await startCloudFake(values.provider, { dir: join(dir, "fake") });
      config = { ...fake.config, ...config };
      console.log(`a fake ${values.provider} service on ${fake.service.url} (not the real one)`);
    }
    const admin = new OutpostClient(cp.url, await signUserToken({ secret, org: "conformance", role: "admin", subject: "conformance", ttl: 3600 }));
    const results = await runConformance({
      provider: values.provider,
      providerDirs: (values["provider-dir"] ?? []).map((d) => resolve(d)),
      config,
      hostArgs: values.capabilities ? ["--capabilities", values.capabilities] : [],
      ...(fake ? { leftovers: () => fake!.leftovers() } : {}),
      admin,
      dir: join(dir, "host"),
      log: (line) => console.log(line),
    });
    console.log(`\n${formatResults(values.provider, results)}`);
    return results.every((r) => r.ok === true) ? 0 : 1;
  } finally {
    await fake?.close();
    await cp.stop();
    killLeftovers(dir);
    await rm(dir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(2);
  },
);
