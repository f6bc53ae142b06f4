/**
 * A request answered before its body was read to the end (a PUT …/files refused for its path, 411,
 * 404, or 409 because no agent is connected): the body is read to its end before the answer goes
 * out, up to UNREAD_BODY_LIMIT bytes. Left unread, the runtime gives up the connection under the
 * answer, and the next request that a keep-alive client (wrangler dev's proxy) sends on it fails
 * with "Network connection lost", which wrangler dev 4.86 answers with its own 503 "Your worker
 * restarted mid-request" for any method but GET and HEAD (docs/reliability-notes.md). A larger
 * unread body is cancelled: not worth receiving just to refuse it.
 */
import type { MiddlewareHandler } from "hono";

const UNREAD_BODY_LIMIT = 1024 * 1024;

/** Reads what is left of a body and drops it (at most `limit` bytes, then cancels); never throws. */
export async function drainBody(body: ReadableStream<Uint8Array>, limit = UNREAD_BODY_LIMIT): Promise<void> {
  try {
    const reader = body.getReader();
    for (let seen = 0; seen <= limit; ) {
      const { done, value } = await reader.read();
      if (done) return;
      seen += value.byteLength;
    }
    await reader.cancel();
  } catch {
    // the client went away, or the stream was already taken: nothing to answer
  }
}

export const readUnreadBody: MiddlewareHandler = async (c, next) => {
  await next();
  const req = c.req.raw;
  // Locked: handed to a Durable Object (an upload), which drains what it does not use (relay.ts).
  if (!req.body || req.bodyUsed || req.body.locked) return;
  const length = Number(req.headers.get("content-length") ?? Number.NaN);
  if (!(length <= UNREAD_BODY_LIMIT)) return;
  await drainBody(req.body);
};
