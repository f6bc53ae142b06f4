// @ts-check
/**
 * The dashboard's side of the HTTP API: the token (sessionStorage, or localStorage when the user
 * asks to be remembered), JSON calls with `Authorization: Bearer`, problem+json errors, the
 * streamed exec and the event stream (the one place a token travels in a URL: browsers cannot set
 * headers on a WebSocket, so the API takes `?access_token=` there only).
 */

/** @typedef {import("../../../protocol/src/api.js").Environment} Environment */
/** @typedef {import("../../../protocol/src/api.js").EnvironmentSummary} EnvironmentSummary */
/** @typedef {import("../../../protocol/src/api.js").EnvironmentEvent} EnvironmentEvent */
/** @typedef {import("../../../protocol/src/api.js").Run} Run */
/** @typedef {import("../../../protocol/src/api.js").ExecStreamLine} ExecStreamLine */
/** @typedef {import("../../../protocol/src/ops.js").FileStat} FileStat */
/** @typedef {import("../../../protocol/src/ops.js").DiffResult} DiffResult */
/** @typedef {import("../../../protocol/src/snapshots.js").Snapshot} Snapshot */
/** @typedef {import("../../../protocol/src/snapshots.js").SnapshotExport} SnapshotExport */

const KEY = "outpost.token";

export const session = {
  /** @returns {string | null} */
  token() {
    return sessionStorage.getItem(KEY) ?? localStorage.getItem(KEY);
  },
  /** @param {string} token @param {boolean} remember */
  signIn(token, remember) {
    this.signOut();
    (remember ? localStorage : sessionStorage).setItem(KEY, token);
  },
  signOut() {
    sessionStorage.removeItem(KEY);
    localStorage.removeItem(KEY);
  },
  /**
   * The token's claims, for display only (the Worker verifies them).
   * @returns {{ org?: string, role?: string, sub?: string, exp?: number }}
   */
  claims() {
    const part = this.token()?.split(".")[1];
    if (!part) return {};
    try {
      return JSON.parse(atob(part.replace(/-/g, "+").replace(/_/g, "/")));
    } catch {
      return {};
    }
  },
};

/** An API error: the problem+json body's code and detail. */
export class ApiError extends Error {
  /** @param {number} status @param {string} code @param {string} detail */
  constructor(status, code, detail) {
    super(detail);
    this.status = status;
    this.code = code;
  }
}

/** @param {Response} res */
async function failure(res) {
  const text = await res.text();
  try {
    const p = JSON.parse(text);
    return new ApiError(res.status, String(p.code ?? "error"), String(p.detail ?? p.title ?? text));
  } catch {
    return new ApiError(res.status, "error", text || res.statusText);
  }
}

/** Called on a 401: the token is gone or expired. */
let onUnauthorized = () => {};
/** @param {() => void} f */
export function whenUnauthorized(f) {
  onUnauthorized = f;
}

/**
 * @param {string} method
 * @param {string} path
 * @param {{ json?: unknown, accept?: string, signal?: AbortSignal }} [o]
 * @returns {Promise<Response>}
 */
export async function request(method, path, o = {}) {
  /** @type {Record<string, string>} */
  const headers = { authorization: `Bearer ${session.token() ?? ""}` };
  if (o.accept) headers.accept = o.accept;
  /** @type {RequestInit} */
  const init = { method, headers, signal: o.signal };
  if (o.json !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(o.json);
  }
  const res = await fetch(path, init);
  if (res.status === 401) onUnauthorized();
  if (!res.ok) throw await failure(res);
  return res;
}

/**
 * @template T
 * @param {string} method
 * @param {string} path
 * @param {unknown} [json]
 * @returns {Promise<T>}
 */
export async function call(method, path, json) {
  return /** @type {T} */ (await (await request(method, path, { json })).json());
}

/** @param {string} env */
export const envPath = (env) => `/v1/environments/${encodeURIComponent(env)}`;

/** @param {Record<string, string | number | boolean | undefined>} q */
export function query(q) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined) p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : "";
}

export const api = {
  /** A page of the list. @param {string | undefined} cursor @param {number} limit @returns {Promise<{ environments: EnvironmentSummary[], nextCursor: string | null }>} */
  list: (cursor, limit) => call("GET", `/v1/environments${query({ limit, cursor })}`),
  /** @param {string} env @returns {Promise<Environment>} */
  get: async (env) => (/** @type {{ environment: Environment }} */ (await call("GET", envPath(env)))).environment,
  /** @param {string} env @param {"start" | "stop" | "restart"} action */
  act: (env, action) => call("POST", `${envPath(env)}/${action}`),
  /** @param {string} env @returns {Promise<{ runs: Run[] }>} */
  runs: (env) => call("GET", `${envPath(env)}/runs`),
  /** @param {string} env @param {string} path @returns {Promise<{ entries: FileStat[], truncated: boolean }>} */
  list_files: (env, path) => call("GET", `${envPath(env)}/files/list${query({ path: path || ".", maxEntries: 1000 })}`),
  /** @param {string} env @param {string} path @returns {Promise<FileStat>} */
  stat: (env, path) => call("GET", `${envPath(env)}/files/stat${query({ path })}`),
  /** @param {string} env @param {string} path */
  read: async (env, path) => (await request("GET", `${envPath(env)}/files${query({ path })}`)).blob(),
  /** @param {string} env @returns {Promise<DiffResult>} */
  diff: (env) => call("GET", `${envPath(env)}/diff`),
  /** @param {string} env @returns {Promise<{ snapshots: Omit<Snapshot, "exports" | "environments">[] }>} */
  snapshots: (env) => call("GET", `/v1/snapshots${query({ environment: env, limit: 50 })}`),
  /** @param {string} id @returns {Promise<Snapshot>} */
  snapshot: async (id) => (/** @type {{ snapshot: Snapshot }} */ (await call("GET", `/v1/snapshots/${encodeURIComponent(id)}`))).snapshot,
  /** @param {string} env @param {string} message @returns {Promise<{ snapshot: Snapshot }>} */
  takeSnapshot: (env, message) => call("POST", "/v1/snapshots", { environment: env, ...(message ? { message } : {}) }),
  /** @param {string} id @returns {Promise<{ export: SnapshotExport, snapshot: Snapshot }>} */
  exportSnapshot: (id) => call("POST", `/v1/snapshots/${encodeURIComponent(id)}/export`, { format: "bundle" }),
  /** @param {string} id @param {string} exportId */
  downloadExport: async (id, exportId) => (await request("GET", `/v1/snapshots/${encodeURIComponent(id)}/exports/${encodeURIComponent(exportId)}`)).blob(),
  /** @param {string} id @param {string} env @returns {Promise<string>} the patch from the snapshot to the environment as it is now */
  changesSince: async (id, env) => (await request("POST", "/v1/snapshots/diff", { json: { from: { snapshotId: id }, to: { environment: env }, format: "patch" } })).text(),
  /** @param {string} id @param {string} env */
  restore: (id, env) => call("POST", `/v1/snapshots/${encodeURIComponent(id)}/import`, { environment: env, strategy: "replace" }),
};

/**
 * Hands a blob to the browser as a download (the bytes were fetched with the token in a header).
 * @param {Blob} blob
 * @param {string} name
 */
export function saveBlob(blob, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

/**
 * Runs a command with its output streamed (ndjson), calling `onLine` for each line as it comes.
 * @param {string} env
 * @param {{ command: string[], shell?: boolean, cwd?: string }} body
 * @param {(line: ExecStreamLine) => void} onLine
 * @param {AbortSignal} [signal]
 */
export async function execStream(env, body, onLine, signal) {
  const res = await request("POST", `${envPath(env)}/exec`, { json: body, accept: "application/x-ndjson", signal });
  if (!res.body) throw new ApiError(500, "no_body", "The exec answer had no body.");
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffered += value;
    let nl;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (line) onLine(JSON.parse(line));
    }
  }
  if (buffered.trim()) onLine(JSON.parse(buffered));
}

/**
 * The server's flow-control window (protocol/src/watch.ts, WATCH_WINDOW): at most this many events,
 * and this many bytes of frames, sent and not acknowledged. The dashboard asks for the whole event window.
 */
export const WATCH_WINDOW = { events: 1000, bytes: 1024 * 1024 };

/**
 * When the watcher should ack (as protocol/src/watch.ts ackDue): a quarter of the window, by events
 * or by bytes, received since its last ack. Bytes are the frames' lengths as the server counts them.
 * @param {number} events
 * @param {number} bytes
 */
export const ackDue = (events, bytes) => events >= WATCH_WINDOW.events / 4 || bytes >= WATCH_WINDOW.bytes / 4;

/**
 * An environment's event stream over a WebSocket that reconnects (with backoff, bounded at 10 s)
 * and resumes after the last event it delivered, so nothing is missed or repeated across drops.
 * `tail` bounds the first replay (0: live events only). Flow control (protocol/src/watch.ts): it asks
 * for a window and acks every quarter of it, counted in events or in bytes (a few large run-output
 * events fill the 1 MiB byte window long before 250 events), and after a short pause; a slow-consumer
 * close (4008) reconnects at once from the cursor.
 * @param {string} env
 * @param {{ tail: number, onEvent: (e: EnvironmentEvent) => void, onOpen?: () => void, onStatus?: (s: "open" | "closed") => void }} o
 * @returns {{ close(): void }}
 */
export function watchEvents(env, o) {
  let after = 0;
  let closed = false;
  let delay = 500;
  /** @type {WebSocket | null} */
  let ws = null;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let ackTimer;
  let acked = 0;
  /** Bytes of event frames received since the last ack. */
  let unackedBytes = 0;
  const ack = () => {
    clearTimeout(ackTimer);
    ackTimer = undefined;
    if (after <= acked || ws?.readyState !== WebSocket.OPEN) return;
    acked = after;
    unackedBytes = 0;
    ws.send(JSON.stringify({ v: 1, kind: "ack", seq: after }));
  };
  const open = () => {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const q = after > 0 ? { after } : { tail: o.tail };
    acked = after;
    unackedBytes = 0;
    ws = new WebSocket(`${scheme}//${location.host}${envPath(env)}/events/stream${query({ ...q, window: WATCH_WINDOW.events, access_token: session.token() ?? "" })}`);
    ws.onopen = () => {
      delay = 500;
      o.onStatus?.("open");
      o.onOpen?.();
    };
    ws.onmessage = (m) => {
      const text = String(m.data);
      const frame = JSON.parse(text);
      if (frame.kind !== "event") return;
      unackedBytes += text.length; // the server holds every frame it sent against the byte window, repeats included
      if (frame.event.seq <= after) return;
      after = frame.event.seq;
      o.onEvent(frame.event);
      if (ackDue(after - acked, unackedBytes)) ack();
      else ackTimer ??= setTimeout(ack, 200);
    };
    ws.onclose = (ev) => {
      clearTimeout(ackTimer);
      ackTimer = undefined;
      o.onStatus?.("closed");
      if (closed) return;
      if (ev.code === 4008) return open(); // slow consumer: resume from the cursor at once
      timer = setTimeout(open, delay);
      delay = Math.min(delay * 2, 10_000);
    };
  };
  open();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      ws?.close(1000);
    },
  };
}
