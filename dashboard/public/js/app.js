// @ts-check
/**
 * The dashboard's entry: routes by the URL's #fragment (so the Worker serves one static page and
 * /v1/* stays the API), and shows the sign-in until a token is kept.
 */
import { session, whenUnauthorized } from "./api.js";
import { h, replace } from "./dom.js";
import { renderEnvironment } from "./environment.js";
import { renderEnvironments } from "./environments.js";
import { renderSignIn } from "./signin.js";

const main = /** @type {HTMLElement} */ (document.getElementById("main"));
const who = /** @type {HTMLElement} */ (document.getElementById("who"));
let leave = () => {};
/** Whether a signed-in page is showing (a 401 there means the token expired or was revoked). */
let signedIn = false;

function route() {
  leave();
  leave = () => {};
  signedIn = !!session.token();
  if (!signedIn) {
    replace(who);
    renderSignIn(main, route);
    return;
  }
  const c = session.claims();
  replace(who, h("span", { "data-test": "who" }, `${c.sub ?? "?"} · ${c.org ?? "?"} · ${c.role ?? "?"}`), " ", h("button", { type: "button", "data-test": "signout", onclick: () => (session.signOut(), route()) }, "Sign out"));
  const m = /^#\/environments\/([^/]+)(?:\/([a-z]+))?$/.exec(location.hash);
  if (m?.[1]) leave = renderEnvironment(main, decodeURIComponent(m[1]), m[2]);
  else leave = renderEnvironments(main);
}

whenUnauthorized(() => {
  if (!signedIn) return; // the sign-in form reports its own refusal
  session.signOut();
  route();
});
addEventListener("hashchange", route);
route();
