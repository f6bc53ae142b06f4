/**
 * Keeps docs/teams.md true: every command in its fenced `sh` blocks is parsed by the program's own
 * parser (the `outpost` CLI's commands, `outpost-agent host`'s flags, `npm start`'s and
 * `npm run token`'s options), provider ids and `--config` keys are checked against the built-in
 * manifests, and every JSON body sent with curl against the API's zod schema for its route.
 * A command of a kind this test does not know fails it, so nothing in the walkthrough goes unchecked.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { CreateEnvironmentBody, HostTokenBody, InstallProviderBody, type ProviderManifest } from "@outpost/protocol";
import { parse } from "../../cli/src/command.js";
import { COMMANDS } from "../../cli/src/commands/index.js";
import { parseFlags } from "../../provider-agent/src/cli-flags.js";
import { CAPABILITY, HOST_FLAGS } from "../../provider-agent/src/host/cli.js";
import { loadProviders } from "../../provider-agent/src/host/loader.js";
import { START_OPTIONS, TOKEN_OPTIONS } from "../../scripts/lib/script-flags.js";
import { shBlocks } from "../lib/markdown.js";

const DOC = new URL("../../docs/teams.md", import.meta.url);
/** Commands the walkthrough may use that are not Outpost's own; they are not checked. */
const EXTERNAL = new Set(["echo", "export", "ssh", "scripts/docker-base-image.sh", "npm install"]);

/** The shell commands of every ```sh block, split at && ; | and $( ). */
function documentedCommands(markdown: string): string[][] {
  return shBlocks(markdown)
    .flat()
    .flatMap(splitLine)
    .filter((c) => c.length > 0);
}

function splitLine(line: string): string[][] {
  const out: string[][] = [];
  let words: string[] = [];
  let word: string | null = null;
  const end = () => {
    if (word !== null) words.push(word);
    word = null;
  };
  const next = () => {
    end();
    out.push(words);
    words = [];
  };
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (ch === "'" || ch === '"') {
      const close = line.indexOf(ch, i + 1);
      if (close < 0) throw new Error(`unbalanced quote in: ${line}`);
      word = (word ?? "") + line.slice(i + 1, close);
      i = close;
    } else if (ch === "$" && line[i + 1] === "(") {
      let depth = 1;
      let j = i + 2;
      for (; j < line.length && depth > 0; j++) depth += line[j] === "(" ? 1 : line[j] === ")" ? -1 : 0;
      out.push(...splitLine(line.slice(i + 2, j - 1)));
      word = (word ?? "") + "$SUBSTITUTION";
      i = j - 1;
    } else if (ch === "#" && word === null) {
      break;
    } else if (ch === " " || ch === "\t") {
      end();
    } else if (ch === ";" || ch === "|") {
      next();
      if (line[i + 1] === ch) i++;
    } else if (ch === "&" && line[i + 1] === "&") {
      next();
      i++;
    } else {
      word = (word ?? "") + ch;
    }
  }
  next();
  // Leading VAR=value assignments are not the command.
  return out.map((c) => {
    let k = 0;
    while (k < c.length && /^[A-Z_][A-Z0-9_]*=/.test(c[k]!)) k++;
    return c.slice(k);
  });
}

let manifests: Map<string, ProviderManifest>;
beforeAll(async () => {
  const loaded = await loadProviders([]);
  if (!loaded.ok) throw new Error(loaded.errors.join("\n"));
  manifests = new Map(loaded.providers.map((p) => [p.manifest.id, p.manifest]));
});

function checkProviders(list: string | undefined, where: string): void {
  for (const id of (list ?? "").split(",").filter(Boolean)) expect(manifests.has(id), `${where}: unknown provider '${id}'`).toBe(true);
}

function checkConfig(provider: string | undefined, pairs: string[] | undefined, where: string): void {
  if (!pairs?.length) return;
  expect(provider, `${where}: --config without a provider to check it against`).toBeDefined();
  const manifest = manifests.get(provider!);
  expect(manifest, `${where}: unknown provider '${provider}'`).toBeDefined();
  for (const pair of pairs) {
    const key = pair.split("=")[0]!;
    expect(Object.keys(manifest!.config), `${where}: '${key}' is not a config key of ${provider}`).toContain(key);
  }
}

/** Checks one documented command; returns what kind it was. */
function check(argv: string[]): string {
  const where = argv.join(" ");
  const [first, second, ...rest] = argv;
  if (first === "npx" && second === "outpost") return checkOutpost(rest, where);
  if (first === "npx" && second === "outpost-agent" && rest[0] === "host") {
    const parsed = parseFlags(rest.slice(1), HOST_FLAGS);
    expect(parsed.ok ? "" : parsed.error, where).toBe("");
    if (!parsed.ok) return "outpost-agent host";
    checkProviders(parsed.values.providers, where);
    for (const cap of (parsed.values.capabilities ?? "").split(",").filter(Boolean)) expect(cap, where).toMatch(CAPABILITY);
    return "outpost-agent host";
  }
  if (first === "npm" && second === "start") {
    const args = rest[0] === "--" ? rest.slice(1) : rest;
    expect(() => parseArgs({ args, options: START_OPTIONS, strict: true, allowPositionals: false }), where).not.toThrow();
    return "npm start";
  }
  if (first === "npm" && second === "run" && rest[0] === "-s" && rest[1] === "token") {
    const args = rest[2] === "--" ? rest.slice(3) : rest.slice(2);
    const { values } = parseArgs({ args, options: TOKEN_OPTIONS, strict: true, allowPositionals: false });
    expect(["admin", "operator", "viewer"], where).toContain(values.role);
    expect(Number.isInteger(Number(values.ttl)) && Number(values.ttl) > 0, where).toBe(true);
    return "npm run token";
  }
  if (first === "curl") return checkCurl(argv.slice(1), where);
  const external = EXTERNAL.has(first!) ? first! : EXTERNAL.has(`${first} ${second}`) ? `${first} ${second}` : null;
  expect(external, `a command this test does not check: ${where}`).not.toBeNull();
  return external!;
}

function checkOutpost(words: string[], where: string): string {
  const command = COMMANDS.find((c) => c.name === words.slice(0, 2).join(" ")) ?? COMMANDS.find((c) => c.name === words[0]);
  expect(command, `no outpost command for: ${where}`).toBeDefined();
  const argv = words.slice(command!.name.split(" ").length);
  const { positionals, values } = parse(command!, argv);
  const configs = values.config as string[] | undefined;
  if (command!.name === "env create") {
    checkProviders(values.provider as string | undefined, where);
    checkConfig(values.provider as string | undefined, configs, where);
  }
  if (command!.name === "providers install") checkConfig(positionals[0], configs, where);
  if (command!.name === "tokens host" || command!.name === "hosts token") checkProviders(values.providers as string | undefined, where);
  return `outpost ${command!.name}`;
}

/** Strict, so a misspelt field in the walkthrough fails here rather than being silently dropped. */
const BODIES: Record<string, { parse(v: unknown): unknown }> = {
  "POST /v1/environments": CreateEnvironmentBody.strict(),
  "POST /v1/hosts/tokens": HostTokenBody.strict(),
  "POST /v1/providers": InstallProviderBody.strict(),
};

function checkCurl(args: string[], where: string): string {
  let method = "GET";
  let body: string | undefined;
  let url: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "-X") method = args[++i]!;
    else if (a === "-d" || a === "--data") body = args[++i];
    else if (a === "-H") i++;
    else if (a.startsWith("-")) continue;
    else url = a;
  }
  const path = url?.replace(/^\$OUTPOST_URL/, "");
  expect(path, where).toMatch(/^\/v1\//);
  const route = `${method} ${path}`;
  if (body !== undefined) {
    const schema = BODIES[route];
    expect(schema, `no schema known for ${route}: ${where}`).toBeDefined();
    const parsed = schema!.parse(JSON.parse(body)) as { provider?: string; config?: Record<string, unknown>; id?: string };
    const provider = parsed.provider ?? parsed.id;
    if (provider) checkConfig(provider, Object.keys(parsed.config ?? {}).map((k) => `${k}=`), where);
  } else {
    expect(["GET /v1/hosts", "GET /v1/environments"], where).toContain(route);
  }
  return `curl ${route}`;
}

describe("docs/teams.md", () => {
  it("splits shell lines the way a shell would, for what the walkthrough uses", () => {
    expect(splitLine(`export X=$(npx outpost tokens host a --providers local) # note`)).toEqual([["npx", "outpost", "tokens", "host", "a", "--providers", "local"], ["export", "X=$SUBSTITUTION"]]);
    expect(splitLine(`echo 'a b' | npx outpost put e - "p q"`)).toEqual([["echo", "a b"], ["npx", "outpost", "put", "e", "-", "p q"]]);
    expect(splitLine(`npm install && npm start`)).toEqual([["npm", "install"], ["npm", "start"]]);
  });

  it("every command in the walkthrough is accepted by its program's parser, provider ids and config keys exist, and bodies match the API's schemas", () => {
    const commands = documentedCommands(readFileSync(DOC, "utf8"));
    const kinds = commands.map(check);
    // The walkthrough covers each step: local, a second host, placement by provider, requirement and name, a cloud provider, a teammate's laptop.
    for (const kind of ["npm start", "outpost exec", "outpost put", "outpost cat", "outpost diff", "outpost hosts list", "outpost tokens host", "outpost-agent host", "outpost providers install", "npm run token", "curl POST /v1/environments", "curl GET /v1/hosts"]) {
      expect(kinds, kind).toContain(kind);
    }
    const creates = commands.filter((c) => c.slice(0, 4).join(" ") === "npx outpost env create").map((c) => c.join(" "));
    expect(creates.some((c) => c.includes("--host "))).toBe(true);
    expect(creates.some((c) => c.includes("--requires "))).toBe(true);
    expect(creates.some((c) => c.includes("--provider docker"))).toBe(true);
    expect(creates.some((c) => /--provider (e2b|daytona|cloudflare-containers)/.test(c))).toBe(true);
  });

  it("says the cloud adapters were never run against the live services", () => {
    expect(readFileSync(DOC, "utf8")).toMatch(/none has been run against the live\s+service/);
  });
});
