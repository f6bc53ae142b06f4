/** What every stateful cloud fake offers the conformance kit and the tests. */
import { randomBytes } from "node:crypto";
import type { FakeService } from "./service.js";

export interface CloudFake {
  /** The provider it stands in for. */
  readonly provider: string;
  readonly service: FakeService;
  /** The environment config that points the provider at this fake (URLs, a key it accepts). */
  readonly config: Record<string, unknown>;
  /** What still exists: resources not deleted, processes alive, directories not removed. Empty when clean. */
  leftovers(): string[];
  /** Kills every process it started, removes every directory, stops the server. */
  close(): Promise<void>;
}

export interface CloudFakeOptions {
  /** Holds one temporary directory per sandbox or container. */
  dir: string;
  /** The agent bundle a container image holds (cloudflare-containers); others get it copied in by the provider. */
  agentBundle?: string;
}

/** A random id of lowercase letters and digits. */
export function randomId(length: number): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  return Array.from(randomBytes(length), (b) => alphabet[b % alphabet.length]).join("");
}

export function bearer(header: string | undefined): string {
  return header?.startsWith("Bearer ") ? header.slice(7) : "";
}
