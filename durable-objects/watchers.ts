/**
 * Event-stream watchers with flow control (protocol/src/watch.ts). workerd exposes no
 * `bufferedAmount`, so the object counts what each watcher has not yet acknowledged instead:
 * - a live watcher gets every new event; once it is a whole window (events, or bytes counted since
 *   the object woke) behind its last ack, it is closed with CLOSE.slowConsumer naming its cursor;
 * - the replay of retained events is paced: a window at a time, the next part when an ack arrives
 *   (a watcher that asked for no window gets one window of replay, then the same close; one that
 *   did but has left a full window unacknowledged for WATCH_STALL_MS is closed when the next event comes).
 * The attachment (which survives hibernation) holds the cursors; the byte counts live in memory and
 * restart at zero on a wake, so a watcher may hold up to two byte windows across one.
 */
import { CLOSE, WATCH_STALL_MS, WATCH_WINDOW, WatchAck, slowConsumerReason, type EnvironmentEvent, type EventStreamFrame } from "@outpost/protocol";
import { attachment, closeQuietly, openSockets, WATCH_TAG, type WatchAttachment } from "./agent-socket.js";
import type { EventLog } from "./events.js";

const PAGE = 500;

export class Watchers {
  /** Bytes sent and not yet acknowledged, per watcher: [seq, bytes] in order, and their sum. */
  private readonly unacked = new WeakMap<WebSocket, { marks: Array<[number, number]>; bytes: number }>();

  constructor(
    private readonly ctx: DurableObjectState,
    private readonly log: () => EventLog,
    private readonly now: () => number,
  ) {}

  /** A new watcher: replays retained events after the cursor (a window at most), then live ones. */
  accept(after: number, window: number | null): Response {
    const pair = new WebSocketPair();
    const ws = pair[1];
    this.ctx.acceptWebSocket(ws, [WATCH_TAG]);
    const a: WatchAttachment = { role: "watch", acked: after, sent: after, live: false, window: window ?? WATCH_WINDOW.events, acks: window !== null, from: after, frames: 0 };
    this.pump(ws, a);
    if (!a.live && !a.acks) closeQuietly(ws, CLOSE.slowConsumer, slowConsumerReason(a.sent));
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  /** Called for every appended event: sent to each live watcher within its window. */
  deliver(event: EnvironmentEvent): void {
    let frame: string | null = null;
    for (const ws of openSockets(this.ctx, WATCH_TAG)) {
      const a = watchAttachment(ws);
      if (!a.live) {
        // Catching up: its next ack pulls this event from the log. Sitting on a full window for
        // WATCH_STALL_MS while events keep coming: a slow consumer too.
        if (a.fullAt !== undefined && this.now() - a.fullAt >= WATCH_STALL_MS) closeQuietly(ws, CLOSE.slowConsumer, slowConsumerReason(a.acked));
        continue;
      }
      frame ??= JSON.stringify({ v: 1, kind: "event", event } satisfies EventStreamFrame);
      const held = this.held(ws);
      if (event.seq - a.acked > a.window || (held.bytes > 0 && held.bytes + frame.length > WATCH_WINDOW.bytes)) {
        closeQuietly(ws, CLOSE.slowConsumer, slowConsumerReason(a.acked));
        continue;
      }
      try {
        ws.send(frame);
        held.marks.push([event.seq, frame.length]);
        held.bytes += frame.length;
      } catch {
        // a closing watcher; it resumes from its cursor when it reconnects
      }
    }
  }

  /** A frame from a watcher: only an ack of an event it was sent (a late one, below its cursor, is ignored). */
  message(ws: WebSocket, message: string | ArrayBuffer): void {
    const a = watchAttachment(ws);
    let seq = -1;
    if (typeof message === "string" && message.length < 256) {
      try {
        const ack = WatchAck.safeParse(JSON.parse(message));
        if (ack.success) seq = ack.data.seq;
      } catch {
        // not JSON
      }
    }
    const top = a.live ? this.log().lastSeq() : a.sent;
    const frames = a.frames + 1;
    // Anything else closes at once, so frames cannot keep the object awake: each ack names an event it
    // was sent, and it sends no more acks than it was sent events.
    if (seq <= a.from || seq > top || frames > top - a.from) {
      return closeQuietly(ws, CLOSE.protocolError, "the event stream takes only ack frames for events it sent, at most one per event");
    }
    a.frames = frames;
    // Acks are cumulative and can arrive out of order (workerd handled a watcher's ack of 50 before
    // its ack of 47): one at or below the cursor arrived late and says nothing new.
    if (seq <= a.acked) return void ws.serializeAttachment(a);
    a.acked = seq;
    delete a.fullAt;
    const held = this.held(ws);
    while (held.marks.length && held.marks[0]![0] <= seq) held.bytes -= held.marks.shift()![1];
    if (!a.live) this.pump(ws, a);
    ws.serializeAttachment(a);
  }

  /** Sends retained events after `sent` until the window is full or the log is caught up (then live). */
  private pump(ws: WebSocket, a: WatchAttachment): void {
    if (ws.readyState !== WebSocket.OPEN) return; // an ack that arrived as it closed
    const held = this.held(ws);
    for (;;) {
      const room = a.acked + a.window - a.sent;
      if (room <= 0) {
        a.fullAt = this.now();
        break;
      }
      const page = this.log().page(a.sent, Math.min(PAGE, room));
      for (const event of page.events) {
        const frame = JSON.stringify({ v: 1, kind: "event", event } satisfies EventStreamFrame);
        if (held.bytes > 0 && held.bytes + frame.length > WATCH_WINDOW.bytes) {
          a.fullAt = this.now(); // full by bytes: the stall rule applies as it does to a full event window
          return void ws.serializeAttachment(a);
        }
        ws.send(frame);
        held.marks.push([event.seq, frame.length]);
        held.bytes += frame.length;
        a.sent = event.seq;
      }
      if (page.events.length < Math.min(PAGE, room)) {
        a.live = true;
        break;
      }
    }
    if (!a.live && this.log().lastSeq() <= a.sent) a.live = true;
    ws.serializeAttachment(a);
  }

  private held(ws: WebSocket): { marks: Array<[number, number]>; bytes: number } {
    let h = this.unacked.get(ws);
    if (!h) this.unacked.set(ws, (h = { marks: [], bytes: 0 }));
    return h;
  }
}

/** The watcher's cursors; a socket from before some were kept gets defaults for those (cursors 0, live, no acks). */
function watchAttachment(ws: WebSocket): WatchAttachment {
  const a = attachment(ws) as Partial<WatchAttachment> | null;
  return { role: "watch", acked: 0, sent: 0, live: true, window: WATCH_WINDOW.events, acks: false, from: 0, frames: 0, ...a };
}
