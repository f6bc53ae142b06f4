// @ts-check
/** The environment's event log: the newest retained events, then live ones as they happen. */
import { h } from "./dom.js";

/** @typedef {import("./api.js").EnvironmentEvent} EnvironmentEvent */

const KEEP = 1000;

/** A one-line summary of an event's data, as plain text. @param {EnvironmentEvent} e */
function summary(e) {
  const d = e.data;
  if (e.type === "state.changed") return `${d.from} → ${d.to} (${d.event}${d.reason ? `: ${d.reason}` : ""})`;
  if (e.type === "run.output") return `${String(d.runId)} ${String(d.stream)}: ${String(d.text).slice(0, 200)}`;
  return Object.entries(d).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(" ");
}

export function eventLog() {
  const tbody = h("tbody");
  const el = h("section", { class: "panel", "data-test": "events" }, h("table", { class: "events" }, h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, "at"), h("th", {}, "type"), h("th", {}, "details"))), tbody));
  return {
    el,
    /** @param {EnvironmentEvent} e */
    onEvent(e) {
      const stick = el.scrollTop + el.clientHeight >= el.scrollHeight - 4;
      tbody.appendChild(h("tr", { "data-type": e.type }, h("td", { class: "num" }, String(e.seq)), h("td", { title: e.at }, new Date(e.at).toLocaleTimeString()), h("td", {}, h("code", {}, e.type)), h("td", { class: "details" }, summary(e))));
      while (tbody.childElementCount > KEEP) tbody.firstElementChild?.remove();
      if (stick) el.scrollTop = el.scrollHeight;
    },
  };
}
