/** A raw WebSocket to the control plane for hostile clients: every frame and the close are recorded. */
import WebSocket from "ws";
import { waitFor } from "../../../scripts/lib/wait.js";

export interface RawSocket {
  ws: WebSocket;
  /** Text frames received, in order. */
  frames: string[];
  /** Set once the socket closed. */
  close: { code: number; reason: string } | null;
  /** Set when the upgrade was refused: the HTTP status and body. */
  refused: { status: number; body: string; contentType: string } | null;
  closed: Promise<{ code: number; reason: string }>;
  /** Waits until `n` frames arrived (or the socket closed). */
  frameCount(n: number, timeoutMs?: number): Promise<number>;
  /**
   * The server's close frame as soon as it arrived, before `close` is set: the close event waits for
   * the TCP connection to end, and the local dev runtime (behind wrangler dev's proxy) does not end it
   * after the close handshake, so
   * `ws` fires it only after its own 30 s close timeout.
   */
  closeFrame(): { code: number; reason: string } | null;
}

export function openSocket(url: string, token: string | null, o: { maxPayload?: number } = {}): Promise<RawSocket> {
  const ws = new WebSocket(url.replace(/^http/, "ws"), { headers: token ? { authorization: `Bearer ${token}` } : {}, maxPayload: o.maxPayload ?? 64 * 1024 * 1024 });
  const s: RawSocket = {
    ws,
    frames: [],
    close: null,
    refused: null,
    closed: new Promise((resolve) => {
      ws.on("close", (code, reason) => {
        s.close = { code, reason: reason.toString() };
        resolve(s.close);
      });
    }),
    async frameCount(n, timeoutMs = 15_000) {
      await waitFor(() => s.frames.length >= n || s.close !== null, { timeoutMs, intervalMs: 20, what: () => `${n} frames (got ${s.frames.length})` });
      return s.frames.length;
    },
    closeFrame() {
      if (s.close) return s.close;
      const w = ws as unknown as { _closeFrameReceived?: boolean; _closeCode: number; _closeMessage: Buffer };
      return w._closeFrameReceived ? { code: w._closeCode, reason: w._closeMessage.toString() } : null;
    },
  };
  ws.on("message", (data, binary) => void s.frames.push(binary ? `<binary ${(data as Buffer).length}>` : data.toString()));
  return new Promise((resolve, reject) => {
    ws.on("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => {
        s.refused = { status: res.statusCode ?? 0, body, contentType: String(res.headers["content-type"] ?? "") };
        s.close = { code: 0, reason: "refused" };
        resolve(s);
      });
    });
    ws.on("open", () => resolve(s));
    ws.on("error", (err) => (s.close ? undefined : reject(err)));
  });
}

export function kindsOf(frames: string[]): string[] {
  return frames.map((f) => {
    try {
      return (JSON.parse(f) as { kind?: string }).kind ?? "?";
    } catch {
      return "not-json";
    }
  });
}
