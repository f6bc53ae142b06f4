import { Hono } from "hono";
import { limitAuthFailures } from "./auth-failures.js";
import type { Env } from "./env.js";
import { problemFromError, problemResponse } from "./problem.js";
import { chaining } from "./routes/chaining.js";
import { children } from "./routes/children.js";
import { connect } from "./routes/connect.js";
import { environments } from "./routes/environments.js";
import { events } from "./routes/events.js";
import { exec } from "./routes/exec.js";
import { files } from "./routes/files.js";
import { health } from "./routes/health.js";
import { openapi } from "./routes/openapi.js";
import { hostConnect, hosts } from "./routes/hosts.js";
import { providers } from "./routes/providers.js";
import { environmentRuns, runs } from "./routes/runs.js";
import { objectives, threads } from "./routes/hierarchy.js";
import { snapshots } from "./routes/snapshots.js";
import { userTokens } from "./user-tokens.js";
import { readUnreadBody } from "./unread-body.js";

export const app = new Hono<{ Bindings: Env }>()
  .use("*", readUnreadBody)
  .use("*", limitAuthFailures)
  .route("/v1/health", health)
  .route("/v1/openapi.json", openapi)
  .route("/v1/environments", connect)
  .route("/v1/environments", environments)
  .route("/v1/environments", events)
  .route("/v1/environments", exec)
  .route("/v1/environments", files)
  .route("/v1/environments", environmentRuns)
  .route("/v1/environments", chaining)
  .route("/v1/environments", children)
  .route("/v1/runs", runs)
  .route("/v1/hosts", hostConnect)
  .route("/v1/hosts", hosts)
  .route("/v1/providers", providers)
  .route("/v1/objectives", objectives)
  .route("/v1/threads", threads)
  .route("/v1/snapshots", snapshots)
  .route("/v1/tokens", userTokens);

app.notFound((c) => problemResponse(404, "not_found", `No route for ${c.req.method} ${new URL(c.req.url).pathname}.`));
app.onError((err, c) => problemFromError(c, err));
