/** What the chaining and federation e2e tests share: forward streams and the leaf processes they start. */
import { expect } from "vitest";

/** A command that prints its pid, then sleeps in that same process (so the pid is the leaf's process). */
export const SLEEPER = ["sh", "-c", "echo $$; exec sleep 300"];

/**
 * Reads a forward stream until the leaf printed its pid (SLEEPER); returns it with the forwardId and
 * the reader, to read the rest.
 */
export async function readUntilPid(res: Response): Promise<{ pid: number; forwardId: string; reader: ReadableStreamDefaultReader<Uint8Array>; text: () => string; rest: () => Promise<string> }> {
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let forwardId = "";
  let pid = 0;
  while (!pid) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`stream ended early: ${text}`);
    text += decoder.decode(value, { stream: true });
    const complete = text.slice(0, text.lastIndexOf("\n") + 1);
    let stdout = "";
    for (const l of complete.split("\n").filter(Boolean).map((x) => JSON.parse(x) as Record<string, string>)) {
      if (l.type === "started") forwardId = l.forwardId!;
      if (l.type === "stdout") stdout += l.data!;
    }
    if (stdout.includes("\n")) pid = Number(stdout.slice(0, stdout.indexOf("\n")));
  }
  const rest = async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return text;
      text += decoder.decode(value, { stream: true });
    }
  };
  return { pid, forwardId, reader, text: () => text, rest };
}

