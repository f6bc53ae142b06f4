import type { EnvironmentTreeNode, SpawnGrant } from "@outpost/protocol";
import { integer, str, type Command } from "../command.js";
import { UsageError } from "../errors.js";
import { print } from "../output.js";

const csv = (v: string | undefined) => v?.split(",").filter(Boolean);

/** The tree as indented lines: "name (id) state provider", children below their parent. */
export function treeLines(node: EnvironmentTreeNode, depth = 0): string[] {
  const line = `${"  ".repeat(depth)}${node.name} (${node.id}) ${node.state} ${node.provider}${node.keep ? " keep" : ""}`;
  return [line, ...node.children.flatMap((c) => treeLines(c, depth + 1))];
}

function scopeText(ref: string, spawn: SpawnGrant | null): string {
  return spawn
    ? `${ref}: up to ${spawn.maxChildren} children, depth ${spawn.maxDepth}; providers ${spawn.providers?.join(", ") ?? "any"}; capabilities ${spawn.capabilities?.join(", ") ?? "any"}`
    : `${ref} may not spawn children (grant it with --max-children N)`;
}

export const childrenCommands: Command[] = [
  {
    name: "children list",
    summary: "An environment and every environment spawned below it, as a tree",
    args: "ENV",
    json: true,
    read: true,
    positionals: { min: 1, max: 1 },
    async run(ctx, [ref]) {
      ctx.about(ref!);
      const tree = await ctx.client().getChildren(ref!);
      print(ctx, { tree }, () => treeLines(tree).join("\n"));
    },
  },
  {
    name: "children scope",
    summary: "Show, grant (admin) or withdraw (--none) an environment's scope to spawn children",
    args: "ENV",
    description:
      "Without options, shows the scope. With any of them, grants it; the child may use only the providers and capabilities listed (absent: any).\nGranting or withdrawing prints the environment's new agent token, which carries the scope: the connected agent is handed it; an agent started later needs it (--json: { spawn, agentToken, delivered }).",
    options: {
      "max-children": { type: "string", value: "N", description: "children it may have at once (default 4, at most 1000)" },
      "max-depth": { type: "string", value: "N", description: "1: children only; 2: they may spawn their own; … (default 1, at most 16)" },
      providers: { type: "string", value: "ID,ID", description: "providers a child may use" },
      capabilities: { type: "string", value: "CAP,CAP", description: "capabilities a child may require" },
      none: { type: "boolean", description: "withdraw the scope" },
    },
    json: true,
    positionals: { min: 1, max: 1 },
    examples: ["outpost children scope planner --max-children 3 --providers local,worktree", "outpost children scope planner --none"],
    async run(ctx, [ref], v) {
      ctx.about(ref!);
      const grants = ["max-children", "max-depth", "providers", "capabilities"].some((k) => v[k] !== undefined);
      if (v.none === true && grants) throw new UsageError("children scope: --none takes no other option");
      const c = ctx.client();
      if (v.none !== true && !grants) {
        const spawn = await c.getSpawnScope(ref!);
        return print(ctx, { spawn }, () => scopeText(ref!, spawn));
      }
      const r = await c.setSpawnScope(
        ref!,
        v.none === true
          ? null
          : {
              maxChildren: integer(str(v["max-children"]), "--max-children", 1),
              maxDepth: integer(str(v["max-depth"]), "--max-depth", 1),
              providers: csv(str(v.providers)),
              capabilities: csv(str(v.capabilities)),
            },
      );
      print(ctx, r, () => `${scopeText(ref!, r.spawn)}\nagent token: ${r.agentToken}`);
      if (!ctx.json) ctx.note(r.delivered ? "the connected agent was handed this token" : "no agent is connected: start the environment's agent with this token");
    },
  },
  {
    name: "children spawn",
    summary: "Spawn a child of an environment, within its scope (403 outside it, 409 at a limit)",
    args: "ENV NAME",
    description: "Like env create, under ENV: stopping or archiving ENV stops or archives the child too, unless --keep. Prints the child's agent token.",
    options: {
      provider: { type: "string", short: "p", value: "ID", description: "the provider" },
      requires: { type: "string", value: "CAP,CAP", description: "place it on a host with these capabilities" },
      keep: { type: "boolean", description: "keep it when ENV is stopped or archived" },
    },
    json: true,
    positionals: { min: 2, max: 2 },
    examples: ["outpost children spawn planner worker-1 --provider local"],
    async run(ctx, [ref, name], v) {
      ctx.about(ref!);
      const requires = csv(str(v.requires));
      const created = await ctx.client().spawnChild(ref!, { name: name!, provider: str(v.provider), requires: requires ? { capabilities: requires } : undefined, keep: v.keep === true || undefined });
      print(ctx, created, () => `spawned ${created.environment.name} (${created.environment.id}) under ${ref}: ${created.environment.state}\nagent token: ${created.agentToken}`);
    },
  },
  {
    name: "children rm",
    summary: "Close (archive) a child and everything below it",
    args: "ENV CHILD",
    json: true,
    positionals: { min: 2, max: 2 },
    async run(ctx, [ref, child]) {
      ctx.about(ref!);
      const e = await ctx.client().closeChild(ref!, child!);
      print(ctx, { environment: e }, () => `${e.name} (${e.id}): ${e.state}`);
    },
  },
];
