/** ndjson streams of objects, as forwarded requests carry them hop by hop. */

/** A stream the caller writes objects into, one JSON line each, in order. */
export class LineWriter<T> {
  readonly readable: ReadableStream<Uint8Array>;
  private readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  private readonly encoder = new TextEncoder();

  constructor() {
    const pipe = new TransformStream<Uint8Array, Uint8Array>();
    this.readable = pipe.readable;
    this.writer = pipe.writable.getWriter();
  }

  /** Resolves once the reader has room; a reader that went away is not an error here. */
  write(line: T): Promise<void> {
    return this.writer.write(this.encoder.encode(`${JSON.stringify(line)}\n`)).catch(() => undefined);
  }

  close(): Promise<void> {
    return this.writer.close().catch(() => undefined);
  }
}

/** A stream of exactly one line. */
export function oneLine<T>(line: T): ReadableStream<Uint8Array> {
  return new Response(`${JSON.stringify(line)}\n`).body!;
}

/** The objects of an ndjson byte stream, in order; a line that is not JSON is skipped. */
export async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<Record<string, unknown>> {
  const decoder = new TextDecoder();
  let buffered = "";
  for await (const part of stream as unknown as AsyncIterable<Uint8Array>) {
    buffered += decoder.decode(part, { stream: true });
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      const parsed = parse(line);
      if (parsed) yield parsed;
    }
  }
  const last = parse(buffered + decoder.decode());
  if (last) yield last;
}

function parse(line: string): Record<string, unknown> | null {
  if (!line.trim()) return null;
  try {
    const v: unknown = JSON.parse(line);
    return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

export interface RelayEnd {
  /** The stream's last line (parsed), or null when it had none or it was not JSON. */
  last: Record<string, unknown> | null;
  /** Why reading it failed, if it broke off. */
  broke: unknown;
}

/**
 * Passes an ndjson byte stream on as it is, without parsing it: only its last line is read, at the
 * end, so `end` can add a closing line (or not). `prefix` goes out first. `first`, if given, is
 * handed the source's first line (parsed) and may take it out of the stream (answer true). Paced by
 * the reader. A reader that goes away (noticed when it cancels, or by the first write after, as
 * across an RPC stream) cancels the source and calls `onCancel`, so the work behind the stream stops too.
 */
export function relayLines(
  source: ReadableStream<Uint8Array>,
  o: { prefix?: unknown; first?(line: Record<string, unknown> | null): boolean; end(e: RelayEnd): unknown; onCancel(): Promise<unknown> },
): ReadableStream<Uint8Array> {
  const pipe = new TransformStream<Uint8Array, Uint8Array>();
  const writer = pipe.writable.getWriter();
  const reader = source.getReader();
  const tail = new LastLine();
  /** The first line's bytes while it is incomplete (only when `first` asks for it). */
  let head: Uint8Array[] | null = o.first ? [] : null;
  const pass = async (chunk: Uint8Array) => {
    if (chunk.length === 0) return;
    tail.push(chunk);
    await writer.write(chunk);
  };
  /** Hands the first line (with its newline) to `first`; passes it on unless taken, then whatever followed it. */
  const takeHead = async (line: Uint8Array[], rest: Uint8Array) => {
    head = null;
    if (!o.first!(decodeLine(line))) for (const part of line) await pass(part);
    await pass(rest);
  };
  const encode = (line: unknown) => new TextEncoder().encode(`${JSON.stringify(line)}\n`);
  let gone = false;
  const readerGone = () => {
    if (gone) return;
    gone = true;
    void o.onCancel().catch(() => undefined);
    void reader.cancel().catch(() => undefined);
  };
  writer.closed.catch(readerGone);
  void (async () => {
    try {
      if (o.prefix !== undefined) await writer.write(encode(o.prefix));
      let broke: unknown = null;
      for (;;) {
        let r: Awaited<ReturnType<typeof reader.read>>;
        try {
          r = await reader.read();
        } catch (e) {
          broke = e;
          break;
        }
        if (r.done) break;
        if (!head) {
          await pass(r.value);
          continue;
        }
        const nl = r.value.indexOf(10);
        if (nl < 0) head.push(r.value);
        else await takeHead([...head, r.value.subarray(0, nl + 1)], r.value.subarray(nl + 1));
      }
      if (head) await takeHead(head, new Uint8Array(0));
      if (gone) return;
      const extra = o.end({ last: tail.parsed(), broke });
      if (extra !== null && extra !== undefined) await writer.write(encode(extra));
      await writer.close();
    } catch {
      readerGone();
    }
  })();
  return pipe.readable;
}

/** The last complete line of a byte stream, kept as bytes (never decoded until asked for). */
class LastLine {
  private line: Uint8Array[] = [];
  private partial: Uint8Array[] = [];

  push(chunk: Uint8Array): void {
    const end = chunk.lastIndexOf(10);
    if (end < 0) return void this.partial.push(chunk);
    const start = end > 0 ? chunk.lastIndexOf(10, end - 1) : -1;
    const line = start >= 0 ? [chunk.slice(start + 1, end)] : [...this.partial, chunk.slice(0, end)];
    if (line.some((p) => p.length > 0)) this.line = line;
    this.partial = end + 1 < chunk.length ? [chunk.slice(end + 1)] : [];
  }

  parsed(): Record<string, unknown> | null {
    return decodeLine(this.partial.some((p) => p.length > 0) ? this.partial : this.line);
  }
}

function decodeLine(bytes: Uint8Array[]): Record<string, unknown> | null {
  const decoder = new TextDecoder();
  return parse(bytes.map((b) => decoder.decode(b, { stream: true })).join("") + decoder.decode());
}
