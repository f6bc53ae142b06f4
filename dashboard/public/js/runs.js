// @ts-check
/**
 * Runs: the environment's run records, and each run's output as it streams in (the `run.output`
 * events of the event stream; output older than the stream's first replay is not shown).
 */
import { api } from "./api.js";
import { ago, h, replace } from "./dom.js";

/** @typedef {import("./api.js").Run} Run */
/** @typedef {import("./api.js").EnvironmentEvent} EnvironmentEvent */

/** @param {string} env */
export function runsPanel(env) {
  /** @type {Map<string, { stdout: string[], pre: HTMLPreElement }>} */
  const outputs = new Map();
  const list = h("div", { class: "runs" });
  const el = h("section", { class: "panel", "data-test": "runs" }, list);

  /** @param {string} runId */
  const output = (runId) => {
    let o = outputs.get(runId);
    if (!o) outputs.set(runId, (o = { stdout: [], pre: h("pre", { class: "output", "data-run": runId }) }));
    return o;
  };

  const load = async () => {
    try {
      const { runs } = await api.runs(env);
      replace(list, runs.length ? runs.map(card) : h("p", { class: "hint" }, "No runs yet (POST /v1/environments/{env}/runs starts one)."));
    } catch (err) {
      replace(list, h("p", { class: "error" }, `Could not list runs: ${err instanceof Error ? err.message : String(err)}`));
    }
  };

  /** @param {Run} r */
  const card = (r) =>
    h(
      "article",
      { class: "run", "data-run-id": r.id },
      h("header", {}, h("code", {}, r.id), " ", h("span", { class: `badge run-${r.state}`, "data-test": "run-state" }, r.state), " ", h("code", {}, r.command.join(" ")), " ",
        h("span", { class: "hint" }, `started ${ago(r.startedAt ?? r.createdAt)}${r.exitCode !== null ? `, exit ${r.exitCode}` : ""}${r.signal ? `, ${r.signal}` : ""}`)),
      output(r.id).pre,
    );

  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let reload;
  return {
    el,
    activate: load,
    /** @param {EnvironmentEvent} e */
    onEvent(e) {
      const runId = typeof e.data.runId === "string" ? e.data.runId : null;
      if (!runId) return;
      if (e.type === "run.output") output(runId).pre.append(String(e.data.text ?? ""));
      if (e.type === "run.queued" || e.type === "run.state") {
        clearTimeout(reload);
        reload = setTimeout(load, 200);
      }
    },
  };
}
