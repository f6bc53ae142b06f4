// @ts-check
/** The workspace's changes against git HEAD (or the workspace as the agent first saw it). */
import { api } from "./api.js";
import { h, replace } from "./dom.js";

/**
 * A unified diff as lines coloured by kind, each set as text.
 * @param {string} text
 */
export function lines(text) {
  return text.split("\n").map((line) => {
    const kind = line.startsWith("+++") || line.startsWith("---") ? "meta" : line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : line.startsWith("@@") ? "hunk" : "ctx";
    return h("span", { class: `line ${kind}` }, `${line}\n`);
  });
}

/** @param {string} env */
export function diffPanel(env) {
  const body = h("div");
  const el = h("section", { class: "panel", "data-test": "diff" }, h("button", { type: "button", onclick: () => void load() }, "Refresh"), body);
  const load = async () => {
    replace(body, h("p", { class: "hint" }, "Loading…"));
    try {
      const d = await api.diff(env);
      replace(
        body,
        h("p", { class: "hint" }, `${d.files.length} changed file${d.files.length === 1 ? "" : "s"} against ${d.base === "git" ? "git HEAD" : "the workspace as the agent first saw it"}`),
        d.files.map((f) =>
          h("details", { class: "diff-file", open: true, "data-path": f.path },
            h("summary", {}, h("span", { class: `badge diff-${f.status}` }, f.status), " ", h("code", {}, f.from ? `${f.from} → ${f.path}` : f.path), f.truncated ? " (truncated)" : ""),
            f.binary ? h("p", { class: "hint" }, "binary file") : h("pre", { class: "diff" }, lines(f.diff ?? "")),
          ),
        ),
      );
    } catch (err) {
      replace(body, h("p", { class: "error" }, `Could not load the diff: ${err instanceof Error ? err.message : String(err)}`));
    }
  };
  return { el, activate: load };
}
