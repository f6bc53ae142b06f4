/**
 * What this object costs, counted by itself: wake-ups (the constructor runs once per wake, after
 * hibernation or eviction), entries per entry point, alarm firings and SQLite rows written.
 *
 * Counts are kept in memory and persisted as one row at the end of an entry, but only when that row
 * rides along with other writes: an entry that wrote nothing else (a health report, a quiet link
 * check, a read) hands its counts to a carrier instead, the agent socket's attachment, which
 * survives hibernation and costs no row, and the next wake adopts them. So an idle environment
 * writes its metrics about once an hour (FLUSH_AT_LEAST_EVERY_MS), not once per wake. Counts carried
 * by a socket that vanishes without a close event (a control plane restart) are lost; at most that
 * hour's. The row a flush writes is counted in the row itself, so nothing goes uncounted.
 */
import type { EnvironmentMetrics } from "@outpost/protocol";
import { FLUSH_AT_LEAST_EVERY_MS } from "./metrics-policy.js";
import type { Sql } from "./sql.js";

export type Entry = "fetch" | "rpc" | "webSocketMessage" | "webSocketClose" | "webSocketError" | "alarm";

/** Counts not yet in the metrics row; `since` is when the oldest of them was counted. */
export interface PendingMetrics {
  since: number;
  wakeups: number;
  alarms: number;
  rowsWritten: number;
  entries: Record<string, number>;
  lastHealthCheckAt: string | null;
}

/** Takes the pending counts (null: drop them wherever they were carried); false when no carrier is there. */
export type Carrier = (pending: PendingMetrics | null) => boolean;

/** What one metrics flush writes: the upsert of its single row. */
const FLUSH_ROWS = 1;

export class Metrics {
  private delta: PendingMetrics | null = null;
  /** Rows written by other statements since the last flush or hand-over. */
  private rowsSinceFlush = 0;
  private dirty = false;

  constructor(private readonly now: () => number) {}

  wake(): void {
    this.pending().wakeups++;
  }

  enter(entry: Entry): void {
    const d = this.pending();
    d.entries[entry] = (d.entries[entry] ?? 0) + 1;
    if (entry === "alarm") d.alarms++;
  }

  wrote(rows: number): void {
    this.pending().rowsWritten += rows;
    this.rowsSinceFlush += rows;
  }

  /**
   * The alarm was set or deleted: counted as one row written (the alarm lives in the object's
   * storage), but unlike other rows it does not make the metrics row ride along: an idle link
   * check's counts are still carried by the socket.
   */
  alarmWritten(): void {
    this.pending().rowsWritten++;
  }

  healthChecked(at: string): void {
    this.pending().lastHealthCheckAt = at;
  }

  /** Counts a carrier kept for us while the object slept. */
  adopt(carried: PendingMetrics): void {
    const d = this.pending();
    d.since = Math.min(d.since, carried.since);
    d.wakeups += carried.wakeups;
    d.alarms += carried.alarms;
    d.rowsWritten += carried.rowsWritten;
    for (const [k, v] of Object.entries(carried.entries)) d.entries[k] = (d.entries[k] ?? 0) + v;
    if (carried.lastHealthCheckAt && (!d.lastHealthCheckAt || carried.lastHealthCheckAt > d.lastHealthCheckAt)) d.lastHealthCheckAt = carried.lastHealthCheckAt;
  }

  /**
   * At the end of an entry: writes the counts when other rows were written since the last flush,
   * when they have waited an hour, or when no carrier takes them; otherwise hands them to the
   * carrier. `canWrite` is false for an object that holds no environment; `awake` is true while
   * requests are in flight.
   */
  flush(storage: SqlStorage, sql: Sql, canWrite: boolean, carrier: Carrier, awake = false): void {
    if (!this.dirty || !canWrite || !this.delta) return;
    const due = this.now() - this.delta.since >= FLUSH_AT_LEAST_EVERY_MS;
    // While requests are in flight their timers keep the object from hibernating: the counts stay
    // in memory until the entry that ends the last of them (no row or attachment per chunk).
    if (awake && !due) return;
    const rode = this.rowsSinceFlush > 0;
    this.rowsSinceFlush = 0;
    this.dirty = false;
    if (!rode && !due && carrier(this.delta)) return;
    const merged = this.merge(this.read(sql));
    merged.rowsWritten += FLUSH_ROWS;
    const cursor = storage.exec(
      "INSERT INTO metrics (id, data) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET data = excluded.data",
      JSON.stringify(merged),
    );
    cursor.toArray();
    this.delta = null;
    carrier(null);
    // Should the upsert ever write more or fewer rows than counted, the difference goes in the next flush.
    if (cursor.rowsWritten !== FLUSH_ROWS) (this.pending().rowsWritten += cursor.rowsWritten - FLUSH_ROWS), (this.dirty = false);
  }

  /** The persisted counts plus what this wake has not written yet. */
  snapshot(sql: Sql): EnvironmentMetrics {
    return this.merge(this.read(sql));
  }

  private pending(): PendingMetrics {
    this.dirty = true;
    return (this.delta ??= { since: this.now(), wakeups: 0, alarms: 0, rowsWritten: 0, entries: {}, lastHealthCheckAt: null });
  }

  private read(sql: Sql): EnvironmentMetrics | null {
    const row = sql<{ data: string }>`SELECT data FROM metrics WHERE id = 1`[0];
    return row ? (JSON.parse(row.data) as EnvironmentMetrics) : null;
  }

  private merge(base: EnvironmentMetrics | null): EnvironmentMetrics {
    const b = base ?? { since: new Date(this.now()).toISOString(), wakeups: 0, entries: {}, alarms: 0, rowsWritten: 0, lastHealthCheckAt: null };
    const d = this.delta;
    if (!d) return { ...b, entries: { ...b.entries } };
    const entries = { ...b.entries };
    for (const [k, v] of Object.entries(d.entries)) entries[k] = (entries[k] ?? 0) + v;
    return {
      since: b.since,
      wakeups: b.wakeups + d.wakeups,
      entries,
      alarms: b.alarms + d.alarms,
      rowsWritten: b.rowsWritten + d.rowsWritten,
      lastHealthCheckAt: d.lastHealthCheckAt ?? b.lastHealthCheckAt,
    };
  }
}
