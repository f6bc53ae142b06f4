/**
 * The forward stream as an HTTP response body. A client that goes away mid-stream must not leave
 * work running at every hop: the runtime notices a gone client only when it next writes to it, and
 * work in the request's own context may stop with the request, so the body is pumped under
 * waitUntil, a blank line (which ndjson readers skip) goes out whenever the stream was quiet for
 * the keepalive interval, and a failed write cancels the forwarded request everywhere.
 */
const DEFAULT_KEEPALIVE_MS = 15_000;

export function streamToClient(
  stream: ReadableStream<Uint8Array>,
  o: { keepaliveMs: number; waitUntil: (p: Promise<unknown>) => void; onClientGone: () => Promise<unknown> },
): ReadableStream<Uint8Array> {
  const pipe = new TransformStream<Uint8Array, Uint8Array>();
  const writer = pipe.writable.getWriter();
  const reader = stream.getReader();
  let gone = false;
  let finished = false;
  const clientGone = () => {
    if (gone || finished) return;
    gone = true;
    o.waitUntil(o.onClientGone().catch(() => undefined));
    void reader.cancel().catch(() => undefined);
  };
  let writing = 0;
  const write = (bytes: Uint8Array) => {
    writing++;
    return writer.write(bytes).then(
      () => (writing--, true),
      () => (writing--, clientGone(), false),
    );
  };
  const blank = new TextEncoder().encode("\n");
  let quietSince = Date.now();
  const keepalive = setInterval(() => {
    // A slow reader already has bytes waiting: no need to add to them.
    if (writing === 0 && Date.now() - quietSince >= o.keepaliveMs) (quietSince = Date.now()), void write(blank);
  }, Math.max(10, o.keepaliveMs / 2));
  o.waitUntil(
    (async () => {
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          quietSince = Date.now();
          if (!(await write(value))) return;
        }
        finished = true;
        await writer.close().catch(() => undefined);
      } catch {
        finished = true;
        await writer.abort().catch(() => undefined);
      } finally {
        clearInterval(keepalive);
      }
    })(),
  );
  return pipe.readable;
}

/** OUTPOST_FORWARD_KEEPALIVE_MS, or the default. */
export function keepaliveMs(value: string | undefined): number {
  const n = Number(value);
  return Number.isInteger(n) && n >= 10 ? n : DEFAULT_KEEPALIVE_MS;
}
