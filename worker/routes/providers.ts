import { Hono } from "hono";
import { InstallProviderBody } from "@outpost/protocol";
import { requireRole, type AuthVars } from "../auth.js";
import type { Env } from "../env.js";
import { HttpError } from "../problem.js";
import { parseBody, readJson } from "../validate.js";
import { registryStub } from "./hosts.js";

interface Row {
  id: string;
  config: string;
  installed_at: string;
  updated_at: string;
}

export async function installedConfig(db: D1Database, org: string, id: string): Promise<Record<string, unknown> | undefined> {
  const row = await db.prepare("SELECT config FROM providers WHERE org = ? AND id = ?").bind(org, id).first<{ config: string }>();
  return row ? (JSON.parse(row.config) as Record<string, unknown>) : undefined;
}

/** Providers installed in the org (with its config for each) and which connected hosts offer them. */
export const providers = new Hono<{ Bindings: Env; Variables: AuthVars }>()
  .post("/", requireRole("admin"), async (c) => {
    const body = parseBody(InstallProviderBody, await readJson(c.req.raw));
    const at = new Date().toISOString();
    await c.env.DB.prepare(
      "INSERT INTO providers (org, id, config, installed_at, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (org, id) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at",
    )
      .bind(c.get("user").org, body.id, JSON.stringify(body.config), at, at)
      .run();
    return c.json({ provider: { id: body.id, config: body.config } }, 201);
  })
  .get("/", requireRole("viewer"), async (c) => {
    const { org } = c.get("user");
    const { results } = await c.env.DB.prepare("SELECT id, config, installed_at, updated_at FROM providers WHERE org = ? ORDER BY id").bind(org).all<Row>();
    const hostList = await registryStub(c.env, org).listHosts();
    const offeredBy = (id: string) => hostList.filter((h) => h.providers.some((p) => p.id === id)).map((h) => ({ host: h.name, connected: h.connected }));
    const installed = results.map((r) => ({ id: r.id, config: JSON.parse(r.config) as Record<string, unknown>, installedAt: r.installed_at, updatedAt: r.updated_at, offeredBy: offeredBy(r.id) }));
    const offered = [...new Set(hostList.flatMap((h) => h.providers.map((p) => p.id)))].filter((id) => !results.some((r) => r.id === id));
    return c.json({ providers: installed, offeredNotInstalled: offered.map((id) => ({ id, offeredBy: offeredBy(id) })) });
  })
  .delete("/:id", requireRole("admin"), async (c) => {
    const r = await c.env.DB.prepare("DELETE FROM providers WHERE org = ? AND id = ?").bind(c.get("user").org, c.req.param("id")).run();
    if (!r.meta.changes) throw new HttpError(404, "not_found", `Provider '${c.req.param("id")}' is not installed in this org.`);
    return c.json({ deleted: true });
  });
