/** The flags of `npm start` and `npm run token`, shared with test/unit/docs-teams.test.ts so documented commands are parsed by the same options. */
export const START_OPTIONS = { port: { type: "string" }, help: { type: "boolean", short: "h" } } as const;

export const DEFAULT_USER_TOKEN_TTL = 30 * 24 * 3600;

export const TOKEN_OPTIONS = {
  org: { type: "string", default: "local" },
  role: { type: "string", default: "admin" },
  sub: { type: "string" },
  ttl: { type: "string", default: String(DEFAULT_USER_TOKEN_TTL) },
  help: { type: "boolean", short: "h" },
} as const;
