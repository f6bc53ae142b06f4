import type { Environment, EnvironmentState, EnvironmentSummary } from "@outpost/protocol";
import { EnvironmentState as States } from "@outpost/protocol";
import { integer, list, pairs, str, type Command } from "../command.js";
import { UsageError } from "../errors.js";
import { ago, print, table } from "../output.js";

function describe(e: Environment): string {
  const rows: Array<[string, string]> = [
    ["id", e.id],
    ["name", e.name],
    ["state", e.state],
    ["provider", e.provider],
    ["host", e.host ?? "-"],
    ["connected", e.connected ? "yes" : "no"],
    ["agent", e.agent ? `${e.agent.version} on ${e.agent.hostname} (${e.agent.platform}); ${e.agent.capabilities.join(", ")}` : "-"],
    ["created", `${e.createdAt} (${ago(e.createdAt)})`],
    ["started", e.startedAt ? `${e.startedAt} (${ago(e.startedAt)})` : "-"],
    ["last seen", ago(e.lastSeenAt)],
    ["restarts", String(e.restartCount)],
    ["errors", e.lastError ? `${e.errorCount}; last: ${e.lastError}` : String(e.errorCount)],
  ];
  if (Object.keys(e.metadata).length) rows.push(["metadata", Object.entries(e.metadata).map(([k, v]) => `${k}=${v}`).join(" ")]);
  if (e.health) rows.push(["health", `load ${e.health.cpu.load1} on ${e.health.cpu.cores} cores, ${Math.round(e.health.memory.freeBytes / 2 ** 20)} MiB free, ${e.health.processes} processes`]);
  return rows.map(([k, v]) => `${k.padEnd(10)} ${v}`).join("\n");
}

const brief = (e: Environment) => `${e.name} (${e.id}): ${e.state}`;

const action = (name: "start" | "stop" | "restart", summary: string): Command => ({
  name: `env ${name}`,
  summary,
  args: "ENV",
  json: true,
  positionals: { min: 1, max: 1 },
  async run(ctx, [ref]) {
    ctx.about(ref!);
    const c = ctx.client();
    const e = name === "start" ? await c.startEnvironment(ref!) : name === "stop" ? await c.stopEnvironment(ref!) : await c.restartEnvironment(ref!);
    print(ctx, { environment: e }, () => brief(e));
  },
});

export const envCommands: Command[] = [
  {
    name: "env create",
    summary: "Create an environment",
    args: "NAME",
    description:
      "Placed on a connected provider host when one offers the provider (or --requires/--host say so); otherwise it waits for an agent you start with the printed agent token:\n  npx outpost-agent --url URL --token AGENT_TOKEN --workspace DIR",
    options: {
      provider: { type: "string", short: "p", value: "ID", description: "the provider (local, worktree, docker, sandbox, …)" },
      config: { type: "string", multiple: true, value: "K=V", description: "provider config (a JSON value is parsed: --config cpus=2)" },
      metadata: { type: "string", multiple: true, value: "K=V", description: "free-form labels" },
      requires: { type: "string", value: "CAP,CAP", description: "place it on a host with these capabilities" },
      host: { type: "string", value: "NAME", description: "place it on this provider host" },
    },
    json: true,
    positionals: { min: 1, max: 1 },
    examples: ["outpost env create demo --provider local", "outpost env create gpu-job --requires gpu --config image=node:20"],
    async run(ctx, [name], v) {
      const config = pairs(list(v.config), "--config");
      const parsedConfig = config ? Object.fromEntries(Object.entries(config).map(([k, raw]) => [k, jsonOrString(raw)])) : undefined;
      const requires = str(v.requires);
      const created = await ctx.client().createEnvironment({
        name: name!,
        provider: str(v.provider),
        config: parsedConfig,
        metadata: pairs(list(v.metadata), "--metadata"),
        requires: requires ? { capabilities: requires.split(",").filter(Boolean) } : undefined,
        host: str(v.host),
      });
      const e = created.environment;
      print(ctx, created, () => `created ${e.name} (${e.id}): ${e.state}${e.host ? ` on host ${e.host}` : ""}\nagent token: ${created.agentToken}`);
      if (!ctx.json && !e.host) ctx.note(`No host created it: start its agent with\n  npx outpost-agent --url ${ctx.config().url} --token <agent token> --workspace DIR`);
    },
  },
  {
    name: "env list",
    summary: "List the org's environments",
    args: "",
    options: {
      state: { type: "string", value: "STATE", description: `only this state (${States.options.join(", ")}); archived ones only this way` },
      provider: { type: "string", value: "ID", description: "only this provider" },
      limit: { type: "string", value: "N", description: "at most N (default 100)" },
    },
    json: true,
    read: true,
    positionals: { min: 0, max: 0 },
    async run(ctx, _p, v) {
      const state = str(v.state);
      if (state !== undefined && !States.safeParse(state).success) throw new UsageError(`--state: '${state}' is not a state`, `States: ${States.options.join(", ")}.`);
      const limit = integer(str(v.limit), "--limit", 1) ?? 100;
      const all: EnvironmentSummary[] = [];
      let cursor: string | undefined;
      for (let page = 0; page < 1000 && all.length < limit; page++) {
        const r = await ctx.client().listEnvironments({ limit: Math.min(500, limit - all.length), cursor, state: state as EnvironmentState | undefined, provider: str(v.provider) });
        all.push(...r.environments);
        if (!r.nextCursor) break;
        cursor = r.nextCursor;
      }
      print(ctx, { environments: all }, () =>
        all.length
          ? table(all.map((e) => ({ id: e.id, name: e.name, state: e.state, provider: e.provider, created: ago(e.createdAt) })), ["id", "name", "state", "provider", "created"])
          : ctx.note("no environments (create one with `outpost env create NAME --provider local`)"),
      );
    },
  },
  {
    name: "env get",
    summary: "Show an environment: state, agent, health, restarts",
    args: "ENV",
    json: true,
    read: true,
    positionals: { min: 1, max: 1 },
    async run(ctx, [ref]) {
      ctx.about(ref!);
      const e = await ctx.client().getEnvironment(ref!);
      print(ctx, { environment: e }, () => describe(e));
    },
  },
  action("start", "Start an environment (it becomes running when its agent connects)"),
  action("stop", "Stop an environment: its agent is asked to shut down"),
  action("restart", "Restart an environment: its agent is asked to reconnect"),
  {
    name: "env rm",
    summary: "Archive an environment: its agent token is revoked, its resources torn down, its events kept",
    args: "ENV",
    json: true,
    positionals: { min: 1, max: 1 },
    async run(ctx, [ref]) {
      ctx.about(ref!);
      const e = await ctx.client().archiveEnvironment(ref!);
      print(ctx, { environment: e }, () => brief(e));
    },
  },
];

function jsonOrString(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}
