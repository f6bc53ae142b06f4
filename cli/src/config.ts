/**
 * Where the CLI finds its control plane and token, first found wins:
 *   --url / --token flags; the file named by --profile; OUTPOST_URL / OUTPOST_TOKEN;
 *   the profile in $OUTPOST_PROFILE, else the nearest .outpost/profile.json from the working
 *   directory up (the one `npm start` writes), else $OUTPOST_HOME/.outpost/profile.json.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import * as z from "zod";
import { UsageError } from "./errors.js";

export const Profile = z.object({ url: z.string().url().optional(), token: z.string().min(1).optional(), environment: z.string().optional() });
export type Profile = z.infer<typeof Profile>;

export interface Config {
  url: string;
  token: string;
  /** Where each value came from, for error messages. */
  source: { url: string; token: string };
  profilePath: string | null;
}

export interface ConfigInput {
  flags: { url?: string; token?: string; profile?: string };
  env: Record<string, string | undefined>;
  cwd: string;
  read?: (path: string) => string;
  exists?: (path: string) => boolean;
}

/** The profile file to use: named explicitly, or discovered; null when there is none. */
export function findProfile(i: ConfigInput): { path: string; explicit: boolean } | null {
  const exists = i.exists ?? existsSync;
  if (i.flags.profile) return { path: resolve(i.cwd, i.flags.profile), explicit: true };
  if (i.env.OUTPOST_PROFILE) return { path: resolve(i.cwd, i.env.OUTPOST_PROFILE), explicit: false };
  for (let dir = resolve(i.cwd); ; dir = dirname(dir)) {
    const candidate = join(dir, ".outpost", "profile.json");
    if (exists(candidate)) return { path: candidate, explicit: false };
    if (dirname(dir) === dir) break;
  }
  if (i.env.OUTPOST_HOME) {
    const candidate = join(resolve(i.env.OUTPOST_HOME), ".outpost", "profile.json");
    if (exists(candidate)) return { path: candidate, explicit: false };
  }
  return null;
}

export function readProfile(path: string, read: (path: string) => string = (p) => readFileSync(p, "utf8")): Profile {
  let text: string;
  try {
    text = read(path);
  } catch (err) {
    throw new UsageError(`cannot read the profile ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, "Check the path given to --profile (or OUTPOST_PROFILE), or run `npm start`, which writes .outpost/profile.json.");
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new UsageError(`the profile ${path} is not valid JSON`, 'A profile looks like {"url": "http://127.0.0.1:8787", "token": "…"}.');
  }
  const parsed = Profile.safeParse(json);
  if (!parsed.success) throw new UsageError(`the profile ${path} is invalid: ${parsed.error.issues.map((x) => `${x.path.join(".")}: ${x.message}`).join("; ")}`, 'A profile looks like {"url": "http://127.0.0.1:8787", "token": "…"}.');
  return parsed.data;
}

export function resolveConfig(i: ConfigInput): Config {
  const found = findProfile(i);
  const profile = found ? readProfile(found.path, i.read) : {};
  const where = found ? `the profile ${found.path}` : "";
  const layers: Array<{ name: string; url?: string; token?: string }> = [
    { name: "--url/--token", url: i.flags.url, token: i.flags.token },
    ...(found?.explicit ? [{ name: where, ...profile }] : []),
    { name: "OUTPOST_URL/OUTPOST_TOKEN", url: i.env.OUTPOST_URL || undefined, token: i.env.OUTPOST_TOKEN || undefined },
    ...(found && !found.explicit ? [{ name: where, ...profile }] : []),
  ];
  const url = layers.find((l) => l.url);
  const token = layers.find((l) => l.token);
  const hint = "Pass --url and --token, set OUTPOST_URL and OUTPOST_TOKEN, or run `npm start` (it writes .outpost/profile.json) and run outpost inside the repository.";
  if (!url?.url) throw new UsageError("no control plane URL is configured", hint);
  if (!token?.token) throw new UsageError("no token is configured", `${hint} A local admin token: npm run -s token -- --org local --role admin`);
  try {
    new URL(url.url);
  } catch {
    throw new UsageError(`the control plane URL '${url.url}' (from ${url.name}) is not a URL`, "Give it like http://127.0.0.1:8787.");
  }
  return { url: url.url, token: token.token, source: { url: url.name, token: token.name }, profilePath: found?.path ?? null };
}
