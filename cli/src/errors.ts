/** Every failure becomes one message and one hint saying what to do next, and a non-zero exit. */
import { ApiError, EventStreamClosed } from "@outpost/client";

/** A mistake in how the CLI was called (exit 2). */
export class UsageError extends Error {
  override name = "UsageError";
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

export interface Explained {
  message: string;
  hint?: string;
  exitCode: number;
}

export interface ErrorContext {
  url?: string;
  /** Where the token came from (flag, env, profile path), for 401 hints. */
  tokenSource?: string;
  /** The environment the command was about, when there is one. */
  environment?: string;
}

const causeCode = (err: unknown): string | undefined => {
  const cause = (err as { cause?: { code?: string; cause?: { code?: string } } }).cause;
  return cause?.code ?? cause?.cause?.code;
};

export function explain(err: unknown, ctx: ErrorContext = {}): Explained {
  if (err instanceof UsageError) return { message: err.message, hint: err.hint, exitCode: 2 };
  if (err instanceof ApiError) return explainApi(err, ctx);
  if (err instanceof EventStreamClosed) return { message: err.message, hint: "Run the command again; `--after SEQ` resumes after the last event shown.", exitCode: 1 };
  if (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError")) {
    return { message: `the control plane at ${ctx.url ?? "?"} did not answer in time`, hint: "Check that it is running and reachable, then try again.", exitCode: 1 };
  }
  const code = causeCode(err);
  if (err instanceof TypeError && (code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "ECONNRESET" || err.message === "fetch failed")) {
    return {
      message: `cannot reach the control plane at ${ctx.url ?? "?"}${code ? ` (${code})` : ""}`,
      hint: "Is it running? Start it locally with `npm start`, or point --url / OUTPOST_URL at a deployment.",
      exitCode: 1,
    };
  }
  return { message: err instanceof Error ? err.message : String(err), exitCode: 1 };
}

function explainApi(err: ApiError, ctx: ErrorContext): Explained {
  const detail = err.problem?.detail ?? err.message;
  const message = `${detail} (HTTP ${err.status}${err.code && err.code !== "http_error" ? `, ${err.code}` : ""})`;
  const env = ctx.environment ?? "ENV";
  const fields = err.problem?.errors?.length ? err.problem.errors.map((e) => `  ${e.path}: ${e.message}`).join("\n") : undefined;
  const hint = ((): string | undefined => {
    switch (err.code) {
      case "unauthorized":
        return `The token${ctx.tokenSource ? ` from ${ctx.tokenSource}` : ""} was refused. Get a new one (locally: npm run -s token -- --org local --role admin, or restart \`npm start\`) and pass it with --token or OUTPOST_TOKEN.`;
      case "forbidden":
        return "Use a token with a role that allows this (viewer reads; operator creates, execs and writes files; admin deletes and issues tokens).";
      case "not_found":
        return ctx.environment
          ? `List the environments of your org with \`outpost env list\`; names and ids (env_…) both work.`
          : "Check the id: `outpost snapshots list`, `outpost runs list ENV` and `outpost env list` show what exists.";
      case "agent_not_connected":
        return `No agent serves ${env} right now. See its state with \`outpost env get ${env}\`; start it with \`outpost env start ${env}\` or run an agent with its token (outpost-agent --token …).`;
      case "invalid_state":
        return `See its state with \`outpost env get ${env}\` and its history with \`outpost logs ${env}\`.`;
      case "conflict":
        return ctx.environment ? `See \`outpost env get ${env}\`.` : "Pick another name, or see what already exists with `outpost env list`.";
      case "invalid_path":
        return "Paths are relative to the workspace: no leading '/', no '..'.";
      case "timeout":
        return "Give more time (exec: --timeout MS) or check the environment with `outpost env get`.";
      case "rate_limited":
        return "Wait a moment (the answer's Retry-After header says how long) and try again.";
      case "integrity_failed":
        return "The stored bundle is not what was exported (the workspace was not changed). Export the snapshot again (`outpost snapshots export SNAPSHOT`) and import that export (--export ID).";
      case "children_limit":
      case "depth_limit":
        return `${env}'s spawn scope allows no more: close a child (DELETE …/children/{child}) or have an admin widen the scope (PUT …/spawn).`;
      case "loop_detected":
      case "hop_limit":
        return `See the routing rules with \`outpost gateway get ${env}\` and change them with \`outpost routes set ${env}\`.`;
      case "agent_error":
      case "exec_failed":
        return `The agent could not do it; \`outpost logs ${env}\` shows what happened around it.`;
      case "no_space":
        return `${env}'s disk is full: free space (outpost rm ${env} PATH) and try again.`;
      case "payload_too_large":
        return "Too large for one request: split it, or copy large files with `outpost cp` (streamed).";
      case "bad_request":
        return fields ? `The offending fields:\n${fields}` : "See `outpost <command> --help` for what the command takes.";
      default:
        return err.status >= 500 ? "The control plane failed; its log has the details (npm start: .outpost/logs/wrangler.log)." : undefined;
    }
  })();
  return { message, hint, exitCode: 1 };
}

export function formatError(e: Explained): string {
  return `outpost: ${e.message}\n${e.hint ? `  ${e.hint.replace(/\n/g, "\n  ")}\n` : ""}`;
}
