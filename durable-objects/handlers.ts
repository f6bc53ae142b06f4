/**
 * Custom request types with a payload: the destination environment's gateway declares a handler
 * (a command) per type, so the sender needs to know only the type, never the destination's
 * commands. The most specific handler wins (`type:action`, then `type`); the command gets the
 * payload as JSON on stdin and the request type, origin and forward id in its environment.
 */
import { bytesToBase64, type ExecParams, type Handler } from "@outpost/protocol";
import { fail, ok, type Outcome } from "./outcome.js";

export function handlerFor(handlers: Record<string, Handler> | undefined, type: string, action: string | null): { name: string; handler: Handler } | null {
  for (const name of [action ? `${type}:${action}` : null, type]) {
    const handler = name ? handlers?.[name] : undefined;
    if (name && handler) return { name, handler };
  }
  return null;
}

/** The exec that runs a payload request here, or why there is none (naming this environment). */
export function handlerExec(
  o: { handlers: Record<string, Handler> | undefined; type: string; action: string | null; payload: unknown; hop: string; origin: string; forwardId: string },
): Outcome<Omit<ExecParams, "stream">> {
  const full = o.action ? `${o.type}:${o.action}` : o.type;
  const found = handlerFor(o.handlers, o.type, o.action);
  if (!found) {
    const declared = Object.keys(o.handlers ?? {});
    return fail("not_found", `Hop '${o.hop}' has no handler for request type '${full}' (its gateway declares ${declared.length ? declared.map((d) => `'${d}'`).join(", ") : "none"}).`);
  }
  const { command, cwd, env, timeoutMs } = found.handler;
  const stdin = bytesToBase64(new TextEncoder().encode(JSON.stringify(o.payload)));
  return ok({
    command,
    ...(cwd ? { cwd } : {}),
    ...(timeoutMs ? { timeoutMs } : {}),
    env: { ...env, OUTPOST_REQUEST_TYPE: full, OUTPOST_FORWARD_ORIGIN: o.origin, OUTPOST_FORWARD_ID: o.forwardId },
    stdin,
  });
}
