import { setTimeout as sleep } from "node:timers/promises";
import { EventStreamClosed, type EventStream } from "@outpost/client";
import { CLOSE, type EnvironmentEvent } from "@outpost/protocol";
import { integer, str, type Command, type Context } from "../command.js";
import { print } from "../output.js";

const RECONNECTS = 20;

export function eventLine(e: EnvironmentEvent): string {
  const data = Object.keys(e.data).length ? ` ${JSON.stringify(e.data)}` : "";
  return `${String(e.seq).padStart(6)}  ${e.at}  ${e.type}${data}`;
}

async function follow(ctx: Context, ref: string, after: number, tail: number | undefined): Promise<number> {
  let last = after;
  let stream: EventStream | null = null;
  let stopped = false;
  ctx.onInterrupt(() => {
    stopped = true;
    stream?.close();
  });
  for (let attempt = 0; !stopped; ) {
    try {
      // the tail applies to the first connection only; a reconnect resumes after the last event shown
      stream = await ctx.client().streamEvents(ref, { after: last, tail: last === after ? tail : undefined });
      attempt = 0;
      for await (const e of stream) {
        last = e.seq;
        ctx.out(ctx.json ? JSON.stringify(e) : eventLine(e));
      }
      return 0; // closed by us or cleanly by the server
    } catch (err) {
      if (stopped) return 0;
      if (!(err instanceof EventStreamClosed) || ++attempt > RECONNECTS) throw err;
      if (err.code === CLOSE.slowConsumer) {
        attempt = 0; // this terminal fell a window behind: resume at once from the last event shown
        continue;
      }
      ctx.note(`outpost: the event stream closed (${err.code}); reconnecting after seq ${last}…`);
      await sleep(Math.min(5_000, 250 * 2 ** attempt));
    }
  }
  return 0;
}

export const logsCommand: Command = {
  name: "logs",
  summary: "An environment's event log: state changes, agent connects, execs, file writes, run output",
  args: "ENV",
  description: "With -f, follows the live event stream (a WebSocket) until Ctrl-C, reconnecting without a gap. --json prints { events, next }, or with -f one JSON event per line.",
  options: {
    follow: { type: "boolean", short: "f", description: "keep printing new events as they happen" },
    after: { type: "string", value: "SEQ", description: "only events after this seq" },
    limit: { type: "string", value: "N", description: "without -f: at most N events (default 1000)" },
    tail: { type: "string", value: "N", description: "with -f: start with at most the newest N events (0: only new ones; at most 10000)" },
  },
  json: true,
  read: true,
  positionals: { min: 1, max: 1 },
  examples: ["outpost logs local", "outpost logs local -f --after 120", "outpost logs local -f --json | jq .type"],
  async run(ctx, [ref], v) {
    ctx.about(ref!);
    const after = integer(str(v.after), "--after") ?? 0;
    if (v.follow === true) return follow(ctx, ref!, after, integer(str(v.tail), "--tail"));
    const limit = integer(str(v.limit), "--limit", 1) ?? 1000;
    const events: EnvironmentEvent[] = [];
    let next = after;
    for (let page = 0; page < 1000 && events.length < limit; page++) {
      const r = await ctx.client().listEvents(ref!, { after: next, limit: Math.min(1000, limit - events.length) });
      events.push(...r.events);
      if (r.events.length === 0 || r.next === next) break;
      next = r.next;
    }
    print(ctx, { events, next }, () => events.map(eventLine).join("\n"));
  },
};
