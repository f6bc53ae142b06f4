/** The org's index of gateways in D1: which environments take forwarded work, with which capabilities. */

export async function upsertGateway(db: D1Database, org: string, id: string, accept: boolean, capabilities: string[], at: string): Promise<void> {
  await db
    .prepare(
      `INSERT INTO gateways (org, environment_id, accept, capabilities, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (org, environment_id) DO UPDATE SET accept = excluded.accept, capabilities = excluded.capabilities, updated_at = excluded.updated_at`,
    )
    .bind(org, id, accept ? 1 : 0, JSON.stringify([...new Set(capabilities)].sort()), at)
    .run();
}

/** Accepting environments of the org that offer `capability`, running ones first. */
export async function gatewaysWithCapability(db: D1Database, org: string, capability: string, limit = 20): Promise<Array<{ id: string; name: string }>> {
  const { results } = await db
    .prepare(
      `SELECT e.id AS id, e.name AS name FROM gateways g
         JOIN environments e ON e.org = g.org AND e.id = g.environment_id
        WHERE g.org = ? AND g.accept = 1 AND e.state <> 'archived'
          AND EXISTS (SELECT 1 FROM json_each(g.capabilities) c WHERE c.value = ?)
        ORDER BY (e.state = 'running') DESC, g.updated_at
        LIMIT ?`,
    )
    .bind(org, capability, limit)
    .all<{ id: string; name: string }>();
  return results;
}
