/**
 * The JSON answer of POST /forward (without `Accept: application/x-ndjson`): the forward stream
 * read to its end. One destination: its exit (with output) or result, or its error as a problem.
 * Fan-out: every target's outcome, output included.
 */
import { statusForCode } from "@outpost/protocol";
import { readLines } from "../durable-objects/lines.js";
import { HttpError } from "./problem.js";

/** Output kept per stream and target, as exec keeps it. */
const OUTPUT_CAP = 256 * 1024;

interface Branch {
  stdout: string;
  stderr: string;
  truncated: boolean;
  end: Record<string, unknown> | null;
}

export async function collectForward(stream: ReadableStream<Uint8Array>): Promise<Record<string, unknown>> {
  let forwardId = "";
  let done: Record<string, unknown> | null = null;
  const branches = new Map<string, Branch>();
  const branch = (t: string) => branches.get(t) ?? (branches.set(t, { stdout: "", stderr: "", truncated: false, end: null }), branches.get(t)!);
  for await (const line of readLines(stream)) {
    const b = branch(typeof line.target === "string" ? line.target : "");
    switch (line.type) {
      case "started":
        forwardId = String(line.forwardId);
        break;
      case "stdout":
      case "stderr": {
        const key = line.type;
        const room = OUTPUT_CAP - b[key].length;
        const data = String(line.data);
        if (data.length > room) b.truncated = true;
        b[key] += data.slice(0, Math.max(0, room));
        break;
      }
      case "done":
        done = line;
        break;
      default:
        b.end = line;
    }
  }
  if (done) {
    const results = [...branches.entries()].filter(([t]) => t !== "").map(([target, b]) => ({ target, ...outcomeOf(b) }));
    return { forwardId, results };
  }
  const b = branch("");
  if (b.end?.type === "error") {
    const code = String(b.end.code);
    throw new HttpError(statusForCode(code), code, String(b.end.message), { forwardId, ...(b.end.hop ? { hop: b.end.hop } : {}), ...(b.end.route ? { route: b.end.route } : {}) });
  }
  if (!b.end) throw new HttpError(502, "agent_error", "The forwarded request ended without a result.", { forwardId });
  return { forwardId, ...outcomeOf(b) };
}

function outcomeOf(b: Branch): Record<string, unknown> {
  const end = b.end ?? { type: "error", code: "agent_error", message: "ended without a result" };
  const { type, target: _t, ...rest } = end;
  if (type === "exit") return { ok: end.exitCode === 0, ...rest, stdout: b.stdout, stderr: b.stderr, ...(b.truncated ? { truncated: true } : {}) };
  if (type === "result") return { ok: true, result: end.value, route: end.route };
  return { ok: false, ...rest };
}
