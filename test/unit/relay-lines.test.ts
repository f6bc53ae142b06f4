import { describe, expect, it } from "vitest";
import { relayLines } from "../../durable-objects/lines.js";

const bytes = (...parts: string[]) => parts.map((p) => new TextEncoder().encode(p));
const source = (chunks: Uint8Array[]) =>
  new ReadableStream<Uint8Array>({
    start(c) {
      for (const chunk of chunks) c.enqueue(chunk);
      c.close();
    },
  });
const text = (s: ReadableStream<Uint8Array>) => new Response(s).text();
const noCancel = () => Promise.resolve();

describe("relayLines: an ndjson stream passed on as bytes", () => {
  it("hands the first line to `first`, split across chunks, and leaves it out when taken", async () => {
    const seen: unknown[] = [];
    const out = relayLines(source(bytes('{"type":"sta', 'rted","forwardId":"f1"}\n{"type":"stdout",', '"data":"a"}\n{"type":"exit","exitCode":0}\n')), {
      first: (line) => (seen.push(line), line?.type === "started"),
      end: ({ last }) => (seen.push(last), null),
      onCancel: noCancel,
    });
    expect(await text(out)).toBe('{"type":"stdout","data":"a"}\n{"type":"exit","exitCode":0}\n');
    expect(seen).toEqual([{ type: "started", forwardId: "f1" }, { type: "exit", exitCode: 0 }]);
  });

  it("passes every byte on when `first` does not take the line, and without `first` at all", async () => {
    const input = ['{"type":"stdout","data":"x"}\n{"ty', 'pe":"result","value":1,"route":["a"]}\n'];
    const kept = relayLines(source(bytes(...input)), { first: () => false, end: () => null, onCancel: noCancel });
    expect(await text(kept)).toBe(input.join(""));
    const plain = relayLines(source(bytes(...input)), { end: () => null, onCancel: noCancel });
    expect(await text(plain)).toBe(input.join(""));
  });

  it("a stream that is one line without a newline still reaches `first`; `end` may close with a line", async () => {
    const seen: unknown[] = [];
    const out = relayLines(source(bytes('{"type":"started",', '"forwardId":"f2"}')), {
      first: (line) => (seen.push(line), true),
      end: () => ({ type: "error", code: "agent_error", message: "no result" }),
      onCancel: noCancel,
    });
    expect(await text(out)).toBe('{"type":"error","code":"agent_error","message":"no result"}\n');
    expect(seen).toEqual([{ type: "started", forwardId: "f2" }]);
  });
});
