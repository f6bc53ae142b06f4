import { Hono } from "hono";
import { CreateRunBody, RunsQuery } from "@outpost/protocol";
import { requireRole, type AuthVars } from "../auth.js";
import type { Env } from "../env.js";
import { findRunEnvironment, insertRun } from "../environment-index.js";
import { newId } from "../ids.js";
import { unwrap } from "../outcome.js";
import { HttpError } from "../problem.js";
import { environmentStub, resolveEnvironmentId } from "../stub.js";
import { parseBody, readJson } from "../validate.js";

type App = { Bindings: Env; Variables: AuthVars };
const RUN_ID = /^run_[a-z0-9]{20}$/;

/** Runs of one environment, under /v1/environments. */
export const environmentRuns = new Hono<App>()
  .post("/:idOrName/runs", requireRole("operator"), async (c) => {
    const body = parseBody(CreateRunBody, await readJson(c.req.raw));
    const { org } = c.get("user");
    const environmentId = await resolveEnvironmentId(c.env, org, c.req.param("idOrName"));
    const id = newId("run");
    const stub = environmentStub(c.env, org, environmentId);
    const run = unwrap(
      await stub.createRun({ id, command: body.agent.command, env: body.agent.env, message: body.message, threadId: body.threadId, objectiveId: body.objectiveId }),
    );
    await insertRun(c.env.DB, org, { id, environmentId, threadId: run.threadId, objectiveId: run.objectiveId, createdAt: run.createdAt });
    return c.json({ run }, 201, { location: `/v1/runs/${id}` });
  })
  .get("/:idOrName/runs", requireRole("viewer"), async (c) => {
    const { limit } = parseBody(RunsQuery, c.req.query(), "query");
    const { org } = c.get("user");
    const stub = environmentStub(c.env, org, await resolveEnvironmentId(c.env, org, c.req.param("idOrName")));
    return c.json({ runs: unwrap(await stub.listRuns(limit)) });
  });

async function runStub(c: { env: Env; get(k: "user"): AuthVars["user"] }, runId: string) {
  if (!RUN_ID.test(runId)) throw new HttpError(404, "not_found", `No run ${runId}.`);
  const { org } = c.get("user");
  const environmentId = await findRunEnvironment(c.env.DB, org, runId);
  if (!environmentId) throw new HttpError(404, "not_found", `No run ${runId} in this org.`);
  return environmentStub(c.env, org, environmentId);
}

/** A run by its id alone, under /v1/runs. */
export const runs = new Hono<App>()
  .get("/:runId", requireRole("viewer"), async (c) => {
    const runId = c.req.param("runId");
    return c.json({ run: unwrap(await (await runStub(c, runId)).getRun(runId)) });
  })
  .post("/:runId/cancel", requireRole("operator"), async (c) => {
    const runId = c.req.param("runId");
    return c.json({ run: unwrap(await (await runStub(c, runId)).cancelRun(runId)) });
  });
