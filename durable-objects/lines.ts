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
