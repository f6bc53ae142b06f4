// @ts-check
/** One modal confirmation (<dialog>) for every action that changes an environment. */
import { h, replace } from "./dom.js";

/**
 * Resolves true when the user confirms, false when they cancel or press Escape.
 * @param {string} title
 * @param {(string | Node)[]} body
 * @param {string} [confirmLabel]
 * @returns {Promise<boolean>}
 */
export function confirmAction(title, body, confirmLabel = "Confirm") {
  const dialog = /** @type {HTMLDialogElement} */ (document.getElementById("confirm"));
  const ok = h("button", { type: "submit", value: "ok", class: "primary", "data-test": "confirm-ok" }, confirmLabel);
  const cancel = h("button", { type: "submit", value: "cancel", "data-test": "confirm-cancel" }, "Cancel");
  replace(dialog, h("form", { method: "dialog" }, h("h2", {}, title), ...body.map((b) => (typeof b === "string" ? h("p", {}, b) : b)), h("menu", {}, cancel, ok)));
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    ok.focus();
  });
}
