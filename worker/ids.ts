const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"; // Crockford base32, lower case

function encodeTime(ms: number, length: number): string {
  let out = "";
  for (let i = 0; i < length; i++) {
    out = ALPHABET[ms % 32] + out;
    ms = Math.floor(ms / 32);
  }
  return out;
}

function randomChars(length: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  let out = "";
  for (const b of bytes) out += ALPHABET[b & 31];
  return out;
}

/** `PREFIX_` + 10 time-ordered + 10 random characters: sortable by creation, unguessable. */
export function newId(prefix: "env" | "run" | "exp", now = Date.now()): string {
  return `${prefix}_${encodeTime(now, 10)}${randomChars(10)}`;
}

export const newEnvironmentId = (now = Date.now()) => newId("env", now);
