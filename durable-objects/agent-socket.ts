/**
 * Bookkeeping for hibernating sockets: the agent's (one, tag "agent") and watchers' (many, tag
 * "watch"). Attachments survive hibernation, so they hold ids and flags only; helpers hand out
 * only sockets that are open.
 */

import type { PendingMetrics } from "./metrics.js";

export const AGENT_TAG = "agent";
export const WATCH_TAG = "watch";
/** Set by the Worker on a forwarded upgrade: which kind of socket this is. */
export const SOCKET_KIND_HEADER = "x-outpost-socket";
/** Set by the Worker on a forwarded agent upgrade after verifying the token. */
export const AGENT_GEN_HEADER = "x-outpost-agent-gen";
/** Likewise: the spawn grant the agent's token carries ("" for none; see agent-token.ts). */
export const AGENT_GRANT_HEADER = "x-outpost-agent-grant";

export interface AgentAttachment {
  role: "agent";
  /** The agent-token generation this socket authenticated with. */
  gen: number;
  /** The spawn grant its token carries (null: none); absent on sockets from before it was kept. */
  grant?: string | null;
  connectedAt: number;
  /** True once a compatible hello has been answered with welcome. */
  helloed: boolean;
  /** The highest agent seq processed on this link (see link.ts). */
  recv: number;
  /** From hello.resume: agent seqs on this connection are contiguous from here (0: unknown). */
  resume?: number;
  /** The agent's latest resource report; kept here, not in storage, so it costs no row. */
  health?: HealthReport;
  /** Cost counts not yet written to the metrics row (see metrics.ts); on one socket at most. */
  metrics?: PendingMetrics;
}

export interface HealthReport {
  at: string;
  cpu: { load1: number; cores: number };
  memory: { totalBytes: number; freeBytes: number; agentRssBytes: number };
  disk: { totalBytes: number; freeBytes: number };
  processes: number;
}

export interface WatchAttachment {
  role: "watch";
  /** The last seq the watcher acknowledged, and the last one sent to it (see watchers.ts). */
  acked: number;
  sent: number;
  /** Caught up with the log: new events go to it as they are appended. */
  live: boolean;
  /** Unacknowledged events it may hold. */
  window: number;
  /** It asked for a window, so it acks: its replay is paced instead of cut off. */
  acks: boolean;
  /** When its replay stopped on a full window (cleared by its next ack). */
  fullAt?: number;
  /** The cursor it connected with, and the ack frames it has sent (0 on sockets from before they were kept). */
  from: number;
  frames: number;
}

export type Attachment = AgentAttachment | WatchAttachment;

export function attachment(ws: WebSocket): Attachment | null {
  return (ws.deserializeAttachment() as Attachment | null) ?? null;
}

export function agentAttachment(ws: WebSocket): AgentAttachment | null {
  const a = attachment(ws);
  return a?.role === "agent" ? a : null;
}

export function openSockets(ctx: DurableObjectState, tag: string, except?: WebSocket): WebSocket[] {
  return ctx.getWebSockets(tag).filter((ws) => ws !== except && ws.readyState === WebSocket.OPEN);
}

/** The socket that serves requests: open and past its hello. */
export function readyAgent(ctx: DurableObjectState): WebSocket | null {
  return openSockets(ctx, AGENT_TAG).find((ws) => agentAttachment(ws)?.helloed) ?? null;
}

/** Closes without throwing: the socket may already be closing, or the code may not be sendable. */
export function closeQuietly(ws: WebSocket, code: number, reason: string): void {
  const sendable = code === 1000 || (code >= 3000 && code <= 4999);
  try {
    ws.close(sendable ? code : 1000, reason.slice(0, 120));
  } catch {
    // already closed
  }
}

/**
 * The metrics carrier: hands pending counts to the serving agent socket's attachment (and drops
 * them from any other), or with null drops them everywhere. False when no agent socket serves.
 */
export function carryMetrics(ctx: DurableObjectState, pending: PendingMetrics | null): boolean {
  const carrier = pending ? readyAgent(ctx) : null;
  if (pending && !carrier) return false;
  for (const ws of ctx.getWebSockets(AGENT_TAG)) {
    const a = agentAttachment(ws);
    if (!a || (ws !== carrier && !a.metrics)) continue;
    const { metrics: _dropped, ...rest } = a;
    try {
      ws.serializeAttachment(ws === carrier ? { ...rest, metrics: pending } : rest);
    } catch {
      // a socket already gone keeps nothing
    }
  }
  return true;
}

/** Counts agent sockets carried while the object slept, to be adopted once per wake. */
export function carriedMetrics(ctx: DurableObjectState): PendingMetrics[] {
  return ctx.getWebSockets(AGENT_TAG).flatMap((ws) => agentAttachment(ws)?.metrics ?? []);
}
