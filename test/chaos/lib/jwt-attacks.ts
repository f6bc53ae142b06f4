/**
 * Forged and misused tokens: each entry is what an attacker (or a confused client) would present,
 * and the status the Worker must answer. Built with jose where a real signature is needed.
 */
import { generateKeyPair, SignJWT } from "jose";
import { AUDIENCE, TOKEN_ISSUER } from "@outpost/protocol";

export interface Attack {
  name: string;
  token: string;
  /** Which statuses are a correct refusal. */
  expect: number[];
}

const b64 = (v: unknown) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");
const now = () => Math.floor(Date.now() / 1000);

export function userClaims(org: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { iss: TOKEN_ISSUER, aud: AUDIENCE.api, sub: "attacker", org, role: "admin", iat: now(), exp: now() + 3600, ...extra };
}

async function hs(secret: string, claims: Record<string, unknown>, alg = "HS256", header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg, typ: "JWT", ...header }).sign(new TextEncoder().encode(secret));
}

/** Attacks on user/API tokens, for a route that needs an admin of `org`. */
export async function userTokenAttacks(secret: string, org: string): Promise<Attack[]> {
  const good = await hs(secret, userClaims(org));
  const [h, p, s] = good.split(".") as [string, string, string];
  const rsa = await generateKeyPair("RS256");
  const ec = await generateKeyPair("ES256");
  const flip = (x: string) => (x[0] === "A" ? "B" : "A") + x.slice(1);
  const claims = userClaims(org);
  return [
    { name: "alg none, no signature", token: `${b64({ alg: "none", typ: "JWT" })}.${b64(claims)}.`, expect: [401] },
    { name: "alg none, original signature", token: `${b64({ alg: "none", typ: "JWT" })}.${p}.${s}`, expect: [401] },
    { name: "alg 'None' (case games)", token: `${b64({ alg: "None" })}.${b64(claims)}.`, expect: [401] },
    { name: "RS256 signed by the attacker's key", token: await new SignJWT(claims).setProtectedHeader({ alg: "RS256" }).sign(rsa.privateKey), expect: [401] },
    { name: "ES256 signed by the attacker's key", token: await new SignJWT(claims).setProtectedHeader({ alg: "ES256" }).sign(ec.privateKey), expect: [401] },
    { name: "HS384 with the real secret (algorithm not allowed)", token: await hs(secret, claims, "HS384"), expect: [401] },
    { name: "HS512 with the real secret (algorithm not allowed)", token: await hs(secret, claims, "HS512"), expect: [401] },
    { name: "HS256 header claiming RS256 (confusion)", token: `${b64({ alg: "RS256", typ: "JWT" })}.${p}.${s}`, expect: [401] },
    { name: "HS256 signed with the wrong secret", token: await hs("x".repeat(40), claims), expect: [401] },
    { name: "HS256 signed with an empty secret", token: await hs("", claims).catch(() => `${h}.${p}.`), expect: [401] },
    { name: "jwk header embedding the attacker's key", token: await new SignJWT(claims).setProtectedHeader({ alg: "RS256", jwk: { kty: "RSA", n: "AQAB", e: "AQAB" } }).sign(rsa.privateKey), expect: [401] },
    { name: "tampered payload, original signature (role escalation)", token: `${h}.${b64({ ...claims, sub: "root" })}.${s}`, expect: [401] },
    { name: "tampered signature (one character)", token: `${h}.${p}.${flip(s)}`, expect: [401] },
    { name: "signature stripped", token: `${h}.${p}.`, expect: [401] },
    { name: "signature of another token", token: `${h}.${p}.${(await hs(secret, userClaims(org, { sub: "other" }))).split(".")[2]}`, expect: [401] },
    { name: "expired an hour ago", token: await hs(secret, userClaims(org, { exp: now() - 3600 })), expect: [401] },
    { name: "expired a minute ago", token: await hs(secret, userClaims(org, { exp: now() - 60 })), expect: [401] },
    { name: "not valid before an hour from now (nbf)", token: await hs(secret, userClaims(org, { nbf: now() + 3600 })), expect: [401] },
    { name: "issued in the future (iat) and nbf", token: await hs(secret, userClaims(org, { iat: now() + 7200, nbf: now() + 7200 })), expect: [401] },
    { name: "wrong issuer", token: await hs(secret, userClaims(org, { iss: "evil" })), expect: [401] },
    { name: "no issuer", token: await hs(secret, (({ iss: _, ...c }) => c)(userClaims(org))), expect: [401] },
    { name: "wrong audience", token: await hs(secret, userClaims(org, { aud: "someone-else" })), expect: [401, 403] },
    { name: "agent audience on the API", token: await hs(secret, userClaims(org, { aud: AUDIENCE.agent })), expect: [403] },
    { name: "host audience on the API", token: await hs(secret, userClaims(org, { aud: AUDIENCE.host })), expect: [403] },
    { name: "audience list without the API", token: await hs(secret, userClaims(org, { aud: [AUDIENCE.agent, AUDIENCE.host] })), expect: [401, 403] },
    { name: "role not in the enum", token: await hs(secret, userClaims(org, { role: "superadmin" })), expect: [401] },
    { name: "org with path characters", token: await hs(secret, userClaims(org, { org: "../other" })), expect: [401] },
    { name: "org missing", token: await hs(secret, (({ org: _, ...c }) => c)(userClaims(org))), expect: [401] },
    { name: "exp as a string", token: await hs(secret, userClaims(org, { exp: "never" })), expect: [401] },
    { name: "crit header jose does not know", token: await hs(secret, claims, "HS256", { crit: ["x-evil"], "x-evil": 1 }).catch(() => `${b64({ alg: "HS256", crit: ["x-evil"] })}.${p}.${s}`), expect: [401] },
    { name: "two dots only", token: "..", expect: [401] },
    { name: "garbage", token: "not-a-jwt", expect: [401] },
    { name: "header not JSON", token: `${b64("{{{")}.${p}.${s}`, expect: [401] },
    { name: "payload not JSON", token: `${h}.${b64("[[[")}.${s}`, expect: [401] },
    { name: "64 KiB token", token: `${h}.${b64({ ...claims, pad: "x".repeat(48 * 1024) })}.${s}`, expect: [401, 413, 431] },
  ];
}
