/**
 * The dashboard's event-stream flow control (dashboard/public/js/api.js, plain browser modules that
 * cannot import protocol/) keeps the protocol's window and acks on the same rule: a quarter of the
 * window, in events or in bytes. The headless-Chromium test (test/e2e/dashboard.test.ts) watches it ack
 * a burst of large events by bytes.
 */
import { describe, expect, it } from "vitest";
import { ackDue, WATCH_WINDOW } from "@outpost/protocol";
// @ts-expect-error: a browser module without declarations (its JSDoc types are checked by dashboard/tsconfig.json)
import * as dashboard from "../../dashboard/public/js/api.js";

const api = dashboard as { WATCH_WINDOW: typeof WATCH_WINDOW; ackDue: (events: number, bytes: number) => boolean };

describe("the dashboard's event-stream acks", () => {
  it("use the protocol's window, events and bytes", () => {
    expect(api.WATCH_WINDOW).toEqual(WATCH_WINDOW);
  });

  it("fall due exactly when the protocol's ackDue says, by events or by bytes", () => {
    const quarter = WATCH_WINDOW.bytes / 4;
    for (const events of [0, 1, 10, 249, 250, 251, 999, 1000]) {
      for (const bytes of [0, 1, 64 * 1024, quarter - 1, quarter, quarter + 1, WATCH_WINDOW.bytes]) {
        expect(api.ackDue(events, bytes), `${events} events, ${bytes} bytes`).toBe(ackDue(events, bytes));
      }
    }
    expect(api.ackDue(3, quarter)).toBe(true); // a few large events are enough
  });
});
