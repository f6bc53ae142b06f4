// @ts-check
/**
 * The environments table, a page at a time (the API's cursor and limit: Previous/Next and a page
 * size). Live without polling each environment: a row keeps an event-stream WebSocket (`tail=0`,
 * live events only) while it is on screen, and closes it when it scrolls out of view or its page is
 * left, so a page of 100 rows on a small window holds only the few sockets it can show. A socket
 * (re)opened reads that environment once, so a row that comes back into view is current; a
 * `state.changed` event repaints the badge at once, and state or agent events refetch that one
 * environment's details (restarts, capabilities, last seen). The page itself (a D1 query, no Durable
 * Object woken) is re-read every 30 s and when the tab becomes visible, to pick up environments
 * created or archived.
 */
import { api, watchEvents } from "./api.js";
import { ago, badge, h, replace } from "./dom.js";

/** @typedef {import("./api.js").Environment} Environment */
/** @typedef {import("./api.js").EnvironmentSummary} EnvironmentSummary */
/** @typedef {{ tr: HTMLTableRowElement, summary: EnvironmentSummary, detail: Environment | null, watch: () => void, unwatch: () => void, refresh: () => void }} Row */

const LIST_REFRESH_MS = 30_000;
export const PAGE_SIZES = [10, 25, 50, 100];
const DEFAULT_SIZE = 25;
const SIZE_KEY = "outpost.pageSize";

/**
 * @param {HTMLElement} root
 * @returns {() => void} stops every socket and timer of the page
 */
export function renderEnvironments(root) {
  const tbody = h("tbody");
  const status = h("p", { class: "hint", "data-test": "list-status" }, "Loading…");
  const prev = h("button", { type: "button", "data-test": "page-prev", disabled: true, onclick: () => go(index - 1) }, "← Previous");
  const next = h("button", { type: "button", "data-test": "page-next", disabled: true, onclick: () => go(index + 1) }, "Next →");
  const label = h("span", { class: "hint", "data-test": "page-label" }, "");
  const stored = Number(localStorage.getItem(SIZE_KEY));
  let size = PAGE_SIZES.includes(stored) ? stored : DEFAULT_SIZE;
  const sizeSelect = h(
    "select",
    { "data-test": "page-size", "aria-label": "Rows per page", onchange: () => ((size = Number(sizeSelect.value)), localStorage.setItem(SIZE_KEY, String(size)), (cursors.length = 1), go(0)) },
    PAGE_SIZES.map((n) => h("option", { value: String(n), selected: n === size }, `${n} per page`)),
  );
  replace(
    root,
    h("section", { class: "card" }, h("h1", {}, "Environments"), status, h("table", { class: "environments", "data-test": "environments" },
      h("thead", {}, h("tr", {}, ...["Name", "State", "Provider", "Capabilities", "Last seen", "Restarts"].map((t) => h("th", { scope: "col" }, t)))),
      tbody,
    ), h("nav", { class: "pager", "aria-label": "Pages" }, prev, label, next, sizeSelect)),
  );

  /** The cursor of each page seen so far: cursors[0] is the first page's (none). */
  /** @type {Array<string | undefined>} */
  const cursors = [undefined];
  let index = 0;
  /** @type {Map<string, Row>} */
  const rows = new Map();
  /** Rows on screen keep their socket; a row off screen (or on another page) has none. */
  const onScreen = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      const row = rows.get(/** @type {HTMLElement} */ (entry.target).dataset.env ?? "");
      if (row) entry.isIntersecting ? row.watch() : row.unwatch();
    }
  });

  /** @param {EnvironmentSummary} s @returns {Row} */
  const addRow = (s) => {
    const tr = h("tr", { "data-env": s.id, "data-name": s.name });
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let pending;
    /** @type {{ close(): void } | null} */
    let watcher = null;
    /** @type {Row} */
    const row = {
      tr,
      summary: s,
      detail: null,
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
      watch: () => {
        if (watcher) return;
        tr.dataset.live = "true";
        watcher = watchEvents(s.id, {
          tail: 0,
          onOpen: row.refresh, // whatever changed while it had no socket is read once here
          onEvent: (e) => {
            if (e.type === "state.changed" && typeof e.data.to === "string") {
              row.summary = { ...row.summary, state: /** @type {EnvironmentSummary["state"]} */ (e.data.to) };
              if (row.detail) row.detail = { ...row.detail, state: row.summary.state };
              paint(row);
            }
            if (e.type === "state.changed" || e.type.startsWith("agent.")) row.refresh();
          },
        });
      },
      unwatch: () => {
        clearTimeout(pending);
        watcher?.close();
        watcher = null;
        delete tr.dataset.live;
      },
    };
    rows.set(s.id, row);
    paint(row);
    return row;
  };

  /** @param {string} id */
  const dropRow = (id) => {
    const row = rows.get(id);
    if (!row) return;
    onScreen.unobserve(row.tr);
    row.unwatch();
    row.tr.remove();
    rows.delete(id);
  };

  /** @param {Row} row */
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

  /** Loads page `to` (0-based), or re-reads the current one. */
  let loading = 0;
  /** @param {number} to */
  const go = async (to) => {
    const ticket = ++loading;
    prev.disabled = next.disabled = true;
    try {
      const { environments, nextCursor } = await api.list(cursors[to], size);
      if (ticket !== loading) return; // a later click won
      if (environments.length === 0 && to > 0) return void go(to - 1); // the page emptied (archived meanwhile)
      index = to;
      cursors.length = index + 1;
      if (nextCursor) cursors.push(nextCursor);
      const ids = new Set(environments.map((e) => e.id));
      for (const id of [...rows.keys()]) if (!ids.has(id)) dropRow(id);
      for (const s of environments) {
        const known = rows.get(s.id);
        const row = known ?? addRow(s);
        tbody.appendChild(row.tr); // keeps the list's order
        if (!known) onScreen.observe(row.tr);
      }
      const first = index * size + 1;
      replace(label, `Page ${index + 1}`);
      replace(
        status,
        environments.length
          ? `${first}–${first + environments.length - 1}${nextCursor ? ", more on the next page" : ""}; live while on screen`
          : "No environments yet. Create one with POST /v1/environments or `npm start`.",
      );
      prev.disabled = index === 0;
      next.disabled = !nextCursor;
    } catch (err) {
      if (ticket !== loading) return;
      replace(status, h("span", { class: "error" }, `Could not list environments: ${err instanceof Error ? err.message : String(err)}`));
      prev.disabled = index === 0;
      next.disabled = cursors.length <= index + 1;
    }
  };

  void go(0);
  const timer = setInterval(() => void go(index), LIST_REFRESH_MS);
  const onVisible = () => document.visibilityState === "visible" && void go(index);
  document.addEventListener("visibilitychange", onVisible);
  return () => {
    clearInterval(timer);
    document.removeEventListener("visibilitychange", onVisible);
    onScreen.disconnect();
    for (const id of [...rows.keys()]) dropRow(id);
  };
}
