import { Problem } from "@outpost/protocol";

/** A refused request: the HTTP status, the problem+json `code`, and the problem itself when there is one. */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly problem: Problem | null,
  ) {
    super(message);
  }
}

/** Turns an error response into an ApiError, with the problem+json detail when there is one. */
export async function apiError(res: Response): Promise<ApiError> {
  const text = await res.text();
  let problem: Problem | null = null;
  try {
    const parsed = Problem.safeParse(JSON.parse(text));
    if (parsed.success) problem = parsed.data;
  } catch {
    // not JSON
  }
  const detail = problem?.detail ?? (text.slice(0, 300) || res.statusText);
  return new ApiError(res.status, problem?.code ?? "http_error", `HTTP ${res.status}: ${detail}`, problem);
}
