// @ts-check
/**
 * The environments table. Live without polling each environment: every visible row (a page holds
 * at most 50) keeps one event-stream WebSocket opened with `tail=0` (live events only, no backlog).
 * Those sockets hibernate on the server, so an idle row costs nothing; a `state.changed` event
 * repaints the badge at once, and state or agent events refetch that one environment's details
 * (restarts, capabilities, last seen). The list itself (a D1 query, no Durable Object woken) is
 * re-read every 30 s and when the tab becomes visible, to pick up environments created or archived.
 */
import { api, watchEvents } from "./api.js";
import { ago, badge, h, replace } from "./dom.js";

/** @typedef {import("./api.js").Environment} Environment */
/** @typedef {import("./api.js").EnvironmentSummary} EnvironmentSummary */

const LIST_REFRESH_MS = 30_000;

/**
 * @param {HTMLElement} root
 * @returns {() => void} stops every socket and timer of the page
 */
export function renderEnvironments(root) {
  const tbody = h("tbody");
  const status = h("p", { class: "hint", "data-test": "list-status" }, "Loading…");
  replace(
    root,
    h("section", { class: "card" }, h("h1", {}, "Environments"), status, h("table", { class: "environments", "data-test": "environments" },
      h("thead", {}, h("tr", {}, ...["Name", "State", "Provider", "Capabilities", "Last seen", "Restarts"].map((t) => h("th", { scope: "col" }, t)))),
      tbody,
    )),
  );

  /** @type {Map<string, { tr: HTMLTableRowElement, summary: EnvironmentSummary, detail: Environment | null, stop: () => void, refresh: () => void }>} */
  const rows = new Map();

  /** @param {EnvironmentSummary} s */
  const addRow = (s) => {
    const tr = h("tr", { "data-env": s.id, "data-name": s.name });
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let pending;
    const row = {
      tr,
      summary: s,
      detail: /** @type {Environment | null} */ (null),
      stop: () => {},
      refresh: () => {
        clearTimeout(pending);
        pending = setTimeout(async () => {
          try {
            row.detail = await api.get(s.id);
            paint(row);
          } catch {
            // archived or gone meanwhile: the next list refresh drops the row
          }
        }, 150);
      },
    };
    const watcher = watchEvents(s.id, {
      tail: 0,
      onOpen: row.refresh, // whatever changed before the socket opened is read once here
      onEvent: (e) => {
        if (e.type === "state.changed" && typeof e.data.to === "string") {
          row.summary = { ...row.summary, state: /** @type {EnvironmentSummary["state"]} */ (e.data.to) };
          if (row.detail) row.detail = { ...row.detail, state: row.summary.state };
          paint(row);
        }
        if (e.type === "state.changed" || e.type.startsWith("agent.")) row.refresh();
      },
    });
    row.stop = () => (clearTimeout(pending), watcher.close());
    rows.set(s.id, row);
    paint(row);
    return row;
  };

  /** @param {{ tr: HTMLTableRowElement, summary: EnvironmentSummary, detail: Environment | null }} row */
  const paint = ({ tr, summary, detail }) => {
    const caps = detail?.agent?.capabilities ?? [];
    const seen = detail?.connected ? "connected" : ago(detail?.lastSeenAt);
    replace(
      tr,
      h("td", {}, h("a", { href: `#/environments/${encodeURIComponent(summary.id)}`, "data-test": "env-link" }, summary.name)),
      h("td", { "data-test": "state" }, badge(detail?.state ?? summary.state)),
      h("td", {}, summary.provider),
      h("td", { class: "caps" }, caps.length ? caps.map((c) => h("span", { class: "chip" }, c)) : "—"),
      h("td", { title: detail?.lastSeenAt ?? "" }, detail ? seen : "…"),
      h("td", { class: "num" }, detail ? String(detail.restartCount) : "…"),
    );
  };

  const load = async () => {
    try {
      const { environments, nextCursor } = await api.list();
      const ids = new Set(environments.map((e) => e.id));
      for (const [id, row] of rows) if (!ids.has(id)) (row.stop(), row.tr.remove(), rows.delete(id));
      for (const s of environments) {
        const row = rows.get(s.id) ?? addRow(s);
        tbody.appendChild(row.tr); // keeps the list's order
      }
      replace(status, environments.length ? `${environments.length} environment${environments.length === 1 ? "" : "s"}${nextCursor ? " (the first 50)" : ""}, live` : "No environments yet. Create one with POST /v1/environments or `npm start`.");
    } catch (err) {
      replace(status, h("span", { class: "error" }, `Could not list environments: ${err instanceof Error ? err.message : String(err)}`));
    }
  };

  void load();
  const timer = setInterval(load, LIST_REFRESH_MS);
  const onVisible = () => document.visibilityState === "visible" && void load();
  document.addEventListener("visibilitychange", onVisible);
  return () => {
    clearInterval(timer);
    document.removeEventListener("visibilitychange", onVisible);
    for (const row of rows.values()) row.stop();
    rows.clear();
  };
}
