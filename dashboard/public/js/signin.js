// @ts-check
/** Sign in with an API token: checked against the API before it is kept. */
import { api, ApiError, session } from "./api.js";
import { h, replace } from "./dom.js";

/**
 * @param {HTMLElement} root
 * @param {() => void} done
 */
export function renderSignIn(root, done) {
  const token = h("textarea", { id: "token", name: "token", rows: 4, required: true, autocomplete: "off", spellcheck: "false", placeholder: "eyJhbGciOi..." });
  const remember = h("input", { type: "checkbox", id: "remember" });
  const error = h("p", { class: "error", role: "alert" });
  const form = h(
    "form",
    { class: "card signin", "data-test": "signin" },
    h("h1", {}, "Sign in to Outpost"),
    h("p", { class: "hint" }, "Paste an API token (", h("code", {}, "npm run -s token -- --org ORG --role admin"), " prints one for a local control plane; ", h("code", {}, "npm start"), " prints one too)."),
    h("label", { for: "token" }, "API token"),
    token,
    h("label", { class: "inline" }, remember, " Remember on this device (otherwise only for this tab)"),
    error,
    h("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const value = token.value.trim();
    session.signIn(value, remember.checked);
    try {
      await api.list(undefined, 1); // is the token accepted?
      done();
    } catch (err) {
      session.signOut();
      replace(error, err instanceof ApiError ? `Refused (${err.status}): ${err.message}` : String(err));
    }
  });
  replace(root, form);
  token.focus();
}
