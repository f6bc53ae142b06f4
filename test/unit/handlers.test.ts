import { describe, expect, it } from "vitest";
import { base64ToBytes, ForwardBody, Gateway } from "@outpost/protocol";
import { handlerExec, handlerFor } from "../../durable-objects/handlers.js";

const handlers = { inference: { command: ["infer"] }, "inference:embed": { command: ["embed"], timeoutMs: 5_000 } };

describe("handlers for custom request types", () => {
  it("the most specific handler wins, and the command gets the payload on stdin", () => {
    expect(handlerFor(handlers, "inference", "embed")?.name).toBe("inference:embed");
    expect(handlerFor(handlers, "inference", "generate")?.name).toBe("inference");
    expect(handlerFor(handlers, "render", null)).toBeNull();
    const r = handlerExec({ handlers, type: "inference", action: "generate", payload: { prompt: "hi" }, hop: "b", origin: "a", forwardId: "f1" });
    if (!r.ok) throw new Error(r.error.message);
    expect(r.value).toMatchObject({ command: ["infer"], env: { OUTPOST_REQUEST_TYPE: "inference:generate", OUTPOST_FORWARD_ORIGIN: "a", OUTPOST_FORWARD_ID: "f1" } });
    expect(new TextDecoder().decode(base64ToBytes(r.value.stdin!))).toBe('{"prompt":"hi"}');
  });

  it("no handler: refused naming the hop and what it declares", () => {
    expect(handlerExec({ handlers, type: "render", action: null, payload: 1, hop: "b", origin: "a", forwardId: "f" })).toMatchObject({
      ok: false,
      error: { code: "not_found", message: "Hop 'b' has no handler for request type 'render' (its gateway declares 'inference', 'inference:embed')." },
    });
  });

  it("schemas: a payload needs a custom type; handlers are for custom types only", () => {
    expect(ForwardBody.safeParse({ type: "inference:generate", payload: { a: 1 }, target: "b" }).success).toBe(true);
    expect(ForwardBody.safeParse({ payload: { a: 1 }, target: "b" }).success).toBe(false);
    expect(ForwardBody.safeParse({ type: "exec", payload: 1 }).success).toBe(false);
    expect(ForwardBody.safeParse({ type: "inference", payload: 1, exec: { command: ["x"] } }).success).toBe(false);
    expect(Gateway.safeParse({ accept: true, handlers: { inference: { command: ["x"] } } }).success).toBe(true);
    expect(Gateway.safeParse({ accept: true, handlers: { exec: { command: ["x"] } } }).success).toBe(false);
    expect(Gateway.safeParse({ accept: true, handlers: { inference: { command: [] } } }).success).toBe(false);
  });
});
