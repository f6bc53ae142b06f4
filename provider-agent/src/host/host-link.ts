/**
 * The host's one connection to its org's host registry (`GET /v1/hosts/connect`): dial out with the
 * host token, say `host.hello`, keep the link alive with text pings and notice a half-open link by
 * missing pongs, reconnect forever with jittered backoff unless the control plane says retrying is
 * pointless. Smaller than the agent's Link: requests are few and each is answered once, so there is
 * no seq/ack; a reply finished while the link was down waits for the next welcome. Dialing,
 * heartbeats and reconnects are the Dialer's, shared with the agent's Link.
 */
import { CLOSE, HostWelcome, type HostFrame, type HostHello } from "@outpost/protocol";
import { Dialer, type Connection, type DialerOptions, type LinkEnd } from "../dialer.js";

/** Replies kept while the link is down. */
const MAX_QUEUED_REPLIES = 1_000;

export interface HostLinkOptions extends DialerOptions {
  /** ws:// or wss:// address of `/v1/hosts/connect`. */
  url: string;
  /** Asked on every connection: the hello carries the resources managed right now. */
  hello: () => HostHello;
  /** A frame of kind host.request, unvalidated: the host answers even a malformed one if it has an id. */
  onRequest: (frame: Record<string, unknown>) => void;
  onWelcome?: (welcome: WelcomeFrame) => void;
}

type WelcomeFrame = ReturnType<typeof HostWelcome.parse>;

export class HostLink {
  readonly done: Promise<LinkEnd>;
  readonly #dialer: Dialer;
  #queue: string[] = [];

  constructor(private readonly options: HostLinkOptions) {
    this.#dialer = new Dialer(options, {
      open: (conn) => {
        const hello = options.hello();
        this.#dialer.log.info(`connected; sending host.hello (${hello.providers.length} provider(s), ${hello.resources.length} resource(s))`);
        conn.ws.send(JSON.stringify(hello));
      },
      message: (conn, text, isBinary) => this.#onMessage(conn, text, isBinary),
    });
    this.done = this.#dialer.done;
  }

  get connected(): boolean {
    return this.#dialer.ready() !== null;
  }

  start(): void {
    this.#dialer.start();
  }

  /**
   * Sends a frame while the link is welcomed. A reply that cannot go out now is kept for the next
   * welcome; anything else is dropped (false): the next hello carries the host's state anyway.
   */
  send(frame: HostFrame): boolean {
    if (this.#dialer.closed) return false;
    const text = JSON.stringify(frame);
    const conn = this.#dialer.ready();
    if (conn) {
      conn.ws.send(text);
      return true;
    }
    if (frame.kind === "host.reply") {
      if (this.#queue.length >= MAX_QUEUED_REPLIES) this.#queue.shift();
      this.#queue.push(text);
    }
    return false;
  }

  /** Closes the link for good; resolves when the socket is closed. */
  stop(code: number = CLOSE.normal, reason = "host stopping"): Promise<LinkEnd> {
    return this.#dialer.stop(code, reason);
  }

  #onMessage(conn: Connection, text: string, isBinary: boolean): void {
    let frame: unknown;
    try {
      frame = isBinary ? null : JSON.parse(text);
    } catch {
      frame = null;
    }
    if (typeof frame !== "object" || frame === null || Array.isArray(frame)) {
      this.#dialer.log.warn(`unparsable frame from the registry: ${text.slice(0, 200)}`);
      return;
    }
    const record = frame as Record<string, unknown>;
    if (record.kind === "host.welcome") {
      const welcome = HostWelcome.safeParse(record);
      if (!welcome.success) {
        this.#dialer.log.warn(`malformed host.welcome: ${welcome.error.issues[0]?.message ?? ""}; reconnecting`);
        conn.ws.close(CLOSE.protocolError, "malformed host.welcome");
        return;
      }
      return this.#onWelcome(conn, welcome.data);
    }
    if (record.kind === "host.request") {
      try {
        this.options.onRequest(record);
      } catch (err) {
        this.#dialer.log.error(`request handler failed: ${err instanceof Error ? err.message : String(err)}`);
      }
      return;
    }
    if (record.kind === "error") {
      // The registry could not handle a frame of ours: nothing to answer, but worth a line.
      const error = record.error as { code?: unknown; message?: unknown } | undefined;
      this.#dialer.log.warn(`the registry refused a frame: ${String(error?.code ?? "error")}: ${String(error?.message ?? "").slice(0, 500)}`);
      return;
    }
    this.#dialer.log.warn(`ignored a frame of kind ${String(record.kind).slice(0, 64)} from the registry`);
  }

  #onWelcome(conn: Connection, welcome: WelcomeFrame): void {
    this.#dialer.log.info(`welcomed as host '${welcome.hostName}' (heartbeat ${welcome.heartbeatMs} ms)`);
    this.#dialer.welcomed(conn, welcome.heartbeatMs);
    const queued = this.#queue;
    this.#queue = [];
    for (const text of queued) conn.ws.send(text);
    this.options.onWelcome?.(welcome);
  }
}
