// The Worker of bench/r2-memory/run.mjs: 200 MB of bytes made in the Worker or in a Durable Object
// (returned over RPC through a TransformStream written 16 chunks ahead, as durable-objects/snapshots.ts
// does), optionally passed through JSON + base64 per chunk (as agent frames are), into a DigestStream
// only or into R2 through a FixedLengthStream (as worker/snapshot-transfer.ts does). No Outpost code.
import { DurableObject } from "cloudflare:workers";

function source(total, frames, chunk) {
  let sent = 0;
  const proto = new Uint8Array(chunk);
  crypto.getRandomValues(proto.subarray(0, 65536));
  return new ReadableStream(
    {
      pull(c) {
        if (sent >= total) return c.close();
        const n = Math.min(chunk, total - sent);
        sent += n;
        const piece = proto.slice(0, n);
        c.enqueue(frames ? Uint8Array.fromBase64(JSON.parse(JSON.stringify({ v: 1, kind: "chunk", data: piece.toBase64() })).data) : piece);
      },
    },
    { highWaterMark: 0 },
  );
}

export class Source extends DurableObject {
  async stream(total, frames, chunk) {
    const pipe = new TransformStream();
    const writer = pipe.writable.getWriter();
    void (async () => {
      const reader = source(total, frames, chunk).getReader();
      const ahead = [];
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        ahead.push(writer.write(value));
        if (ahead.length >= 16) await ahead.shift();
      }
      await Promise.all(ahead);
      await writer.close();
    })();
    return pipe.readable;
  }
}

export default {
  async fetch(req, env) {
    const q = new URL(req.url).searchParams;
    const size = Number(q.get("mb")) * 1_000_000;
    const frames = q.get("frames") === "1";
    const chunk = Number(q.get("chunk") ?? 262144);
    const body = q.get("from") === "object" ? await env.SOURCE.get(env.SOURCE.idFromName("x")).stream(size, frames, chunk) : source(size, frames, chunk);
    if (q.get("to") === "r2") {
      const fixed = new FixedLengthStream(size);
      await Promise.all([body.pipeTo(fixed.writable), env.BUCKET.put(`k${Math.random()}`, fixed.readable)]);
    } else {
      await body.pipeTo(new crypto.DigestStream("SHA-256"));
    }
    return new Response("ok");
  },
};
