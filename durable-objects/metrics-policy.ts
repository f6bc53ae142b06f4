/** How long an idle object's cost counts may wait for a write to ride along with (see metrics.ts). */
export const FLUSH_AT_LEAST_EVERY_MS = 3_600_000;
