/**
 * The bound on forwarded work at the hop that runs it. Without one, an agent that holds its socket
 * open but has stopped (a stopped process, a wedged machine) would keep the whole chain waiting until
 * the command's own timeout. So: the agent must acknowledge the request within the origin's
 * `ackTimeoutMs`; after that, it must keep showing signs of life (heartbeats, output) and stay
 * connected, each within the environment's half-open limit (missed heartbeats). A hop that breaks
 * the rule fails with a reason that names what was missing; the chaining names the hop.
 */

export interface HopSigns {
  /** When the request went to the agent. */
  sentAt: number;
  /** When the agent acknowledged it (null: not yet). */
  ackedAt: number | null;
  /** The agent's last heartbeat (or connect), null while no agent is connected. */
  seenAt: number | null;
  /** When the hop last saw no agent connected, while it still sees none (null: connected). */
  goneSince: number | null;
  /** The last output that came back for the request. */
  progressAt: number | null;
}

export interface HopLimits {
  ackTimeoutMs: number;
  /** Silence (no heartbeat, no output) or absence this long means the agent is gone. */
  staleMs: number;
}

export type HopVerdict = { ok: true } | { ok: false; code: "timeout" | "agent_not_connected"; reason: string };

/** Whether the hop's agent is still keeping its side of the request at `now`. */
export function judgeHop(s: HopSigns, limits: HopLimits, now: number): HopVerdict {
  if (s.goneSince !== null && now - s.goneSince > limits.staleMs) {
    return { ok: false, code: "agent_not_connected", reason: `its agent disconnected and did not come back within ${limits.staleMs} ms` };
  }
  if (s.ackedAt === null) {
    if (s.goneSince === null && now - s.sentAt > limits.ackTimeoutMs) {
      return { ok: false, code: "timeout", reason: `its agent is connected but did not acknowledge the request within ${limits.ackTimeoutMs} ms` };
    }
    return { ok: true };
  }
  const lastSign = Math.max(s.ackedAt, s.seenAt ?? 0, s.progressAt ?? 0);
  if (s.goneSince === null && now - lastSign > limits.staleMs) {
    return { ok: false, code: "timeout", reason: `its agent stopped responding: no heartbeat or output for ${limits.staleMs} ms` };
  }
  return { ok: true };
}

export interface HopWatchHost {
  now(): number;
  /** The agent's last heartbeat, or null when no agent is connected. */
  agentSeenAt(): number | null;
  /** Has the agent acknowledged the request? */
  acknowledged(): boolean;
  fail(code: string, reason: string): void;
}

export interface HopWatch {
  /** Output came back: the agent is alive. */
  progress(): void;
  stop(): void;
}

/** Checks the hop's agent a few times per limit until stopped or failed. */
export function watchHop(host: HopWatchHost, limits: HopLimits): HopWatch {
  const signs: HopSigns = { sentAt: host.now(), ackedAt: null, seenAt: null, goneSince: null, progressAt: null };
  const check = () => {
    const now = host.now();
    if (signs.ackedAt === null && host.acknowledged()) signs.ackedAt = now;
    signs.seenAt = host.agentSeenAt();
    // Back after a disconnect: the request was resent, so the wait for its acknowledgement restarts.
    if (signs.seenAt !== null && signs.goneSince !== null && signs.ackedAt === null) signs.sentAt = now;
    signs.goneSince = signs.seenAt === null ? (signs.goneSince ?? now) : null;
    const verdict = judgeHop(signs, limits, now);
    if (!verdict.ok) {
      clearInterval(timer);
      host.fail(verdict.code, verdict.reason);
    }
  };
  const timer = setInterval(check, Math.max(10, Math.min(limits.ackTimeoutMs, limits.staleMs) / 4));
  return {
    progress: () => {
      signs.progressAt = host.now();
    },
    stop: () => clearInterval(timer),
  };
}
