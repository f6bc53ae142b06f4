/**
 * The environment's event log: append-only with a monotonic `seq`, paged by cursor, pushed live to
 * watchers (watchers.ts). Retention is bounded by count and by age; pruning runs every PRUNE_EVERY appends
 * and on alarms, never on a read.
 */
import type { EnvironmentEvent } from "@outpost/protocol";
import type { Sql } from "./sql.js";

export const RETENTION = { maxEvents: 10_000, maxAgeMs: 30 * 24 * 3600 * 1000 };
const PRUNE_EVERY = 256;

interface Row {
  seq: number;
  at: string;
  type: string;
  data: string;
}

const toEvent = (r: Row): EnvironmentEvent => ({ seq: r.seq, at: r.at, type: r.type, data: JSON.parse(r.data) as Record<string, unknown> });

export class EventLog {
  /**
   * The newest seq, kept in memory so a watcher's ack needs no query. Memory does not survive
   * hibernation or eviction: null then, and read again from the table the first time it is needed.
   */
  private head: number | null = null;

  constructor(
    private readonly sql: Sql,
    private readonly now: () => number,
    private readonly deliver: (event: EnvironmentEvent) => void,
  ) {}

  append(type: string, data: Record<string, unknown>): EnvironmentEvent {
    const at = new Date(this.now()).toISOString();
    const [row] = this.sql<Row>`INSERT INTO events (at, type, data) VALUES (${at}, ${type}, ${JSON.stringify(data)}) RETURNING seq, at, type, data`;
    const event = toEvent(row!);
    this.head = event.seq;
    this.deliver(event);
    if (event.seq % PRUNE_EVERY === 0) this.prune();
    return event;
  }

  page(after: number, limit: number): { events: EnvironmentEvent[]; next: number } {
    const rows = this.sql<Row>`SELECT seq, at, type, data FROM events WHERE seq > ${after} ORDER BY seq LIMIT ${limit}`;
    const events = rows.map(toEvent);
    return { events, next: events.length ? events[events.length - 1]!.seq : after };
  }

  /** The newest event's seq (0 when the log is empty). */
  lastSeq(): number {
    if (this.head === null) {
      const [top] = this.sql<{ seq: number | null }>`SELECT MAX(seq) AS seq FROM events`;
      this.head = top?.seq ?? 0;
    }
    return this.head;
  }

  /** The cursor after which at most `tail` retained events remain (0 when `tail` is absent or not a count). */
  tailCursor(tail: string | null): number {
    const n = tail === null || tail === "" ? NaN : Number(tail);
    if (!Number.isInteger(n) || n < 0) return 0;
    return Math.max(0, this.lastSeq() - n);
  }

  prune(): void {
    const cutoff = new Date(this.now() - RETENTION.maxAgeMs).toISOString();
    const floor = this.lastSeq() - RETENTION.maxEvents;
    const [old] = this.sql<{ n: number }>`SELECT COUNT(*) AS n FROM events WHERE seq <= ${floor} OR at < ${cutoff}`;
    if (old && old.n > 0) this.sql`DELETE FROM events WHERE seq <= ${floor} OR at < ${cutoff}`;
  }
}
