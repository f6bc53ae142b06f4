/**
 * Many timers, one alarm. One-shot timers live in the `schedule` table (key → due time and the
 * lifecycle event to apply); recurring checks are derived from state and passed in by the caller.
 * `arm` sets the single alarm to the earliest of them and touches storage only when it changes.
 */
import type { Sql } from "./sql.js";

export interface Due {
  key: string;
  event: string;
}

export class Schedule {
  constructor(
    private readonly sql: Sql,
    private readonly storage: DurableObjectStorage,
    /** Told of each setAlarm/deleteAlarm: the alarm is kept in the object's storage, billed as a row written. */
    private readonly alarmWritten: () => void = () => {},
  ) {}

  set(key: string, due: number, event: string): void {
    this.sql`INSERT INTO schedule (key, due, event) VALUES (${key}, ${due}, ${event})
             ON CONFLICT (key) DO UPDATE SET due = excluded.due, event = excluded.event`;
  }

  /** Drops the timer; answers whether there was one. */
  clear(key: string): boolean {
    if (!this.get(key)) return false;
    this.sql`DELETE FROM schedule WHERE key = ${key}`;
    return true;
  }

  clearAll(): void {
    if (this.sql`SELECT key FROM schedule LIMIT 1`.length) this.sql`DELETE FROM schedule`;
  }

  get(key: string): { due: number; event: string } | null {
    return this.sql<{ due: number; event: string }>`SELECT due, event FROM schedule WHERE key = ${key}`[0] ?? null;
  }

  /** Removes and returns the timers due at `now`, earliest first. */
  takeDue(now: number): Due[] {
    const due = this.sql<Due>`SELECT key, event FROM schedule WHERE due <= ${now} ORDER BY due`;
    if (due.length) this.sql`DELETE FROM schedule WHERE due <= ${now}`;
    return due;
  }

  next(): number | null {
    return this.sql<{ due: number }>`SELECT due FROM schedule ORDER BY due LIMIT 1`[0]?.due ?? null;
  }

  /** Points the alarm at the earliest timer or recurring check; null clears it. */
  async arm(recurring: number | null): Promise<number | null> {
    const candidates = [this.next(), recurring].filter((t): t is number => t !== null);
    const next = candidates.length ? Math.min(...candidates) : null;
    const current = await this.storage.getAlarm();
    if (next === null) {
      if (current !== null) {
        await this.storage.deleteAlarm();
        this.alarmWritten();
      }
    } else if (current !== next) {
      await this.storage.setAlarm(next);
      this.alarmWritten();
    }
    return next;
  }
}
