import { ACK_TIMEOUT_LIMITS_MS, DEFAULT_ACK_TIMEOUT_MS, DEFAULT_MAX_HOPS, MAX_HOPS_LIMIT, type ForwardBody, type Target } from "@outpost/protocol";
import type { z } from "zod";
import { integer, list, pairs, str, type Command, type Context } from "../command.js";
import { UsageError } from "../errors.js";
import { json, print } from "../output.js";
import { exitCodeOf } from "./exec.js";

/** `capability:NAME` is a capability target; anything else an environment name or id. */
export function target(raw: string): Target {
  const m = /^capability:(.+)$/.exec(raw);
  return m ? { capability: m[1]! } : raw;
}
const targets = (raw: string | undefined) => raw?.split(",").filter(Boolean).map(target);
const show = (t: Target) => (typeof t === "string" ? t : `capability:${t.capability}`);

async function forwarded(ctx: Context, ref: string, body: z.input<typeof ForwardBody>): Promise<number> {
  const client = ctx.client();
  const abort = new AbortController();
  let forwardId: string | null = null;
  let interrupted = false;
  ctx.onInterrupt(async () => {
    interrupted = true;
    if (forwardId) await client.cancelForward(ref, forwardId).catch(() => abort.abort());
    else abort.abort();
  });
  const fanOut = body.targets !== undefined;
  let code: number | null = null;
  for await (const line of client.forward(ref, body, { signal: abort.signal })) {
    if (ctx.json) ctx.out(JSON.stringify(line));
    switch (line.type) {
      case "started":
        forwardId = line.forwardId;
        break;
      case "stdout":
        if (!ctx.json) ctx.stdout.write(fanOut && line.target ? prefix(line.target, line.data) : line.data);
        break;
      case "stderr":
        if (!ctx.json) ctx.stderr.write(fanOut && line.target ? prefix(line.target, line.data) : line.data);
        break;
      case "exit":
        code = Math.max(code ?? 0, interrupted && line.cancelled ? 130 : exitCodeOf(line));
        if (!ctx.json && (fanOut || line.route.length > 2)) ctx.note(`outpost: ${line.target ? `${line.target}: ` : ""}exit ${line.exitCode ?? line.signal} via ${line.route.join(" → ")}`);
        break;
      case "result":
        if (!ctx.json) ctx.out(json(line.value));
        code = Math.max(code ?? 0, 0);
        break;
      case "error":
        if (!ctx.json) ctx.note(`outpost: ${line.target ? `${line.target}: ` : ""}${line.message} (${line.code}${line.hop ? `, at hop ${line.hop}` : ""})`);
        code = Math.max(code ?? 0, 1);
        break;
      case "done":
        return code ?? 0;
    }
    if (!fanOut && code !== null) return code;
  }
  return code ?? 1;
}

const prefix = (target: string, data: string) => data.replace(/^(?=.)/gm, `[${target}] `);

export const chainingCommands: Command[] = [
  {
    name: "forward",
    summary: "Chained exec: run a command in another environment by way of this one (its gateway and routing rules apply)",
    args: "ENV -- COMMAND [ARG...]",
    description:
      "Without --to/--route/--targets, ENV's routing rules decide where the command runs. Output streams back hop by hop; the exit code passes through (with --targets the highest). TARGET is an environment name or id, or capability:NAME. Ctrl-C cancels it at every hop. --json prints each line of the forward stream as it comes.",
    options: {
      to: { type: "string", value: "TARGET", description: "run it there" },
      route: { type: "string", value: "T1,T2,…", description: "along these hops, in order" },
      targets: { type: "string", value: "T1,T2,…", description: "fan out: run it in each" },
      type: { type: "string", value: "TYPE", description: "the request type the rules match (default exec)" },
      cwd: { type: "string", value: "DIR", description: "working directory, relative to the workspace" },
      env: { type: "string", short: "e", multiple: true, value: "K=V", description: "an environment variable for the command" },
      timeout: { type: "string", value: "MS", description: "kill it after MS milliseconds (at most 86400000, a day)" },
      shell: { type: "boolean", description: "run COMMAND (one string) with /bin/sh -c" },
    },
    json: true,
    positionals: { min: 2, max: Infinity },
    examples: ["outpost forward builder --to gpu-box -- nvidia-smi", "outpost forward a --route b,c -- hostname", "outpost forward a --targets b,c -- git status --short"],
    async run(ctx, [ref, ...command], v) {
      ctx.about(ref!);
      const given = [v.to, v.route, v.targets].filter((x) => x !== undefined).length;
      if (given > 1) throw new UsageError("forward: give at most one of --to, --route and --targets");
      const to = str(v.to);
      return forwarded(ctx, ref!, {
        type: str(v.type),
        exec: { command, cwd: str(v.cwd), env: pairs(list(v.env), "--env"), timeoutMs: integer(str(v.timeout), "--timeout", 1), shell: v.shell === true ? true : undefined },
        target: to ? target(to) : undefined,
        route: targets(str(v.route)),
        targets: targets(str(v.targets)),
      });
    },
  },
  {
    name: "gateway get",
    summary: "Whether an environment takes forwarded work, from whom, and its routing rules",
    args: "ENV",
    json: true,
    read: true,
    positionals: { min: 1, max: 1 },
    async run(ctx, [ref]) {
      ctx.about(ref!);
      const r = await ctx.client().getGateway(ref!);
      print(ctx, r, () =>
        [
          `accept        ${r.gateway.accept ? "yes" : "no"}`,
          `allow from    ${r.gateway.allowFrom.join(", ") || "-"}`,
          `capabilities  ${r.gateway.capabilities.join(", ") || "-"}`,
          `max hops      ${r.routing.maxHops}`,
          `ack timeout   ${r.routing.ackTimeoutMs} ms`,
          ...r.routing.rules.map((rule) => `route         ${rule.match} → ${rule.to === "local" ? "local" : show(rule.to)}`),
        ].join("\n"),
      );
    },
  },
  {
    name: "gateway set",
    summary: "Open or close an environment's gateway to forwarded work",
    args: "ENV",
    options: {
      accept: { type: "boolean", description: "take forwarded work" },
      closed: { type: "boolean", description: "take none" },
      "allow-from": { type: "string", value: "ENV,ENV|*", description: "from these environments (* = the whole org)" },
      capabilities: { type: "string", value: "CAP,CAP", description: "capabilities it offers to routing" },
    },
    json: true,
    positionals: { min: 1, max: 1 },
    examples: ["outpost gateway set gpu-box --accept --allow-from '*' --capabilities gpu"],
    async run(ctx, [ref], v) {
      ctx.about(ref!);
      if (v.accept === v.closed) throw new UsageError("gateway set: give exactly one of --accept and --closed");
      const gateway = await ctx.client().setGateway(ref!, {
        accept: v.accept === true,
        allowFrom: str(v["allow-from"])?.split(",").filter(Boolean),
        capabilities: str(v.capabilities)?.split(",").filter(Boolean),
      });
      print(ctx, { gateway }, () => `${ref}: ${gateway.accept ? `accepts from ${gateway.allowFrom.join(", ") || "no one yet"}` : "closed"}`);
    },
  },
  {
    name: "routes set",
    summary: "Set an environment's routing rules: per request type, run locally or send to a target",
    args: "ENV",
    options: {
      rule: { type: "string", multiple: true, value: "MATCH=TO", description: "MATCH: exec, files, runs, a custom type, type:action or *; TO: local, an environment, or capability:NAME" },
      "max-hops": { type: "string", value: "N", description: `the hop limit for requests it originates (default ${DEFAULT_MAX_HOPS}, at most ${MAX_HOPS_LIMIT})` },
      "ack-timeout-ms": {
        type: "string",
        value: "MS",
        description: `how long the agent that runs work it originates has to acknowledge it (default ${DEFAULT_ACK_TIMEOUT_MS}; ${ACK_TIMEOUT_LIMITS_MS.min} to ${ACK_TIMEOUT_LIMITS_MS.max})`,
      },
    },
    description: "Replaces the rules, the hop limit and the acknowledgement timeout together: an option left out takes its default.",
    json: true,
    positionals: { min: 1, max: 1 },
    examples: ["outpost routes set builder --rule exec=gpu-box --rule 'files=local'", "outpost routes set builder --rule exec=capability:gpu --ack-timeout-ms 30000"],
    async run(ctx, [ref], v) {
      ctx.about(ref!);
      const rules = Object.entries(pairs(list(v.rule), "--rule") ?? {}).map(([match, to]) => ({ match, to: to === "local" ? ("local" as const) : target(to) }));
      const maxHops = integer(str(v["max-hops"]), "--max-hops", 1, MAX_HOPS_LIMIT);
      const ackTimeoutMs = integer(str(v["ack-timeout-ms"]), "--ack-timeout-ms", ACK_TIMEOUT_LIMITS_MS.min, ACK_TIMEOUT_LIMITS_MS.max);
      const routing = await ctx.client().setRoutes(ref!, { rules, maxHops, ackTimeoutMs });
      print(ctx, { routing }, () => `${ref}: ${routing.rules.length} rule${routing.rules.length === 1 ? "" : "s"}, at most ${routing.maxHops} hops, acknowledged within ${routing.ackTimeoutMs} ms`);
    },
  },
];
