// @ts-check
/**
 * One environment: its record and actions, and tabs for the event log, runs, files, diff, snapshots
 * and exec.
 * One event-stream WebSocket (the newest 300 events, then live ones) feeds the log, the runs'
 * output and the header, which refetches the record when the state or the agent changes.
 */
import { api, ApiError, watchEvents } from "./api.js";
import { confirmAction } from "./confirm.js";
import { diffPanel } from "./diff.js";
import { ago, badge, h, replace } from "./dom.js";
import { eventLog } from "./events-log.js";
import { execPanel } from "./exec.js";
import { filesPanel } from "./files.js";
import { runsPanel } from "./runs.js";
import { snapshotsPanel } from "./snapshots.js";

/** @typedef {import("./api.js").Environment} Environment */
/** @typedef {{ el: HTMLElement, activate?: () => unknown, onEvent?: (e: import("./api.js").EnvironmentEvent) => void }} Panel */

/** What each action does, said in the confirmation. */
const ACTIONS = /** @type {const} */ ({
  start: "Start waits for the environment's agent to connect.",
  stop: "Stop asks the agent to shut down; the environment is stopped either way after the stop timeout.",
  restart: "Restart asks the agent to reconnect.",
});

/**
 * @param {HTMLElement} root
 * @param {string} env id or name
 * @param {string} [tab]
 * @returns {() => void}
 */
export function renderEnvironment(root, env, tab = "events") {
  const header = h("div", { class: "env-header", "data-test": "env-header" }, h("p", { class: "hint" }, "Loading…"));
  const message = h("p", { class: "error", role: "alert", "data-test": "action-message" });
  const actions = h("div", { class: "actions" }, Object.keys(ACTIONS).map((a) => h("button", { type: "button", "data-action": a, onclick: () => void act(/** @type {keyof typeof ACTIONS} */ (a)) }, a[0]?.toUpperCase() + a.slice(1) + "…")));

  /** @type {Record<string, Panel>} */
  const panels = { events: eventLog(), runs: runsPanel(env), files: filesPanel(env), diff: diffPanel(env), snapshots: snapshotsPanel(env), exec: execPanel(env) };
  const tabs = h("nav", { class: "tabs", role: "tablist" }, Object.keys(panels).map((name) => h("a", { href: `#/environments/${encodeURIComponent(env)}/${name}`, role: "tab", "data-tab": name, "aria-selected": String(name === tab) }, name)));
  const current = panels[tab] ?? panels.events;
  replace(root, h("section", { class: "card" }, h("p", {}, h("a", { href: "#/" }, "← environments")), header, actions, message), h("section", { class: "card" }, tabs, current?.el));
  void current?.activate?.();

  let record = /** @type {Environment | null} */ (null);
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let pending;
  const refresh = () => {
    clearTimeout(pending);
    pending = setTimeout(async () => {
      try {
        record = await api.get(env);
        paint(record);
      } catch (err) {
        replace(header, h("p", { class: "error" }, err instanceof ApiError && err.status === 404 ? `No environment '${env}' in this org.` : `Could not load: ${err instanceof Error ? err.message : String(err)}`));
      }
    }, 100);
  };

  /** @param {Environment} e */
  const paint = (e) => {
    /** @type {[string, string | Node][]} */
    const facts = [
      ["provider", e.provider],
      ["host", e.host ?? "—"],
      ["agent", e.connected ? `connected${e.agent ? ` (${e.agent.hostname}, ${e.agent.version})` : ""}` : `not connected; last seen ${ago(e.lastSeenAt)}`],
      ["capabilities", e.agent?.capabilities.join(", ") || "—"],
      ["started", e.startedAt ? ago(e.startedAt) : "—"],
      ["restarts", String(e.restartCount)],
      ["errors", e.lastError ? `${e.errorCount}: ${e.lastError}` : String(e.errorCount)],
      ["id", h("code", {}, e.id)],
    ];
    replace(header, h("h1", {}, e.name, " ", h("span", { "data-test": "state" }, badge(e.state))), h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])));
  };

  /** @param {keyof typeof ACTIONS} action */
  const act = async (action) => {
    const name = record?.name ?? env;
    if (!(await confirmAction(`${action[0]?.toUpperCase()}${action.slice(1)} ${name}?`, [ACTIONS[action]], action[0]?.toUpperCase() + action.slice(1)))) return;
    replace(message);
    try {
      record = /** @type {{ environment: Environment }} */ (await api.act(env, action)).environment;
      paint(record);
    } catch (err) {
      replace(message, err instanceof ApiError ? `${action} refused (${err.status}): ${err.message}` : String(err));
    }
  };

  const watcher = watchEvents(env, {
    tail: 300,
    onOpen: refresh,
    onEvent: (e) => {
      panels.events?.onEvent?.(e);
      panels.runs?.onEvent?.(e);
      if (e.type === "state.changed" || e.type.startsWith("agent.")) refresh();
    },
  });
  refresh();
  return () => (clearTimeout(pending), watcher.close());
}
