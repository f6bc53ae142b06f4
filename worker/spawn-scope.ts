/**
 * The spawn scope an environment was granted, as kept in the org's index (D1 `environments.spawn`):
 * the limits and the id of the grant. The environment's agent token carries the same (claim
 * `spawn`); every grant, change or withdrawal makes a new id (or none), so a token is honoured only
 * while it names the current grant. Used by the Worker and by the environment's object when it
 * signs an agent token for a provider host.
 */
import { SpawnClaim, SpawnGrant } from "@outpost/protocol";

function grantId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return `sg_${btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")}`;
}

/** Parses a stored scope; null when there is none, or one kept before grants had ids (re-grant it). */
export function storedClaim(json: string | null): SpawnClaim | null {
  if (!json) return null;
  const r = SpawnClaim.safeParse(JSON.parse(json));
  return r.success ? r.data : null;
}

/** The limits alone (what GET …/spawn shows). */
export function storedGrant(json: string | null): SpawnGrant | null {
  return json ? SpawnGrant.parse(JSON.parse(json)) : null;
}

/** Records a new grant (made with newSpawnClaim, so with a new id), or with null withdraws it. */
export async function recordSpawnScope(db: D1Database, org: string, id: string, claim: SpawnClaim | null): Promise<void> {
  await db.prepare("UPDATE environments SET spawn = ? WHERE org = ? AND id = ?").bind(claim ? JSON.stringify(claim) : null, org, id).run();
}

export function newSpawnClaim(grant: SpawnGrant): SpawnClaim {
  return { ...SpawnGrant.parse(grant), grant: grantId() };
}

/** The claim an agent token of this environment should carry now (null: none). */
export async function currentSpawnClaim(db: D1Database, org: string, id: string): Promise<SpawnClaim | null> {
  const row = await db.prepare("SELECT spawn FROM environments WHERE org = ? AND id = ?").bind(org, id).first<{ spawn: string | null }>();
  return storedClaim(row?.spawn ?? null);
}
