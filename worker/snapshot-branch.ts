/**
 * The commit message of a pull-request branch, from the snapshot's narrative: its own words (or
 * its thread's or objective's title when it has none of its own), then where it comes from in the
 * hierarchy, then trailers naming the snapshot, thread, objective and run. And the check made
 * before a snapshot is carried to an environment only to be refused there.
 */
import { NOT_A_GIT_REPOSITORY, type Snapshot } from "@outpost/protocol";
import type { Env } from "./env.js";
import { HttpError } from "./problem.js";
import { getObjective, getThread, runSummary } from "./snapshot-index.js";
import { environmentStub } from "./stub.js";

/** Messages the agent or the API give a snapshot when nobody wrote one. */
const GENERIC = new Set(["snapshot", "taken for a comparison", ""]);

export async function pullRequestMessage(env: Env, org: string, s: Snapshot): Promise<string> {
  const thread = s.threadId ? await getThread(env.DB, org, s.threadId) : null;
  const objectiveId = s.objectiveId ?? thread?.objectiveId ?? null;
  const objective = objectiveId ? await getObjective(env.DB, org, objectiveId) : null;
  const run = s.runId ? await runSummary(env.DB, org, s.runId) : null;
  const own = s.message.trim();
  const subject = !GENERIC.has(own) ? own : (thread?.title ?? objective?.title ?? `Changes of snapshot ${s.id}`);
  const body: string[] = [];
  if (objective) body.push(`Objective: ${objective.title}${objective.description ? `\n\n${objective.description}` : ""}`);
  if (thread?.title && thread.title !== subject) body.push(`Thread: ${thread.title}`);
  const trailers = [
    `Outpost-Snapshot: ${s.id}`,
    s.threadId ? `Outpost-Thread: ${s.threadId}` : null,
    objectiveId ? `Outpost-Objective: ${objectiveId}` : null,
    run ? `Outpost-Run: ${s.runId}` : null,
    `Outpost-Environment: ${s.environmentId}`,
  ].filter((t): t is string => t !== null);
  return [subject, ...body, trailers.join("\n")].join("\n\n") + "\n";
}

/**
 * Refuses (409) an environment whose workspace has no `.git` at its top before the snapshot is
 * exported and fetched into it for nothing; the agent checks again, fully, before it writes.
 * Other answers (an agent not connected, say) are left to the steps that follow.
 */
export async function requireRepository(env: Env, org: string, environmentId: string): Promise<void> {
  const r = await environmentStub(env, org, environmentId).fileOp("file.stat", { path: ".git" });
  if (!r.ok && r.error.code === "not_found") throw new HttpError(409, "invalid_state", NOT_A_GIT_REPOSITORY);
}
