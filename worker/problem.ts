import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { statusForCode, type ErrorInfo, type Problem } from "@outpost/protocol";

/** Thrown anywhere in a request; `app.onError` turns it into an application/problem+json response. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  static from(error: ErrorInfo): HttpError {
    const retry = error.details?.retryAfterSeconds;
    return new HttpError(statusForCode(error.code), error.code, error.message, error.details ?? {}, typeof retry === "number" ? { "retry-after": String(retry) } : {});
  }
}

const TITLES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  413: "Payload Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  426: "Upgrade Required",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  507: "Insufficient Storage",
};

export function problemResponse(
  status: number,
  code: string,
  detail: string,
  extra: Record<string, unknown> = {},
  headers: Record<string, string> = {},
  instance?: string,
): Response {
  const body: Problem & Record<string, unknown> = {
    type: `https://outpost.dev/problems/${code}`,
    title: TITLES[status] ?? "Error",
    status,
    detail,
    code,
    ...(instance ? { instance } : {}),
    ...extra,
  };
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/problem+json", ...headers },
  });
}

export function problemFromError(c: Context, err: unknown): Response {
  const instance = new URL(c.req.url).pathname;
  if (err instanceof HttpError) return problemResponse(err.status, err.code, err.message, err.extra, err.headers, instance);
  console.error("unhandled error", err instanceof Error ? err.stack ?? err.message : String(err));
  return problemResponse(500, "internal", "The control plane failed to handle this request; it has been logged.", {}, {}, instance);
}

export type Status = ContentfulStatusCode;
