// The shell: sign-in, who am I, the page switcher. Pages are modules with show(main, context).

import { ApiError, call, session } from "./api.js";
import { clear, field, h } from "./dom.js";
import * as browse from "./browse.js";
import * as health from "./health.js";
import * as preferences from "./preferences.js";
import * as review from "./review.js";

const PAGES = { review, preferences, browse, health, example: browse };
const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const signOut = document.getElementById("sign-out");
const notice = document.getElementById("notice");
let me = null;
let leave = null;  // the current page's clean-up (key handlers, timers, lease release)

export function say(message, kind = "info") {
  notice.hidden = !message;
  notice.className = `notice ${kind}`;
  notice.textContent = message || "";
}

function signInForm(problem, keyless = false) {
  // keyless: the server said it runs without API keys, so only the name the work is recorded under is asked.
  const key = h("input", { type: "password", name: "key", autocomplete: "off", spellcheck: "false" });
  const name = h("input", { type: "text", name: "name", autocomplete: "username", value: session.name });
  const form = keyless
    ? h("form", { class: "card sign-in", "aria-labelledby": "sign-in-title" },
      h("h1", { id: "sign-in-title" }, "Sign in"),
      h("p", {}, "This server runs without API keys (loopback development): no key is needed. ",
        "Give the name your labels and edits are recorded under."),
      field("Your name", name),
      h("button", { type: "submit" }, "Sign in"))
    : h("form", { class: "card sign-in", "aria-labelledby": "sign-in-title" },
      h("h1", { id: "sign-in-title" }, "Sign in"),
      h("p", {}, "Paste your API key. It is kept in this tab only (session storage) and sent as a Bearer header."),
      field("API key", key),
      h("p", { class: "hint" }, "No keys on this server (loopback development)? Leave the key empty and give your name."),
      field("Your name (without keys)", name),
      problem ? h("p", { class: "error", role: "alert" }, problem) : null,
      h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    // Without keys an empty name still signs in: the work is recorded as "anonymous".
    session.signIn(key.value.trim(), name.value.trim() || (key.value.trim() ? "" : "anonymous"));
    start();
  });
  clear(main).append(form);
  (keyless ? name : key).focus();
}

async function start() {
  try {
    me = await call("GET", "/v1/me");
  } catch (error) {
    const why = error instanceof ApiError && error.status === 401
      ? (session.key ? "That key is unknown or revoked." : "This server needs an API key.")
      : `Cannot reach the service: ${error.message}`;
    session.signOut();
    nav.hidden = true; signOut.hidden = true; who.textContent = "";
    signInForm(why);
    return;
  }
  if (!me.auth_enabled && !session.name) {
    // A server without keys answers anyone: ask for the name the work is recorded under first.
    signInForm("", true);
    return;
  }
  // Without keys every caller is the anonymous admin; the name typed at sign-in labels the work.
  me.annotator = me.auth_enabled ? me.name : (session.name || "anonymous");
  me.may = (role) => ["reader", "curator", "admin"].indexOf(me.role) >= ["reader", "curator", "admin"].indexOf(role);
  who.textContent = `${me.annotator} · ${me.role}${me.auth_enabled ? "" : " (no keys)"}`;
  signOut.hidden = false;
  nav.hidden = !me.may("curator");
  route();
}

async function route() {
  if (!me) return;
  if (leave) { const done = leave; leave = null; await done(); }
  say("");
  if (!me.may("curator")) {
    clear(main).append(h("section", { class: "card" }, h("h1", {}, "Read-only key"),
      h("p", {}, `The key "${me.name}" has the ${me.role} role: it may select examples but not curate them. `,
        "Sign in with a curator key to review, compare and edit.")));
    return;
  }
  const [path, search] = (location.hash.slice(1) || "review").split("?");
  const [name, ...rest] = path.split("/");
  const page = PAGES[name] || review;
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.page === (name in PAGES ? name : "review")) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  clear(main);
  leave = (await page.show(main, { me, say, route: name, args: rest.map(decodeURIComponent),
    params: new URLSearchParams(search || "") })) || null;
}

signOut.addEventListener("click", async () => {
  if (leave) { const done = leave; leave = null; await done(); }
  const keyless = Boolean(me && !me.auth_enabled);
  session.signOut(); me = null;
  nav.hidden = true; signOut.hidden = true; who.textContent = "";
  signInForm("", keyless);
});
window.addEventListener("hashchange", route);
start();
