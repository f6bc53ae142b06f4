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
  /** The agent's last heartbeat (or connect), or null when no agent is connected. */
  agentSeenAt(): number | null;
  /** Has the agent acknowledged the request for `execId`? */
  acknowledged(execId: string): boolean;
  fail(execId: string, code: string, reason: string): void;
}

interface Watched {
  signs: HopSigns;
  limits: HopLimits;
}

/**
 * The forwarded execs this object runs, each with its deadline (the moment the verdict could next
 * turn), all checked by one timer set to the earliest. Connection changes are told, not polled.
 * The acknowledgement is seen at the ack deadline or with the first output, whichever comes first,
 * so silence after it is measured from then: lenient by at most `ackTimeoutMs`, never stricter.
 */
export class HopWatches {
  private readonly watched = new Map<string, Watched>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private timerAt = Infinity;

  constructor(private readonly host: HopWatchHost) {}

  watch(execId: string, limits: HopLimits): void {
    const now = this.host.now();
    const seenAt = this.host.agentSeenAt();
    this.watched.set(execId, { signs: { sentAt: now, ackedAt: null, seenAt, goneSince: seenAt === null ? now : null, progressAt: null }, limits });
    this.arm();
  }

  /** Output came back: the agent has the request and is alive. */
  progress(execId: string): void {
    const w = this.watched.get(execId);
    if (!w) return;
    w.signs.progressAt = this.host.now();
    w.signs.ackedAt ??= w.signs.progressAt;
  }

  stop(execId: string): void {
    if (this.watched.delete(execId) && this.watched.size === 0) this.disarm();
  }

  /** The agent's link went away: each watched exec's wait for it to come back starts now. */
  agentGone(): void {
    const now = this.host.now();
    for (const w of this.watched.values()) w.signs.goneSince ??= now;
    this.arm();
  }

  /** An agent connected: requests not yet acknowledged were resent, so their wait restarts. */
  agentBack(): void {
    const now = this.host.now();
    for (const w of this.watched.values()) {
      if (w.signs.goneSince === null) continue;
      w.signs.goneSince = null;
      if (w.signs.ackedAt === null) w.signs.sentAt = now;
    }
    this.arm();
  }

  private check(): void {
    this.timer = null;
    this.timerAt = Infinity;
    const now = this.host.now();
    const seenAt = this.host.agentSeenAt();
    for (const [execId, w] of [...this.watched]) {
      const s = w.signs;
      if (s.ackedAt === null && this.host.acknowledged(execId)) s.ackedAt = now;
      s.seenAt = seenAt;
      if (seenAt === null) s.goneSince ??= now;
      const verdict = judgeHop(s, w.limits, now);
      if (!verdict.ok) {
        this.watched.delete(execId);
        this.host.fail(execId, verdict.code, verdict.reason);
      }
    }
    this.arm();
  }

  /** The moment `w`'s verdict could next change, given what is known now. */
  private deadline(w: Watched): number {
    const { signs: s, limits: l } = w;
    if (s.goneSince !== null) return s.goneSince + l.staleMs + 1;
    if (s.ackedAt === null) return s.sentAt + l.ackTimeoutMs + 1;
    return Math.max(s.ackedAt, s.seenAt ?? 0, s.progressAt ?? 0) + l.staleMs + 1;
  }

  /** One timer for all: set to the earliest deadline. */
  private arm(): void {
    let at = Infinity;
    for (const w of this.watched.values()) at = Math.min(at, this.deadline(w));
    if (at === this.timerAt) return;
    this.disarm();
    if (at === Infinity) return;
    this.timerAt = at;
    this.timer = setTimeout(() => this.check(), Math.max(1, at - this.host.now()));
  }

  private disarm(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
  }
}
