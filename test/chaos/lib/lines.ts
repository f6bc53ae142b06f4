/** Reading an ndjson exec stream as it arrives, and checking numbered output for loss and duplication. */
import type { ExecStreamLine } from "@outpost/protocol";

export class LineReader {
  readonly lines: ExecStreamLine[] = [];
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new TextDecoder();
  private partial = "";
  done = false;

  constructor(res: Response) {
    this.reader = res.body!.getReader();
  }

  /** Reads until `pred` holds for the lines so far, or the stream ends; bounded by `timeoutMs`. */
  async until(pred: (lines: ExecStreamLine[]) => boolean, timeoutMs = 60_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.lines)) {
      if (this.done) return false;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`stream: gave up after ${timeoutMs} ms (${this.lines.length} lines)`);
      let timer: NodeJS.Timeout | undefined;
      const step = await Promise.race([this.reader.read(), new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), left)))]).finally(() => clearTimeout(timer));
      if (step === "timeout") continue;
      if (step.done) {
        this.done = true;
        if (this.partial.trim()) this.lines.push(JSON.parse(this.partial) as ExecStreamLine);
        this.partial = "";
        continue;
      }
      this.partial += this.decoder.decode(step.value, { stream: true });
      const parts = this.partial.split("\n");
      this.partial = parts.pop() ?? "";
      for (const p of parts) if (p.trim()) this.lines.push(JSON.parse(p) as ExecStreamLine);
    }
    return true;
  }

  /** Everything up to the end of the stream. */
  async rest(timeoutMs = 120_000): Promise<ExecStreamLine[]> {
    await this.until(() => false, timeoutMs).catch((err: unknown) => {
      if (!this.done) throw err;
    });
    return this.lines;
  }

  stdout(): string {
    return this.lines.map((l) => (l.type === "stdout" ? l.data : "")).join("");
  }
}

/**
 * Numbered lines ("prefix-1", "prefix-2", …) as they arrived: how many of 1..expected are missing,
 * how many arrived twice, and whether the order held.
 */
export function numbered(text: string, prefix: string, expected: number): { got: number; missing: number; duplicated: number; outOfOrder: number } {
  const seen = new Map<number, number>();
  let outOfOrder = 0;
  let last = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${prefix}-`)) continue;
    const n = Number(line.slice(prefix.length + 1));
    seen.set(n, (seen.get(n) ?? 0) + 1);
    if (n < last) outOfOrder++;
    last = n;
  }
  let missing = 0;
  let duplicated = 0;
  for (let i = 1; i <= expected; i++) {
    const c = seen.get(i) ?? 0;
    if (c === 0) missing++;
    if (c > 1) duplicated += c - 1;
  }
  return { got: [...seen.values()].reduce((a, b) => a + b, 0), missing, duplicated, outOfOrder };
}
