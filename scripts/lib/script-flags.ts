/** The flags of `npm start` and `npm run token`, shared with test/unit/docs-teams.test.ts so documented commands are parsed by the same options. */
import { TOKEN_LIFETIME } from "@outpost/protocol";

export const START_OPTIONS = { port: { type: "string" }, help: { type: "boolean", short: "h" } } as const;

export const TOKEN_OPTIONS = {
  org: { type: "string", default: "local" },
  role: { type: "string", default: "admin" },
  sub: { type: "string" },
  ttl: { type: "string", default: String(TOKEN_LIFETIME.api.defaultSeconds) },
  help: { type: "boolean", short: "h" },
} as const;
