// The console's shell: login, the hash router and the section links.
// Each page is a module exporting render(main, params) that fills main
// and may return a function to call when the page is left (a log follow
// to abort, say).

import { ApiError, accessKey, getJSON, onUnauthorized, setAccessKey } from "./api.js";
import { h, replace, errorBox } from "./ui.js";
import * as functionsPage from "./pages/functions.js";
import * as functionPage from "./pages/function.js";
import * as recordPage from "./pages/record.js";
import * as usagePage from "./pages/usage.js";
import * as alertsPage from "./pages/alerts.js";
import * as statePage from "./pages/state.js";

const main = document.getElementById("main");
const who = document.getElementById("who");
let leave = null;
let identity = null;

const routes = [
  [/^\/?$/, () => functionsPage.render(main, {})],
  [/^\/functions$/, () => functionsPage.render(main, {})],
  [/^\/functions\/([^/]+)(?:\/([a-z-]+))?$/, (m) => functionPage.render(main, { name: decodeURIComponent(m[1]), tab: m[2] || "overview" })],
  [/^\/invocations\/([^/]+)$/, (m) => recordPage.render(main, { id: decodeURIComponent(m[1]) })],
  [/^\/usage$/, () => usagePage.render(main, {})],
  [/^\/alerts$/, () => alertsPage.render(main, {})],
  [/^\/alerts\/([^/]+)$/, (m) => alertsPage.render(main, { name: decodeURIComponent(m[1]) })],
  [/^\/state$/, () => statePage.render(main, {})],
  [/^\/kv\/([^/]+)$/, (m) => statePage.render(main, { store: decodeURIComponent(m[1]) })],
];

function path() {
  return location.hash.replace(/^#/, "") || "/";
}

async function route() {
  if (leave) {
    try {
      leave();
    } catch (_) {
      /* a page's clean-up must not keep the next one from showing */
    }
    leave = null;
  }
  const p = path();
  if (p === "/login" || !identity) return showLogin();
  for (const a of document.querySelectorAll("#nav a")) {
    a.toggleAttribute("aria-current", p.startsWith("/" + a.dataset.section) || (p === "/" && a.dataset.section === "functions"));
    if (!a.hasAttribute("aria-current")) a.removeAttribute("aria-current");
  }
  for (const [re, fn] of routes) {
    const m = p.match(re);
    if (m) {
      try {
        leave = (await fn(m)) || null;
      } catch (e) {
        replace(main, errorBox(e));
      }
      return;
    }
  }
  replace(main, h("h1", {}, "Not found"), h("p", {}, "No page at " + p + ". "), h("a", { href: "#/functions" }, "Functions"));
}

function showWho() {
  if (!identity) return replace(who);
  const label = identity.development
    ? "development mode (no keys)"
    : `${identity.access_key_id} · ${identity.role} · tenant ${identity.tenant}`;
  replace(
    who,
    h("span", { class: "muted" }, label),
    identity.development ? null : h("button", { type: "button", class: "link", id: "logout", onclick: logout }, "Log out"),
  );
}

function logout() {
  setAccessKey("");
  identity = null;
  showWho();
  location.hash = "#/login";
  route();
}

// Asks the server who the current key is; null when it refuses it.
async function whoami() {
  try {
    return await getJSON("/v1/whoami");
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) return { refused: e };
    throw e;
  }
}

function showLogin(message) {
  document.body.classList.add("logged-out");
  const input = h("input", {
    id: "access-key",
    name: "access-key",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "ACCESS_KEY_ID:SECRET",
    required: true,
    "aria-describedby": "login-help",
  });
  const status = h("div", { id: "login-status", "aria-live": "polite" }, message ? errorBox(message) : null);
  const form = h(
    "form",
    {
      class: "login card",
      onsubmit: async (ev) => {
        ev.preventDefault();
        const key = input.value.trim();
        if (!key.includes(":")) {
          replace(status, errorBox("An access key is ACCESS_KEY_ID:SECRET, as in the server's keys file."));
          return;
        }
        setAccessKey(key);
        replace(status, h("p", { class: "muted" }, "Checking the key…"));
        const me = await whoami().catch((e) => ({ refused: e }));
        if (me.refused) {
          setAccessKey("");
          replace(status, errorBox("The server refused this key: " + me.refused.message));
          input.focus();
          input.select();
          return;
        }
        identity = me;
        showWho();
        document.body.classList.remove("logged-out");
        location.hash = "#/functions";
        route();
      },
    },
    h("h1", {}, "Log in"),
    h("label", { for: "access-key" }, "Access key"),
    input,
    h("p", { id: "login-help", class: "muted" }, "The bearer token the CLI uses as MAYFLY_TOKEN. It is kept in this tab's session storage only."),
    h("button", { type: "submit", class: "primary", id: "login-submit" }, "Log in"),
    status,
  );
  replace(main, form);
  input.focus();
}

onUnauthorized((message) => {
  if (identity && !identity.development) {
    setAccessKey("");
    identity = null;
    showWho();
    showLogin("The server no longer accepts the key: " + message);
  }
});

async function start() {
  replace(main, h("p", { class: "muted" }, "Connecting…"));
  let me;
  try {
    me = await whoami();
  } catch (e) {
    replace(main, errorBox("Cannot reach the server: " + e.message));
    return;
  }
  if (me.refused) {
    if (accessKey()) setAccessKey("");
    identity = null;
    showLogin(accessKey() ? me.refused.message : null);
    return;
  }
  identity = me;
  showWho();
  if (path() === "/login") location.hash = "#/functions";
  route();
}

window.addEventListener("hashchange", () => {
  if (identity) route();
});
start();
