/** Objectives and threads: the upper levels of the hierarchy (objective → thread → run → snapshot). */
import { Hono } from "hono";
import * as z from "zod";
import { CreateObjectiveBody, CreateThreadBody, OBJECTIVE_ID, THREAD_ID, timeOrderedId } from "@outpost/protocol";
import { requireRole, type AuthVars } from "../auth.js";
import type { Env } from "../env.js";
import { HttpError } from "../problem.js";
import { getObjective, getThread, insertObjective, insertThread, listObjectives, listSnapshots, listThreads } from "../snapshot-index.js";
import { parseBody, readJson } from "../validate.js";

type App = { Bindings: Env; Variables: AuthVars };
const Limit = z.coerce.number().int().min(1).max(500).default(100);

export const objectives = new Hono<App>()
  .post("/", requireRole("operator"), async (c) => {
    const body = parseBody(CreateObjectiveBody, await readJson(c.req.raw));
    const objective = { id: timeOrderedId("obj"), title: body.title, description: body.description ?? null, createdAt: new Date().toISOString() };
    await insertObjective(c.env.DB, c.get("user").org, objective);
    return c.json({ objective }, 201, { location: `/v1/objectives/${objective.id}` });
  })
  .get("/", requireRole("viewer"), async (c) => {
    return c.json({ objectives: await listObjectives(c.env.DB, c.get("user").org, parseBody(Limit, c.req.query("limit"), "limit")) });
  })
  .get("/:id", requireRole("viewer"), async (c) => {
    const { org } = c.get("user");
    const id = c.req.param("id");
    const objective = OBJECTIVE_ID.test(id) ? await getObjective(c.env.DB, org, id) : null;
    if (!objective) throw new HttpError(404, "not_found", `No objective ${id}.`);
    return c.json({ objective, threads: await listThreads(c.env.DB, org, { objectiveId: id, limit: 500 }) });
  });

export const threads = new Hono<App>()
  .post("/", requireRole("operator"), async (c) => {
    const body = parseBody(CreateThreadBody, await readJson(c.req.raw));
    const { org } = c.get("user");
    if (body.objectiveId && !(await getObjective(c.env.DB, org, body.objectiveId))) throw new HttpError(404, "not_found", `No objective ${body.objectiveId}.`);
    if (body.parentThreadId && !(await getThread(c.env.DB, org, body.parentThreadId))) throw new HttpError(404, "not_found", `No thread ${body.parentThreadId}.`);
    const thread = { id: timeOrderedId("thr"), objectiveId: body.objectiveId ?? null, parentThreadId: body.parentThreadId ?? null, title: body.title ?? null, createdAt: new Date().toISOString() };
    await insertThread(c.env.DB, org, thread);
    return c.json({ thread }, 201, { location: `/v1/threads/${thread.id}` });
  })
  .get("/", requireRole("viewer"), async (c) => {
    const objectiveId = c.req.query("objectiveId");
    const limit = parseBody(Limit, c.req.query("limit"), "limit");
    return c.json({ threads: await listThreads(c.env.DB, c.get("user").org, { ...(objectiveId ? { objectiveId } : {}), limit }) });
  })
  .get("/:id", requireRole("viewer"), async (c) => {
    const { org } = c.get("user");
    const id = c.req.param("id");
    const thread = THREAD_ID.test(id) ? await getThread(c.env.DB, org, id) : null;
    if (!thread) throw new HttpError(404, "not_found", `No thread ${id}.`);
    const { results: runs } = await c.env.DB.prepare("SELECT id, environment_id AS environmentId, state, created_at AS createdAt FROM runs WHERE org = ? AND thread_id = ? ORDER BY id").bind(org, id).all();
    return c.json({ thread, runs, snapshots: await listSnapshots(c.env.DB, org, { threadId: id, limit: 500 }) });
  });
