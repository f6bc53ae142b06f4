// @ts-check
/**
 * Exec: a command run in the workspace with its output streamed, after a confirmation. Without
 * "shell" the line is split on whitespace into argv (no quoting, nothing interpreted); with it,
 * the whole line goes to `sh -c` as the API's `shell: true`.
 */
import { ApiError, execStream } from "./api.js";
import { confirmAction } from "./confirm.js";
import { h, replace } from "./dom.js";

/** @param {string} env */
export function execPanel(env) {
  const line = h("input", { type: "text", name: "command", "data-test": "exec-command", placeholder: "ls -la", required: true, autocomplete: "off", spellcheck: "false" });
  const shell = h("input", { type: "checkbox", name: "shell", "data-test": "exec-shell" });
  const out = h("pre", { class: "output", "data-test": "exec-output" });
  const status = h("p", { class: "hint", "data-test": "exec-status" });
  const run = h("button", { type: "submit", class: "primary", "data-test": "exec-run" }, "Run…");
  const form = h("form", { class: "exec" }, line, h("label", { class: "inline" }, shell, " through the shell (sh -c)"), run);
  const el = h("section", { class: "panel", "data-test": "exec" }, form, status, out);

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = line.value.trim();
    if (!text) return;
    const command = shell.checked ? [text] : text.split(/\s+/);
    const ok = await confirmAction("Run this command?", [
      h("p", {}, "In the workspace of ", h("strong", {}, env), (shell.checked ? ", through the shell:" : ", as these arguments:")),
      h("pre", { class: "argv" }, shell.checked ? text : command.map((a) => JSON.stringify(a)).join(" ")),
    ], "Run");
    if (!ok) return replace(status, "Cancelled.");
    run.disabled = true;
    replace(out);
    replace(status, "Running…");
    try {
      await execStream(env, { command, ...(shell.checked ? { shell: true } : {}) }, (l) => {
        if (l.type === "stdout" || l.type === "stderr") out.append(h("span", { class: l.type }, l.data));
        else if (l.type === "exit") replace(status, h("span", { "data-test": "exec-exit", "data-exit-code": String(l.exitCode ?? "") }, `Exited with ${l.exitCode ?? l.signal} after ${l.durationMs} ms${l.timedOut ? " (timed out)" : ""}${l.cancelled ? " (cancelled)" : ""}`));
        else if (l.type === "error") replace(status, h("span", { class: "error" }, `${l.code}: ${l.message}`));
      });
    } catch (err) {
      replace(status, h("span", { class: "error" }, err instanceof ApiError ? `Refused (${err.status} ${err.code}): ${err.message}` : String(err)));
    } finally {
      run.disabled = false;
    }
  });
  return { el };
}
