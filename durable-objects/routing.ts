/**
 * Route resolution for execution chaining, pure: what an environment does with a request (run it
 * here, send it on, fan it out), and whether it admits a request forwarded to it (gateway, allowed
 * senders, loops, hop limit). The Durable Object applies the answer; this file decides it.
 */
import type { Gateway, RouteRule, Target } from "@outpost/protocol";

/** An environment on a request's path. */
export interface Hop {
  id: string;
  name: string;
}

/** What travels with a forwarded request: who started it and where it has been. */
export interface Trail {
  /** The environment (or, across deployments, `url#id`) the request started in. */
  origin: string;
  /** Every environment the request passed through, origin first (ids). */
  visited: string[];
  /** Names beside the ids, for messages; same length as visited. */
  names: string[];
  /** Hops taken so far (the origin is hop 0). */
  hops: number;
  maxHops: number;
  /** How long the agent that runs the request has to acknowledge it (the origin's choice). */
  ackTimeoutMs: number;
}

export type Decision =
  | { kind: "local" }
  | { kind: "forward"; next: Target; rest: Target[] }
  | { kind: "fanout"; targets: Target[] }
  | { kind: "refuse"; code: string; message: string };

export type Admission = { ok: true; trail: Trail } | { ok: false; code: string; message: string };

/** Where a request is told to go (only the head of an explicit path carries this). */
export interface Explicit {
  target?: Target;
  route?: Target[];
  targets?: Target[];
}

export function targetLabel(t: Target): string {
  return typeof t === "string" ? t : `capability:${t.capability}`;
}

/**
 * The rule for a request: the most specific match wins (`type:action`, then `type`, then `*`);
 * within one level the first rule listed. Without any rule, work runs where it arrived.
 */
export function ruleFor(rules: readonly RouteRule[], type: string, action: string | null): RouteRule["to"] {
  const levels = [action ? `${type}:${action}` : null, type, "*"];
  for (const level of levels) {
    if (!level) continue;
    const rule = rules.find((r) => r.match === level);
    if (rule) return rule.to;
  }
  return "local";
}

/**
 * What to do with a request in this environment. An explicit path wins over the rules: `targets`
 * fans out, `route` sends it to its first hop with the rest, `target` is a route of one. Once the
 * explicit path is used up the environment's own rules decide (so a chain may go on through them).
 */
export function decide(o: { explicit?: Explicit | null; rules: readonly RouteRule[]; type: string; action: string | null }): Decision {
  const e = o.explicit;
  if (e?.targets) {
    if (e.targets.length === 0) return { kind: "refuse", code: "bad_request", message: "targets is empty" };
    return { kind: "fanout", targets: e.targets };
  }
  const route = e?.route ?? (e?.target !== undefined ? [e.target] : null);
  if (route && route.length > 0) return { kind: "forward", next: route[0]!, rest: route.slice(1) };
  const to = ruleFor(o.rules, o.type, o.action);
  return to === "local" ? { kind: "local" } : { kind: "forward", next: to, rest: [] };
}

/** A new trail for a request that starts in `self`. */
export function originTrail(self: Hop, maxHops: number, ackTimeoutMs: number): Trail {
  return { origin: self.id, visited: [self.id], names: [self.name], hops: 0, maxHops, ackTimeoutMs };
}

/** Where a request forwarded from another deployment (federation) has been. */
export interface Via {
  origin: string;
  hops: number;
  trail: string[];
  names?: string[];
  maxHops: number;
  ackTimeoutMs?: number;
}

/**
 * A request that arrives from another deployment: its token already authorized it, so no gateway
 * is asked, but it keeps counting hops and its path, so loops across deployments are refused too.
 */
export function arrive(self: Hop, via: Via, maxHops: number, ackTimeoutMs: number): Admission {
  const names = via.names && via.names.length === via.trail.length ? via.names : via.trail;
  const trail: Trail = { origin: via.origin, visited: via.trail, names, hops: via.hops, maxHops: Math.min(via.maxHops, maxHops), ackTimeoutMs: via.ackTimeoutMs ?? ackTimeoutMs };
  return admit({ accept: true, allowFrom: ["*"], capabilities: [] }, self, { id: via.trail.at(-1) ?? via.origin, name: names.at(-1) ?? via.origin }, trail);
}

/**
 * Whether `self` takes a request forwarded by `from`: its gateway must accept and allow the sender
 * (by id or name, or `*`), it must not already be on the request's path (a loop), and the hop must
 * stay within the limit. On admission, the trail with `self` appended.
 */
export function admit(gateway: Gateway, self: Hop, from: Hop, trail: Trail): Admission {
  const path = (extra: string) => [...trail.names, extra].join(" → ");
  if (trail.visited.includes(self.id)) {
    return { ok: false, code: "loop_detected", message: `Loop refused: ${path(self.name)} comes back to environment '${self.name}'.` };
  }
  if (trail.hops + 1 > trail.maxHops) {
    return { ok: false, code: "hop_limit", message: `Hop limit ${trail.maxHops} reached at environment '${self.name}' (${path(self.name)}).` };
  }
  if (!gateway.accept) {
    return { ok: false, code: "forbidden", message: `Environment '${self.name}' does not accept forwarded work: its gateway is inactive (PUT /v1/environments/${self.name}/gateway with accept: true).` };
  }
  const allowed = gateway.allowFrom.some((a) => a === "*" || a === from.id || a === from.name);
  if (!allowed) {
    return { ok: false, code: "forbidden", message: `Environment '${self.name}' does not accept forwarded work from '${from.name}': it is not in the gateway's allowFrom.` };
  }
  return { ok: true, trail: { ...trail, visited: [...trail.visited, self.id], names: [...trail.names, self.name], hops: trail.hops + 1 } };
}

/** A capability target resolves to candidates; those already on the path are never chosen. */
export function candidatesFor(candidates: readonly Hop[], trail: Trail): Hop[] {
  return candidates.filter((c) => !trail.visited.includes(c.id));
}
