/**
 * The typed client (@outpost/client) with what scripts and tests add to it: Buffers for file
 * contents, a lookup that answers null for an unknown environment, and polling for a state.
 */
import { Client } from "@outpost/client";
import { ApiError } from "@outpost/client";
import type { Environment, EnvironmentState } from "@outpost/protocol";
import { waitFor } from "./wait.js";

export { ApiError, apiError, type RequestOptions } from "@outpost/client";
/** An environment's record, as getEnvironment answers it. */
export type EnvironmentView = Environment;

export class OutpostClient extends Client {
  constructor(url: string, token: string) {
    super(url, token);
  }

  override async readFile(idOrName: string, path: string): Promise<Buffer> {
    const bytes = await super.readFile(idOrName, path);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Like getEnvironment, but null when there is no such environment. */
  async findEnvironment(idOrName: string): Promise<EnvironmentView | null> {
    try {
      return await this.getEnvironment(idOrName);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return null;
      throw err;
    }
  }

  /** Polls the environment until `want` holds (a state name, or a predicate on the record). */
  async waitForEnvironment(
    idOrName: string,
    want: EnvironmentState | ((e: EnvironmentView) => boolean),
    o: { timeoutMs: number; failIf?: () => string | null | undefined },
  ): Promise<EnvironmentView> {
    const test = typeof want === "string" ? (e: EnvironmentView) => e.state === want : want;
    let last: EnvironmentView | null = null;
    return waitFor(
      async () => {
        last = await this.getEnvironment(idOrName, 5_000);
        return test(last) ? last : null;
      },
      {
        timeoutMs: o.timeoutMs,
        intervalMs: 100,
        what: () => `environment ${idOrName} to be ${typeof want === "string" ? want : "as expected"} (last seen: ${last ? `state ${last.state}, connected ${last.connected}` : "nothing"})`,
        failIf: o.failIf,
      },
    );
  }
}

export function filesPath(idOrName: string, path: string): string {
  return `/v1/environments/${encodeURIComponent(idOrName)}/files?path=${encodeURIComponent(path)}`;
}
