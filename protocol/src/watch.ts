/**
 * Flow control on the event stream (`GET /v1/environments/{env}/events/stream`). A watcher acks the
 * last event it has processed with `{"v":1,"kind":"ack","seq":N}`; the object sends at most a window
 * of unacknowledged events (and bytes) ahead. A live watcher that falls a whole window behind is
 * closed with CLOSE.slowConsumer ("slow consumer; resume from cursor N") and resumes with
 * `?after=<its last seq>`, so nothing is lost and the object never buffers without bound.
 *
 * A watcher that asks for a window (`?window=N`) promises to ack: its replay of retained events is
 * paced by its acks. One that does not (older clients) gets at most a window of replay before that
 * close, and is closed the same way once a window of live events goes unacknowledged.
 */
import * as z from "zod";

/** The largest window the object grants; a watcher may ask for a smaller one. */
export const WATCH_WINDOW = { events: 1000, bytes: 1024 * 1024 } as const;
/** How long a replaying watcher may sit on a full window before new events close it as a slow consumer. */
export const WATCH_STALL_MS = 10_000;

/** The only frame a watcher may send: the seq of the last event it processed. */
export const WatchAck = z.object({ v: z.literal(1), kind: z.literal("ack"), seq: z.number().int().min(0) });
export type WatchAck = z.infer<typeof WatchAck>;

/** When a watcher should ack: a quarter of the window processed since its last ack (events or bytes). */
export function ackDue(unackedEvents: number, unackedBytes: number, windowEvents: number = WATCH_WINDOW.events): boolean {
  return unackedEvents >= Math.max(1, Math.floor(windowEvents / 4)) || unackedBytes >= WATCH_WINDOW.bytes / 4;
}

/** The close reason for a slow consumer; `resumeCursor` reads the cursor back out of it. */
export function slowConsumerReason(cursor: number): string {
  return `slow consumer; resume from cursor ${cursor}`;
}
export function resumeCursor(reason: string): number | null {
  const m = /resume from cursor (\d+)/.exec(reason);
  return m ? Number(m[1]) : null;
}
