/**
 * The Worker's route table, read from the Hono app itself (so a new route is fuzzed without anyone
 * listing it here). Handlers never run in Node: requests go to the real Worker under wrangler dev.
 * The app is imported by URL so that Node's type-check does not follow it into Worker-only types.
 */
export interface Route {
  method: string;
  /** Hono's pattern, e.g. /v1/environments/:idOrName/files. */
  path: string;
  /** Its parameter names, in order. */
  params: string[];
}

const APP = new URL("../../../worker/app.ts", import.meta.url).href;

export async function workerRoutes(): Promise<Route[]> {
  const { app } = (await import(/* @vite-ignore */ APP)) as { app: { routes: Array<{ method: string; path: string }> } };
  const seen = new Set<string>();
  const out: Route[] = [];
  for (const r of app.routes) {
    if (r.method === "ALL") continue; // middleware
    const key = `${r.method} ${r.path}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ method: r.method, path: r.path, params: [...r.path.matchAll(/:([A-Za-z]+)/g)].map((m) => m[1]!) });
  }
  return out;
}
