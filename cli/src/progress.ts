/** A transfer's progress on stderr, redrawn in place; only when stderr is a terminal. */
import { bytes } from "./output.js";

export function progressLine(label: string, done: number, total: number | null, width = 24): string {
  if (total === null || total <= 0) return `${label} ${bytes(done)}`;
  const ratio = Math.min(1, done / total);
  const filled = Math.round(ratio * width);
  return `${label} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${String(Math.round(ratio * 100)).padStart(3)}% ${bytes(done)}/${bytes(total)}`;
}

export interface Progress {
  add(n: number): void;
  done(): void;
}

export function progress(stream: NodeJS.WritableStream & { isTTY?: boolean }, label: string, total: number | null, o: { enabled?: boolean; now?: () => number } = {}): Progress {
  const now = o.now ?? (() => Date.now());
  if (!stream.isTTY || o.enabled === false) return { add: () => undefined, done: () => undefined };
  let sent = 0;
  let drawn = 0;
  const draw = () => stream.write(`\r\x1b[2K${progressLine(label, sent, total)}`);
  return {
    add(n) {
      sent += n;
      if (now() - drawn >= 100) {
        drawn = now();
        draw();
      }
    },
    done() {
      draw();
      stream.write("\n");
    },
  };
}

/** Passes a byte stream through, counting what goes by. */
export function counted(body: ReadableStream<Uint8Array>, p: Progress): ReadableStream<Uint8Array> {
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        p.add(chunk.byteLength);
        controller.enqueue(chunk);
      },
    }),
  );
}
