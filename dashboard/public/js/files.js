// @ts-check
/**
 * The file browser: directories by listing, a file's stat and a preview of its start, and a
 * download fetched with the token in a header (never in the link) and handed over as a blob.
 */
import { api, saveBlob } from "./api.js";
import { bytes, h, replace } from "./dom.js";

/** @typedef {import("./api.js").FileStat} FileStat */

const PREVIEW_BYTES = 64 * 1024;

/** @param {string} path */
const base = (path) => path.split("/").pop() || path;
/** @param {string} dir @param {string} name */
const join = (dir, name) => (dir && dir !== "." ? `${dir}/${name}` : name);

/** @param {string} env */
export function filesPanel(env) {
  const crumbs = h("nav", { class: "crumbs", "data-test": "crumbs" });
  const listing = h("table", { class: "files", "data-test": "files" });
  const detail = h("div", { class: "file-detail", "data-test": "file-detail" });
  const el = h("section", { class: "panel" }, crumbs, h("div", { class: "split" }, listing, detail));
  let cwd = "";

  /** @param {string} dir */
  const open = async (dir) => {
    cwd = dir;
    const parts = dir ? dir.split("/") : [];
    replace(crumbs, h("a", { href: "#", onclick: (e) => (e.preventDefault(), void open("")) }, "workspace"),
      parts.map((p, i) => [" / ", h("a", { href: "#", onclick: (e) => (e.preventDefault(), void open(parts.slice(0, i + 1).join("/"))) }, p)]));
    try {
      const { entries, truncated } = await api.list_files(env, dir);
      const sorted = [...entries].sort((a, b) => (a.type === "directory") === (b.type === "directory") ? base(a.path).localeCompare(base(b.path)) : a.type === "directory" ? -1 : 1);
      replace(listing, h("tbody", {}, sorted.map((f) => {
        const name = base(f.path);
        const path = join(dir, name);
        const go = f.type === "directory" ? () => void open(path) : () => void show(path);
        return h("tr", { "data-path": path, "data-type": f.type },
          h("td", {}, h("a", { href: "#", "data-test": "file-link", onclick: (e) => (e.preventDefault(), go()) }, f.type === "directory" ? `${name}/` : name)),
          h("td", { class: "num" }, f.type === "file" ? bytes(f.size) : f.type));
      }), truncated ? h("tr", {}, h("td", { colspan: 2, class: "hint" }, "(more entries not shown)")) : null));
      if (!entries.length) replace(listing, h("tbody", {}, h("tr", {}, h("td", { class: "hint" }, "empty directory"))));
    } catch (err) {
      replace(listing, h("tbody", {}, h("tr", {}, h("td", { class: "error" }, `Could not list: ${err instanceof Error ? err.message : String(err)}`))));
    }
  };

  /** @param {string} path */
  const show = async (path) => {
    replace(detail, h("p", { class: "hint" }, "Loading…"));
    try {
      const st = await api.stat(env, path);
      const download = h("button", { type: "button", "data-test": "download" }, "Download");
      download.addEventListener("click", async () => saveBlob(await api.read(env, path), base(path)));
      const preview = h("pre", { class: "preview", "data-test": "preview" });
      replace(detail, h("h3", {}, h("code", {}, path)),
        h("dl", {}, h("dt", {}, "type"), h("dd", {}, st.type), h("dt", {}, "size"), h("dd", { "data-test": "size" }, `${bytes(st.size)} (${st.size} bytes)`),
          h("dt", {}, "modified"), h("dd", {}, new Date(st.mtimeMs).toLocaleString()), h("dt", {}, "mode"), h("dd", {}, `0${(st.mode & 0o7777).toString(8)}`)),
        download, preview);
      if (st.type === "file" && st.size <= PREVIEW_BYTES) {
        const data = new Uint8Array(await (await api.read(env, path)).arrayBuffer());
        const text = new TextDecoder("utf-8", { fatal: false }).decode(data);
        preview.textContent = data.includes(0) ? "(binary file)" : text;
      } else if (st.type === "file") preview.textContent = `(${bytes(st.size)}: too large to preview; download it)`;
    } catch (err) {
      replace(detail, h("p", { class: "error" }, `Could not read ${path}: ${err instanceof Error ? err.message : String(err)}`));
    }
  };

  return { el, activate: () => open(cwd) };
}
