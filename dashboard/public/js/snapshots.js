// @ts-check
/**
 * Snapshots of the environment's workspace (commits in the agent's shadow repository, indexed in
 * D1): take one, export it to R2 as a git bundle and download it, see what changed since, and
 * restore it into this environment. Everything that writes asks for confirmation first.
 */
import { api, ApiError, saveBlob } from "./api.js";
import { confirmAction } from "./confirm.js";
import { lines } from "./diff.js";
import { ago, bytes, h, replace } from "./dom.js";

/** @param {unknown} err */
const say = (err) => (err instanceof ApiError ? `${err.code} (${err.status}): ${err.message}` : String(err));

/** @param {string} env */
export function snapshotsPanel(env) {
  const message = h("input", { type: "text", name: "message", placeholder: "what this snapshot is (optional)", "data-test": "snapshot-message" });
  const take = h("button", { type: "submit", class: "primary", "data-test": "snapshot-take" }, "Take snapshot…");
  const form = h("form", { class: "exec" }, message, take);
  const status = h("p", { class: "hint", "data-test": "snapshot-status" });
  const list = h("table", { class: "files", "data-test": "snapshots" });
  const detail = h("div", { class: "file-detail", "data-test": "snapshot-detail" });
  const el = h("section", { class: "panel" }, form, status, h("div", { class: "split" }, list, detail));

  const load = async () => {
    try {
      const { snapshots } = await api.snapshots(env);
      replace(list, h("tbody", {}, snapshots.length
        ? snapshots.map((s) => h("tr", { "data-snapshot-id": s.id },
            h("td", {}, h("a", { href: "#", "data-test": "snapshot-link", onclick: (e) => (e.preventDefault(), void show(s.id)) }, s.message || s.id)),
            h("td", { class: "num", title: s.createdAt }, `${s.files} files, ${bytes(s.bytes)}, ${ago(s.createdAt)}`)))
        : h("tr", {}, h("td", { class: "hint" }, "No snapshots of this environment yet."))));
    } catch (err) {
      replace(list, h("tbody", {}, h("tr", {}, h("td", { class: "error" }, `Could not list snapshots: ${say(err)}`))));
    }
  };

  /** @param {string} id */
  const show = async (id) => {
    replace(detail, h("p", { class: "hint" }, "Loading…"));
    try {
      const s = await api.snapshot(id);
      const out = h("div", { "data-test": "snapshot-output" });
      /** @param {string} label @param {string} test @param {() => Promise<void>} run */
      const button = (label, test, run) => h("button", { type: "button", "data-test": test, onclick: () => void run().catch((err) => replace(out, h("p", { class: "error" }, say(err)))) }, label);
      replace(detail,
        h("h3", {}, s.message || s.id),
        h("dl", {}, h("dt", {}, "id"), h("dd", {}, h("code", {}, s.id)), h("dt", {}, "commit"), h("dd", {}, h("code", {}, s.commit.slice(0, 12))),
          h("dt", {}, "thread"), h("dd", {}, s.threadId ?? "—"), h("dt", {}, "run"), h("dd", {}, s.runId ?? "—"),
          h("dt", {}, "taken"), h("dd", {}, new Date(s.createdAt).toLocaleString())),
        h("h4", {}, "Exports"),
        s.exports.length
          ? h("ul", { "data-test": "snapshot-exports" }, s.exports.map((x) => h("li", { "data-export-id": x.id }, `${x.format}${x.baseSnapshotId ? " (incremental)" : ""}, ${bytes(x.size)}, sha256 ${x.sha256.slice(0, 12)}… `,
              button("Download", "export-download", async () => saveBlob(await api.downloadExport(s.id, x.id), `${s.id}.${x.format === "bundle" ? "bundle" : "tar.gz"}`)))))
          : h("p", { class: "hint" }, "Not exported yet."),
        h("div", { class: "actions" },
          button("Export to R2…", "snapshot-export", async () => {
            if (!(await confirmAction("Export this snapshot?", ["A git bundle of the snapshot is streamed from the environment into R2."], "Export"))) return;
            replace(out, h("p", { class: "hint" }, "Exporting…"));
            await api.exportSnapshot(s.id);
            await show(s.id);
          }),
          button("Changes since", "snapshot-changes", async () => {
            replace(out, h("p", { class: "hint" }, "Comparing (this takes a snapshot of the workspace as it is now)…"));
            const patch = await api.changesSince(s.id, env);
            replace(out, patch ? h("pre", { class: "diff" }, lines(patch)) : h("p", { class: "hint" }, "No changes since this snapshot."));
            await load();
          }),
          button("Restore…", "snapshot-restore", async () => {
            if (!(await confirmAction("Restore this snapshot?", [h("p", {}, "The workspace of ", h("strong", {}, env), " becomes exactly this snapshot: files changed or added since are replaced or removed (the workspace as it was is kept as a snapshot first).")], "Restore"))) return;
            replace(out, h("p", { class: "hint" }, "Restoring…"));
            await api.restore(s.id, env);
            replace(out, h("p", { "data-test": "snapshot-restored" }, "Restored."));
            await load();
          })),
        out);
    } catch (err) {
      replace(detail, h("p", { class: "error" }, `Could not read the snapshot: ${say(err)}`));
    }
  };

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!(await confirmAction("Take a snapshot?", [h("p", {}, "The workspace of ", h("strong", {}, env), " is recorded as it is now.")], "Take snapshot"))) return;
    take.disabled = true;
    replace(status, "Taking a snapshot…");
    try {
      const { snapshot } = await api.takeSnapshot(env, message.value.trim());
      replace(status, `Snapshot ${snapshot.id}: ${snapshot.files} files, ${bytes(snapshot.bytes)}.`);
      message.value = "";
      await load();
      await show(snapshot.id);
    } catch (err) {
      replace(status, h("span", { class: "error" }, say(err)));
    } finally {
      take.disabled = false;
    }
  });

  return { el, activate: load };
}
