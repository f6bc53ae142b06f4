/**
 * npm run -s token -- --org ORG --role admin|operator|viewer [--sub NAME] [--ttl SECONDS]
 * Prints one JWT on stdout (nothing else), signed with the development key in .dev.vars.
 */
import { parseArgs } from "node:util";
import { Role, TOKEN_LIFETIME } from "@outpost/protocol";
import { ensureDevSecret } from "./lib/dev-vars.js";
import { TOKEN_OPTIONS } from "./lib/script-flags.js";
import { signUserToken } from "./lib/tokens.js";

const HELP = `Usage: npm run -s token -- --org ORG --role ROLE [--sub SUBJECT] [--ttl SECONDS]

Prints a user/API token (a JWT) for the local control plane on stdout, signed with the
development key in .dev.vars (created when missing).

  --org ORG        the organisation the token acts in (default: local)
  --role ROLE      admin | operator | viewer (default: admin)
  --sub SUBJECT    who the token names (default: local:ROLE)
  --ttl SECONDS    lifetime (default: ${TOKEN_LIFETIME.api.defaultSeconds}, thirty days; at most
                   ${TOKEN_LIFETIME.api.maxSeconds}, ninety days: the Worker refuses longer-lived tokens)
  -h, --help       this text
`;

const { values } = (() => {
  try {
    return parseArgs({ options: TOKEN_OPTIONS });
  } catch (err) {
    process.stderr.write(`token: ${err instanceof Error ? err.message : String(err)}\n\n${HELP}`);
    process.exit(2);
  }
})();
if (values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
const role = Role.safeParse(values.role);
const ttl = Number(values.ttl);
if (!role.success || !Number.isInteger(ttl) || ttl <= 0 || ttl > TOKEN_LIFETIME.api.maxSeconds) {
  process.stderr.write(`token: --role must be admin, operator or viewer and --ttl a whole number of seconds from 1 to ${TOKEN_LIFETIME.api.maxSeconds}\n\n${HELP}`);
  process.exit(2);
}
const { secret } = ensureDevSecret();
process.stdout.write(`${await signUserToken({ secret, org: values.org, role: role.data, subject: values.sub, ttl })}\n`);
