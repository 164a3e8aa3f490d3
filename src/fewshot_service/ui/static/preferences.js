// Preferences: two responses to one prompt side by side, in random order; the response on the left is
// the one shown first and is recorded as shown_first. Keys: left arrow or 1, right arrow or 2, t tie,
// b both bad, s skip.

import { ApiError, call, query } from "./api.js";
import { clear, h } from "./dom.js";

export async function show(main, { me, say, signal }) {
  const state = { pair: null, left: "a", skipped: [], busy: false, done: 0 };
  const area = h("section", { class: "preferences", "aria-label": "Preference pair" });
  main.append(area);

  const draw = () => {
    clear(area);
    if (!state.pair) {
      area.append(h("div", { class: "card empty", id: "pairs-empty" }, h("h1", {}, "No pairs to compare"),
        h("p", {}, `You compared ${state.done} pair(s) this session.`)));
      return;
    }
    const right = state.left === "a" ? "b" : "a";
    const side = (letter, place, key) => h("article", { class: "card response", dataset: { side: place, response: letter } },
      h("h2", {}, `${place === "left" ? "Left" : "Right"} (${key})`),
      h("div", { class: "text" }, state.pair[`response_${letter}`]));
    area.append(
      h("article", { class: "card prompt", id: "pair", dataset: { preferenceId: state.pair.id } },
        h("h2", {}, "Prompt"), h("div", { class: "text" }, state.pair.prompt)),
      h("div", { class: "pair" }, side(state.left, "left", "← or 1"), side(right, "right", "→ or 2")),
      h("div", { class: "verdicts card" },
        h("button", { type: "button", "aria-keyshortcuts": "ArrowLeft", onclick: () => choose("left") }, "Left is better (←)"),
        h("button", { type: "button", "aria-keyshortcuts": "t", onclick: () => choose("tie") }, "Tie (t)"),
        h("button", { type: "button", "aria-keyshortcuts": "ArrowRight", onclick: () => choose("right") }, "Right is better (→)"),
        h("button", { type: "button", "aria-keyshortcuts": "b", onclick: () => choose("both_bad") }, "Both bad (b)"),
        h("button", { type: "button", "aria-keyshortcuts": "s", onclick: skip }, "Skip (s)")));
  };

  const load = async () => {
    state.pair = await call("GET", `/v1/preferences/next${query({ annotator: me.annotator, skip: state.skipped })}`);
    // A fresh coin per pair, so neither response is favoured by its place on screen.
    state.left = Math.random() < 0.5 ? "a" : "b";
    draw();
  };

  const guarded = (action) => async (...args) => {
    if (state.busy) return;
    state.busy = true;
    try { await action(...args); } catch (error) {
      say(error instanceof ApiError ? error.message : String(error), "error");
    } finally { state.busy = false; }
  };

  const choose = guarded(async (what) => {
    if (!state.pair) return;
    const right = state.left === "a" ? "b" : "a";
    const choice = what === "left" ? state.left : what === "right" ? right : what;
    await call("POST", `/v1/preferences/${encodeURIComponent(state.pair.id)}/labels`,
      { body: { annotator: me.annotator, choice, shown_first: state.left } });
    state.done += 1;
    await load();
  });

  const skip = guarded(async () => {
    if (!state.pair) return;
    state.skipped.push(state.pair.id);
    await load();
  });

  const onKey = (event) => {
    if (/^(INPUT|TEXTAREA|SELECT)$/.test(event.target.tagName) || event.ctrlKey || event.altKey || event.metaKey) return;
    const action = { ArrowLeft: "left", 1: "left", ArrowRight: "right", 2: "right", t: "tie", b: "both_bad" }[event.key];
    if (action) { event.preventDefault(); choose(action); } else if (event.key === "s") { event.preventDefault(); skip(); }
  };
  // Removed when the page is left (the signal aborts), even if that happens before this page finished loading.
  document.addEventListener("keydown", onKey, { signal });
  main.focus();
  try { await load(); } catch (error) { say(error.message, "error"); }
  return null;
}
