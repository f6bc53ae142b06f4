import { lifetimeText, MIN_TOKEN_TTL_SECONDS, Role, TOKEN_LIFETIME } from "@outpost/protocol";
import { duration, list, pairs, str, type Command } from "../command.js";
import { UsageError } from "../errors.js";
import { ago, json, print, table } from "../output.js";

const hostToken = (name: string, summary: string): Command => ({
  name,
  summary,
  args: "NAME",
  description: "Prints the token once; start the host with\n  npx outpost-agent host --url URL --token TOKEN",
  options: {
    providers: { type: "string", value: "ID,ID", description: "the only providers it may offer" },
    ttl: {
      type: "string",
      value: "DURATION",
      description: `how long it lasts: seconds, or 90m, 12h, 30d (default one year, ${lifetimeText(TOKEN_LIFETIME.host.defaultSeconds)}; at most five years, ${lifetimeText(TOKEN_LIFETIME.host.maxSeconds)}; at least ${MIN_TOKEN_TTL_SECONDS} s)`,
    },
  },
  json: true,
  positionals: { min: 1, max: 1 },
  async run(ctx, [hostName], v) {
    const providers = str(v.providers)?.split(",").filter(Boolean);
    const r = await ctx.client().createHostToken({ name: hostName!, providers, ttlSeconds: duration(str(v.ttl), "--ttl", { min: MIN_TOKEN_TTL_SECONDS, max: TOKEN_LIFETIME.host.maxSeconds }) });
    print(ctx, r, () => r.token);
  },
});

const userToken: Command = {
  name: "tokens user",
  summary: "Issue a user/API token for this org (admin): a role no higher than yours, for a person, CI or a script",
  args: "--role ROLE",
  description:
    "Prints the token once (--json: { token, org, role, sub, expiresAt }). It cannot be revoked on its own: give it the shortest lifetime that will do; rotate OUTPOST_JWT_SECRET to revoke every token.",
  options: {
    role: { type: "string", value: "ROLE", description: "viewer (reads), operator (also creates, starts, execs, writes files) or admin; at most your own" },
    name: { type: "string", value: "NAME", description: "who it is for, its subject (default: your subject/ROLE)" },
    ttl: {
      type: "string",
      value: "DURATION",
      description: `how long it lasts: seconds, or 90m, 12h, 7d (default ${lifetimeText(TOKEN_LIFETIME.api.defaultSeconds)}; at most ${lifetimeText(TOKEN_LIFETIME.api.maxSeconds)}; at least ${MIN_TOKEN_TTL_SECONDS} s)`,
    },
  },
  json: true,
  positionals: { min: 0, max: 0 },
  examples: ["outpost tokens user --role viewer --ttl 7d --name ci-dashboard"],
  async run(ctx, _, v) {
    const role = Role.safeParse(str(v.role));
    if (!role.success) throw new UsageError(`tokens user: --role must be viewer, operator or admin${v.role === undefined ? "" : `, not '${str(v.role)}'`}`, "See outpost tokens user --help.");
    const ttlSeconds = duration(str(v.ttl), "--ttl", { min: MIN_TOKEN_TTL_SECONDS, max: TOKEN_LIFETIME.api.maxSeconds });
    const r = await ctx.client().createUserToken({ role: role.data, name: str(v.name), ttlSeconds });
    print(ctx, r, () => r.token);
    if (!ctx.json) ctx.note(`${r.role} token for ${r.sub} in org ${r.org}, expires ${r.expiresAt}`);
  },
};

export const adminCommands: Command[] = [
  {
    name: "providers list",
    summary: "Providers installed in the org, and which connected hosts offer them",
    args: "",
    json: true,
    read: true,
    positionals: { min: 0, max: 0 },
    async run(ctx) {
      const r = await ctx.client().listProviders();
      const offered = (o: Array<{ host: string; connected: boolean }>) => o.map((x) => `${x.host}${x.connected ? "" : " (offline)"}`).join(", ") || "-";
      const rows = [
        ...r.providers.map((p) => ({ id: p.id, installed: "yes", "offered by": offered(p.offeredBy), config: Object.keys(p.config).join(",") || "-" })),
        ...r.offeredNotInstalled.map((p) => ({ id: p.id, installed: "no", "offered by": offered(p.offeredBy), config: "-" })),
      ];
      print(ctx, r, () => (rows.length ? table(rows, ["id", "installed", "offered by", "config"]) : ctx.note("no providers installed or offered (connect a host with `outpost-agent host`, or `outpost providers install ID`)")));
    },
  },
  {
    name: "providers install",
    summary: "Install a provider in the org with its config (replaces an earlier install)",
    args: "ID",
    options: { config: { type: "string", multiple: true, value: "K=V", description: "a config value (JSON values are parsed)" } },
    json: true,
    positionals: { min: 1, max: 1 },
    async run(ctx, [id], v) {
      const raw = pairs(list(v.config), "--config") ?? {};
      const config = Object.fromEntries(Object.entries(raw).map(([k, x]) => [k, parseValue(x)]));
      const r = await ctx.client().installProvider({ id: id!, config });
      print(ctx, r, () => `installed ${r.provider.id}`);
    },
  },
  {
    name: "providers rm",
    summary: "Uninstall a provider from the org",
    args: "ID",
    positionals: { min: 1, max: 1 },
    async run(ctx, [id]) {
      await ctx.client().uninstallProvider(id!);
      ctx.note(`uninstalled ${id}`);
    },
  },
  {
    name: "hosts list",
    summary: "The org's provider hosts: providers, capabilities, load, connected",
    args: "",
    json: true,
    read: true,
    positionals: { min: 0, max: 0 },
    async run(ctx) {
      const hosts = await ctx.client().listHosts();
      print(ctx, { hosts }, () => {
        if (hosts.length === 0) return ctx.note("no provider hosts (issue a token with `outpost tokens host NAME` and run `outpost-agent host`)");
        return table(
          hosts.map((h) => ({
            name: h.name,
            connected: h.connected ? "yes" : "no",
            environments: `${h.environments}/${h.maxEnvironments}`,
            providers: h.providers.map((p) => p.id).join(",") || "-",
            capabilities: h.capabilities.join(",") || "-",
            "last hello": ago(h.lastHelloAt),
          })),
          ["name", "connected", "environments", "providers", "capabilities", "last hello"],
        );
      });
    },
  },
  hostToken("hosts token", "Issue a provider host token (same as `outpost tokens host`)"),
  hostToken("tokens host", "Issue a provider host token for `outpost-agent host`"),
  userToken,
  {
    name: "tokens rotate-agent",
    summary: "Issue a new agent token for an environment; the old one stops working and its agent is cut off",
    args: "ENV",
    json: true,
    positionals: { min: 1, max: 1 },
    async run(ctx, [ref]) {
      ctx.about(ref!);
      const r = await ctx.client().rotateAgentToken(ref!);
      print(ctx, r, () => r.agentToken);
      if (!ctx.json) ctx.note(`generation ${r.generation}; restart the environment's agent with this token`);
    },
  },
  {
    name: "health",
    summary: "Whether the control plane answers, and its version",
    args: "",
    json: true,
    read: true,
    positionals: { min: 0, max: 0 },
    async run(ctx) {
      const h = await ctx.client().health();
      print(ctx, h, () => `ok: ${ctx.config().url} (version ${h.version})`);
    },
  },
  {
    name: "openapi",
    summary: "Print the control plane's OpenAPI 3.1 document",
    args: "",
    positionals: { min: 0, max: 0 },
    async run(ctx) {
      ctx.out(json(await ctx.client().openapi()));
    },
  },
];

function parseValue(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    if (raw === "") throw new UsageError("--config: empty value");
    return raw;
  }
}
