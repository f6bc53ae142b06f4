import { ackDue, EventStreamFrame, WATCH_WINDOW, type EnvironmentEvent } from "@outpost/protocol";

/** The part of a WebSocket the client uses: the browser's, Node 22's, or the `ws` package's. */
export interface WebSocketLike {
  addEventListener(type: "open" | "message" | "close" | "error", listener: (event: any) => void): void;
  close(code?: number, reason?: string): void;
  send(data: string): void;
}
/** Opens a WebSocket. Browsers cannot send headers, so the default one puts the token in `?access_token=`. */
export type WebSocketFactory = (url: string, headers: Record<string, string>) => WebSocketLike;

type WebSocketCtor = new (url: string) => WebSocketLike;

/** A factory for WebSocket classes that cannot send headers: the token travels as `?access_token=`. */
export function queryTokenWebSocket(Ctor: WebSocketCtor): WebSocketFactory {
  return (url, headers) => {
    const token = headers.authorization?.replace(/^Bearer /, "");
    const u = new URL(url);
    if (token) u.searchParams.set("access_token", token);
    return new Ctor(u.toString());
  };
}

/** The runtime's global WebSocket (browsers, Node 22+), with the token in the query. */
export const browserWebSocket: WebSocketFactory = (url, headers) => {
  const Ctor = (globalThis as { WebSocket?: WebSocketCtor }).WebSocket;
  if (!Ctor) throw new Error("No WebSocket in this runtime: give the client a webSocket factory (e.g. from the ws package).");
  return queryTokenWebSocket(Ctor)(url, headers);
};

export class EventStreamClosed extends Error {
  override name = "EventStreamClosed";
  constructor(
    readonly code: number,
    readonly reason: string,
  ) {
    super(`the event stream closed (${code}${reason ? `: ${reason}` : ""})`);
  }
}

/**
 * The events of one environment as they come: first every retained event after `after`, then live
 * ones. Iterate it; `close()` ends the iteration. A close by the server other than 1000 throws
 * EventStreamClosed, carrying `lastSeq` for a caller that wants to resume without a gap (a slow
 * consumer's close, CLOSE.slowConsumer, is one).
 *
 * Flow control (protocol/src/watch.ts): events are acked as the iteration takes them, a quarter
 * window at a time and after a short pause, so a consumer that stops iterating stops being sent
 * events instead of having them pile up in the object or here.
 */
export class EventStream implements AsyncIterable<EnvironmentEvent> {
  lastSeq: number;
  private readonly queue: EnvironmentEvent[] = [];
  private ended: { error: Error | null } | null = null;
  private wake: (() => void) | null = null;
  private readonly opened: Promise<void>;
  /** Flow control: the last seq acked, what was taken since (events, bytes), and the pause timer. */
  private acked: number;
  private takenSeq: number;
  private takenEvents = 0;
  private takenBytes = 0;
  private readonly sizes = new Map<number, number>();
  private ackTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly ws: WebSocketLike,
    after: number,
    private readonly window: number = WATCH_WINDOW.events,
  ) {
    this.lastSeq = after;
    this.acked = after;
    this.takenSeq = after;
    let onOpen: () => void = () => undefined;
    let onFail: (e: Error) => void = () => undefined;
    this.opened = new Promise<void>((resolve, reject) => {
      onOpen = resolve;
      onFail = reject;
    });
    this.opened.catch(() => undefined);
    ws.addEventListener("open", () => onOpen());
    ws.addEventListener("message", (ev: { data: unknown }) => {
      const raw = text(ev.data);
      const frame = EventStreamFrame.safeParse(JSON.parse(raw));
      if (!frame.success || frame.data.event.seq <= this.lastSeq) return; // not an event, or one already seen
      this.lastSeq = frame.data.event.seq;
      this.sizes.set(frame.data.event.seq, raw.length);
      this.queue.push(frame.data.event);
      this.notify();
    });
    ws.addEventListener("error", (ev: { message?: string }) => {
      onFail(new EventStreamClosed(1006, ev?.message || "could not connect"));
    });
    ws.addEventListener("close", (ev: { code: number; reason: string }) => {
      const error = ev.code === 1000 || ev.code === 1005 ? null : new EventStreamClosed(ev.code, ev.reason);
      onFail(error ?? new EventStreamClosed(ev.code, ev.reason));
      this.finish(error);
    });
  }

  /** Resolves when the socket is open; rejects when it could not be opened. */
  ready(): Promise<void> {
    return this.opened;
  }

  close(): void {
    this.finish(null);
    this.ws.close(1000, "done");
  }

  /** Records an event the consumer took, and acks when a quarter window is taken or after a pause. */
  private taken(event: EnvironmentEvent): void {
    this.takenSeq = event.seq;
    this.takenEvents++;
    this.takenBytes += this.sizes.get(event.seq) ?? 0;
    this.sizes.delete(event.seq);
    if (ackDue(this.takenEvents, this.takenBytes, this.window)) return this.ack();
    if (!this.ackTimer) this.ackTimer = setTimeout(() => this.ack(), 200);
  }

  private ack(): void {
    if (this.ackTimer) clearTimeout(this.ackTimer);
    this.ackTimer = null;
    if (this.ended || this.takenSeq <= this.acked) return;
    this.acked = this.takenSeq;
    this.takenEvents = 0;
    this.takenBytes = 0;
    try {
      this.ws.send(JSON.stringify({ v: 1, kind: "ack", seq: this.acked }));
    } catch {
      // closing: the close ends the iteration
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<EnvironmentEvent> {
    for (;;) {
      const next = this.queue.shift();
      if (next) {
        this.taken(next);
        yield next;
        continue;
      }
      if (this.ended) {
        if (this.ended.error) throw this.ended.error;
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private finish(error: Error | null): void {
    this.ended ??= { error };
    if (this.ackTimer) clearTimeout(this.ackTimer);
    this.ackTimer = null;
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }
}

function text(data: unknown): string {
  if (typeof data === "string") return data;
  if (data instanceof ArrayBuffer) return new TextDecoder().decode(data);
  if (ArrayBuffer.isView(data)) return new TextDecoder().decode(data as Uint8Array);
  return String(data);
}
