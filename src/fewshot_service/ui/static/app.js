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
// The page showing: its AbortController and the promise of its clean-up. Aborting removes the page's
// listeners at once and tells its pending work not to render, so a page left mid-load never acts on a key.
let current = null;

// Stops the showing page at once, then waits for its clean-up (lease release).
async function leavePage() {
  if (!current) return;
  const { controller, shown } = current;
  current = null;
  controller.abort();
  const done = await shown;
  if (done) await done();
}

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
    // A key is printable ASCII; anything else was pasted by mistake (and fetch could not even send it).
    if (/[^\x21-\x7e]/.test(key.value.trim())) {
      signInForm("That key holds characters an API key never has (keys are ASCII letters, digits and signs): "
        + "check what was pasted.");
      return;
    }
    // Without keys an empty name still signs in: the work is recorded as "anonymous".
    session.signIn(key.value.trim(), name.value.trim() || (key.value.trim() ? "" : "anonymous"));
    start();
  });
  clear(main).append(form);
  (keyless ? name : key).focus();
}

function showSignedOut() {
  me = null;
  nav.hidden = true; signOut.hidden = true; who.textContent = "";
}

async function start() {
  if (!session.key && !session.name) {
    // Nobody signed in yet: ask the page's own route whether keys are needed, rather than /v1/me (a 401).
    const keys = await fetch("/ui/keys.json", { cache: "no-store" }).then((answer) => answer.json()).catch(() => null);
    if (keys && keys.auth_enabled) { signInForm(""); return; }
  }
  try {
    me = await call("GET", "/v1/me");
  } catch (error) {
    const why = error instanceof ApiError && error.status === 401
      ? (session.key ? "That key is unknown or revoked." : "This server needs an API key.")
      : `Cannot reach the service: ${error.message}`;
    session.signOut();
    showSignedOut();
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
  if (!mayLeave()) {
    history.replaceState(null, "", current.url);  // stay, and put its address back without another hashchange
    return;
  }
  const leaving = leavePage();  // aborts the showing page before anything else runs
  const mine = { controller: new AbortController(), shown: null, url: location.href, unsaved: null };
  current = mine;
  await leaving;
  if (current !== mine) return;  // a newer navigation started while the last page was cleaning up
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
  const { signal } = mine.controller;
  // A page's late notices (a fetch answering after it was left) are dropped: they would describe another page.
  const sayHere = (...args) => { if (!signal.aborted) say(...args); };
  // guard(fn): a page with an edit in progress tells the shell how to know it has unsaved changes.
  const guard = (unsaved) => { mine.unsaved = unsaved; };
  mine.shown = page.show(main, { me, say: sayHere, signal, guard, route: name, args: rest.map(decodeURIComponent),
    params: new URLSearchParams(search || "") })
    .catch((error) => { if (!signal.aborted) say(error.message, "error"); return null; });
}

// Whether the showing page may be left: asks first when it has unsaved changes.
function mayLeave() {
  return !(current && current.unsaved && current.unsaved())
    || confirm("This page has unsaved changes. Leave it and lose them?");
}

signOut.addEventListener("click", async () => {
  if (!mayLeave()) return;
  await leavePage();
  const keyless = Boolean(me && !me.auth_enabled);
  session.signOut();
  showSignedOut();
  signInForm("", keyless);
});
// The key was revoked (or the server restarted with other keys) mid-session: back to signing in, saying why.
window.addEventListener("fewshot:unauthorized", () => {
  if (!me) return;  // while signing in, start() says why itself
  const leaving = leavePage();  // stops the page at once; its lease release fails without a key, harmlessly
  session.signOut();
  showSignedOut();
  say("");
  signInForm("Your key is no longer accepted (revoked or unknown): sign in again with a valid key.");
  leaving.catch(() => {});
});
window.addEventListener("hashchange", route);
// A reload or closing the tab with unsaved changes: the browser asks its own question.
window.addEventListener("beforeunload", (event) => {
  if (current && current.unsaved && current.unsaved()) { event.preventDefault(); event.returnValue = ""; }
});
start();
