import { Hono } from "hono";
import { checkRelativePath, DiffQuery, FileListQuery, FileMkdirBody, FileMoveBody, QueryFlag } from "@outpost/protocol";
import { requireRole, type AuthVars } from "../auth.js";
import type { Env } from "../env.js";
import { unwrap } from "../outcome.js";
import { HttpError } from "../problem.js";
import { environmentStub, resolveEnvironmentId, type EnvironmentRpc } from "../stub.js";
import { parseBody, readJson } from "../validate.js";

type App = { Bindings: Env; Variables: AuthVars };
type Ctx = { env: Env; get(k: "user"): AuthVars["user"]; req: { param(k: "idOrName"): string; query(name: string): string | undefined } };

/** A workspace path, checked here before any Durable Object is touched; the agent re-checks with realpath. */
function checked(raw: string | undefined, what = "path", allowRoot = false): string {
  if (raw === undefined) throw new HttpError(400, "invalid_path", `Give the ${what} as a path relative to the workspace.`);
  if (allowRoot && (raw === "" || raw === "." || raw === "./")) return ".";
  const c = checkRelativePath(raw);
  if (!c.ok) throw new HttpError(400, "invalid_path", `Invalid ${what}: ${c.reason}.`);
  return c.path;
}

async function stub(c: Ctx): Promise<EnvironmentRpc> {
  const { org } = c.get("user");
  return environmentStub(c.env, org, await resolveEnvironmentId(c.env, org, c.req.param("idOrName")));
}


export const files = new Hono<App>()
  .get("/:idOrName/files", requireRole("viewer"), async (c) => {
    const path = checked(c.req.query("path"));
    const body = unwrap(await (await stub(c)).readFile(path));
    return new Response(body, { headers: { "content-type": "application/octet-stream", "cache-control": "no-store" } });
  })
  .put("/:idOrName/files", requireRole("operator"), async (c) => {
    const path = checked(c.req.query("path"));
    const length = c.req.header("content-length");
    if (length === undefined || !/^\d+$/.test(length)) {
      throw new HttpError(411, "length_required", "Send a Content-Length header with the file's size.");
    }
    const body = c.req.raw.body ?? new Blob([]).stream();
    return c.json(unwrap(await (await stub(c)).writeFile(path, body, Number(length))));
  })
  .delete("/:idOrName/files", requireRole("operator"), async (c) => {
    const path = checked(c.req.query("path"));
    const recursive = parseBody(QueryFlag.optional(), c.req.query("recursive"), "recursive") ?? false;
    return c.json(unwrap(await (await stub(c)).fileOp("file.delete", { path, recursive })));
  })
  .get("/:idOrName/files/stat", requireRole("viewer"), async (c) => {
    return c.json(unwrap(await (await stub(c)).fileOp("file.stat", { path: checked(c.req.query("path"), "path", true) })));
  })
  .get("/:idOrName/files/list", requireRole("viewer"), async (c) => {
    const q = parseBody(FileListQuery, c.req.query(), "query");
    const path = checked(q.path ?? ".", "path", true);
    return c.json(unwrap(await (await stub(c)).fileOp("file.list", { path, recursive: q.recursive ?? false, maxEntries: q.maxEntries })));
  })
  .post("/:idOrName/files/mkdir", requireRole("operator"), async (c) => {
    const body = parseBody(FileMkdirBody, await readJson(c.req.raw));
    return c.json(unwrap(await (await stub(c)).fileOp("file.mkdir", { path: checked(body.path), recursive: body.recursive })));
  })
  .post("/:idOrName/files/move", requireRole("operator"), async (c) => {
    const body = parseBody(FileMoveBody, await readJson(c.req.raw));
    const params = { from: checked(body.from, "from"), to: checked(body.to, "to"), overwrite: body.overwrite };
    return c.json(unwrap(await (await stub(c)).fileOp("file.move", params)));
  })
  .post("/:idOrName/files/copy", requireRole("operator"), async (c) => {
    const body = parseBody(FileMoveBody, await readJson(c.req.raw));
    const params = { from: checked(body.from, "from"), to: checked(body.to, "to"), overwrite: body.overwrite };
    return c.json(unwrap(await (await stub(c)).fileOp("file.copy", params)));
  })
  .get("/:idOrName/diff", requireRole("viewer"), async (c) => {
    const { maxFileBytes } = parseBody(DiffQuery, c.req.query(), "query");
    return c.json(unwrap(await (await stub(c)).diff({ maxFileBytes })));
  });
