// Review: one queue item, one decision, one key. a approve, r reject, f needs fix, 1-5 score,
// s skip (releases the lease), u undo; step ratings + / 0 / - with the arrow keys moving between steps.

import { ApiError, call, isDeleted, query, text } from "./api.js";
import { append, clear, field, h, when } from "./dom.js";
import { renderMarkdown } from "./markdown.js";

const RATING_KEYS = { "+": 1, "=": 1, "0": 0, "-": -1 };
const RATING_TEXT = { 1: "+", 0: "0", "-1": "−" };
// Key-to-shown durations of verdicts, read by the labelling benchmark (numbers only).
window.fewshotTimings = window.fewshotTimings || [];
// The second click of a double-click lands on the next item's button, which replaced the first one: clicks
// this soon after an item is shown are not taken as a decision about it. (Keys are not held back.)
const SETTLE_MS = 400;

export async function show(main, { me, say, signal }) {
  const state = { item: null, skipped: [], recent: [], ahead: null, score: null, ratings: [], step: -1, last: null,
    done: 0, pending: null, busy: false, fixing: false, pressedAt: null, shownAt: 0 };
  const progress = h("div", { class: "progress", "aria-live": "polite" });
  const task = h("section", { class: "task", "aria-label": "Item to review" });
  const guide = h("aside", { class: "guidelines card", "aria-label": "Guidelines" }, h("p", {}, "Loading guidelines…"));
  main.append(h("div", { class: "review-layout" }, h("div", { class: "review-main" }, progress, task), guide));

  text("/ui/guidelines.md").then((source) => clear(guide).append(...renderMarkdown(source)))
    .catch((error) => clear(guide).append(h("p", { class: "error" }, `Guidelines unavailable: ${error.message}`)));

  let agreement = "…";
  const drawProgress = () => clear(progress).append(
    h("span", {}, "Pending in the bank: ", h("strong", { id: "pending-count" }, state.pending ?? "…")),
    h("span", {}, "Labelled by you today: ",
      h("strong", { id: "today-count" }, state.before === undefined ? "…" : state.before + state.done),
      " (this session: ", h("strong", { id: "done-count" }, state.done), ")"),
    h("span", {}, "Your agreement with others: ", h("strong", {}, agreement)));
  drawProgress();
  call("GET", "/v1/stats").then((stats) => { state.pending = stats.by_status.pending || 0; drawProgress(); })
    .catch(() => { state.pending = "?"; drawProgress(); });
  // "Today" is the curator's own day: counted by the service from their local midnight.
  const midnight = new Date(); midnight.setHours(0, 0, 0, 0);
  call("GET", `/v1/review/progress${query({ since: midnight.toISOString(), annotator: me.annotator })}`)
    .then((progress_) => { state.before = progress_.labelled - state.done; drawProgress(); })
    .catch(() => { state.before = undefined; drawProgress(); });
  call("GET", "/v1/stats/agreement").then((report) => {
    const mine = report.per_annotator.find((row) => row.annotator === me.annotator);
    agreement = mine && mine.agreement_with_consensus !== null
      ? `${Math.round(mine.agreement_with_consensus * 100)}% over ${mine.consensus_items} items (all-time labels: ${mine.labels})`
      : "not enough shared items yet";
    drawProgress();
  }).catch(() => { agreement = "unavailable"; drawProgress(); });

  let ticking = null;
  const countdown = (expires) => {
    clearInterval(ticking);
    const out = h("span", { class: "lease", id: "lease" });
    const tick = () => {
      const left = Math.max(0, Math.round((Date.parse(expires) - Date.now()) / 1000));
      out.textContent = left > 0
        ? `Leased to you for ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`
        : "Lease expired: another curator may take this item";
      out.classList.toggle("expired", left === 0);
    };
    tick();
    ticking = setInterval(tick, 1000);
    return out;
  };
  signal.addEventListener("abort", () => clearInterval(ticking));

  const stepList = () => {
    const steps = state.item.example.steps || [];
    if (!steps.length) return h("p", { class: "muted" }, "No worked steps.");
    const firstWrong = state.ratings.indexOf(-1);
    return h("ol", { class: "steps", id: "steps", "aria-label": "Steps (arrow keys move, + 0 - rate)" },
      steps.map((step, i) => {
        const rating = state.ratings[i];
        return h("li", {
          class: `step${i === state.step ? " current" : ""}${i === firstWrong ? " first-wrong" : ""}`,
          dataset: { rating: rating === undefined || rating === null ? "" : String(rating) },
          "aria-current": i === state.step ? "step" : null,
        }, h("span", { class: "rating", "aria-label": "rating" },
          rating === undefined || rating === null ? "·" : RATING_TEXT[rating]),
        h("span", { class: "step-text text" }, step),
        i === firstWrong ? h("span", { class: "badge" }, "first wrong step") : null);
      }));
  };

  const draw = () => {
    clear(task);
    if (!state.item) {
      // Pending items may remain that are not offered: skipped by this curator, or leased to others.
      const skipped = state.skipped.length;
      task.append(h("div", { class: "card empty", id: "queue-empty" }, h("h1", {}, "Nothing to review"),
        h("p", {}, skipped
          ? `Nothing more is offered to you: you skipped ${skipped} item(s) this session, not offered again until you reload the page. `
          : "Nothing is waiting for your label. ",
        "Pending items the bank still counts are leased to other curators, or labelled by you already. ",
        "Examples added through the API or an import, and those an expansion generates, arrive here as pending. ",
        "Meanwhile, ", h("a", { href: "#browse" }, "browse the bank"), "."),
        state.last ? h("p", {}, "Press u to undo your last label.") : null));
      return;
    }
    const { example, reason, labels } = state.item;
    const live = (labels || []).filter((label) => !label.withdrawn_at);  // withdrawn ones no longer count
    const fix = h("textarea", { name: "corrected_output", rows: 4, id: "corrected-output", value: example.output });
    const note = h("input", { type: "text", name: "note", id: "fix-note", maxlength: 4000 });
    append(task, [
      h("div", { class: "item-head" },
        h("span", { class: "reason" }, { pending_llm: "Pending (LLM-generated)", pending: "Pending",
          disagreement: "Labels disagree", undo: "Your undone label" }[reason] || reason),
        h("span", { class: "meta" }, `${example.topic || "no topic"} · difficulty ${example.difficulty ?? "–"} · ${example.source}`),
        state.item.lease_expires_at ? countdown(state.item.lease_expires_at) : h("span", { class: "lease" }, "Not leased")),
      h("article", { class: "card item", id: "item", dataset: { exampleId: example.id } },
        h("h2", {}, "Input"), h("div", { class: "text", id: "item-input" }, example.input),
        h("h2", {}, "Steps ", h("span", { class: "hint keys" }, "↑ ↓ move · + 0 − rate")), stepList(),
        h("h2", {}, "Output"), h("div", { class: "text", id: "item-output" }, example.output)),
      h("div", { class: "decision card" },
        h("div", { class: "score", id: "score" }, "Score: ",
          [1, 2, 3, 4, 5].map((n) => h("button", { type: "button", class: state.score === n ? "chosen" : "",
            "aria-pressed": String(state.score === n), "aria-keyshortcuts": String(n),
            onclick: () => setScore(n) }, String(n)))),
        h("div", { class: "verdicts" },
          h("button", { type: "button", class: "approve", "aria-keyshortcuts": "a", onclick: settled(() => verdict("approve")) }, "Approve (a)"),
          h("button", { type: "button", class: "reject", "aria-keyshortcuts": "r", onclick: settled(() => verdict("reject")) }, "Reject (r)"),
          h("button", { type: "button", class: "fix", "aria-keyshortcuts": "f", onclick: settled(openFix) }, "Needs fix (f)"),
          h("button", { type: "button", "aria-keyshortcuts": "s", onclick: settled(skip) }, "Skip (s)"),
          h("button", { type: "button", id: "undo", "aria-keyshortcuts": "u", onclick: settled(undo), disabled: !state.last }, "Undo (u)"))),
      h("form", { class: "card fix-panel", id: "fix-panel", hidden: !state.fixing,
        onsubmit: (event) => { event.preventDefault(); verdict("needs_fix", fix.value, note.value); } },
        field("Corrected output", fix), field("What you changed, and why", note),
        h("p", { class: "hint" }, "Ctrl+Enter submits, Escape closes."),
        h("button", { type: "submit" }, "Submit needs fix")),
      live.length
        ? h("details", { class: "card" }, h("summary", {}, `Other labels (${live.length})`),
          h("ul", {}, live.map((label) => h("li", {},
            `${label.annotator}: ${label.verdict}${label.score ? ` ${label.score}/5` : ""} — ${when(label.created_at)}`,
            label.note ? h("div", { class: "muted text" }, label.note) : null))))
        : null]);
    if (state.fixing) fix.focus();
  };

  const shown = () => {
    draw();
    state.shownAt = performance.now();
    if (state.pressedAt !== null) {
      const started = state.pressedAt;
      state.pressedAt = null;
      // After the next frame: the item is on screen, not only in the DOM.
      requestAnimationFrame(() => setTimeout(() => window.fewshotTimings.push(performance.now() - started), 0));
    }
  };

  const setItem = (item) => {
    state.item = item;
    state.score = null; state.fixing = false; state.step = -1;
    state.ratings = item ? (item.example.steps || []).map(() => null) : [];
  };

  // Items not to be offered again this session: skipped ones, and ones whose label may still be in flight.
  // (The service takes at most 500 skip ids; skips older than the last 400 may be offered again.)
  const passed = () => [...state.skipped.slice(-400), ...state.recent];

  const load = async () => {
    setItem(await call("GET", `/v1/review/next${query({ annotator: me.annotator, skip: passed() })}`));
    shown();
    prefetch();
  };

  // The next item is leased while this one is on screen, so a verdict shows it without a round trip
  // (one decision, one key: the wait between items is what a curator feels).
  const prefetch = () => {
    state.ahead = null;
    if (!state.item || signal.aborted) return;
    const skip = [...passed(), state.item.example.id];
    state.ahead = call("GET", `/v1/review/next${query({ annotator: me.annotator, skip })}`).catch(() => undefined);
  };

  const advance = async () => {
    const ahead = state.ahead ? await state.ahead : undefined;
    state.ahead = null;
    if (ahead === undefined) { await load(); return; }
    setItem(ahead);
    shown();
    prefetch();
  };

  const guarded = (action) => async (...args) => {
    if (state.busy) return;
    state.busy = true;
    try {
      await action(...args);
    } catch (error) {
      say(error instanceof ApiError ? `${error.message}${error.field ? ` (${error.field})` : ""}` : String(error), "error");
    } finally {
      state.busy = false;
    }
  };

  const settled = (action) => () => { if (performance.now() - state.shownAt >= SETTLE_MS) action(); };
  const gone = (id) => say(`Example ${id} was deleted by someone else: it is no longer in the queue.`, "error");

  const setScore = (n) => { state.score = state.score === n ? null : n; draw(); };

  const verdict = guarded(async (kind, corrected, note) => {
    if (!state.item) return;
    const item = state.item;
    const example = item.example;
    const rated = state.ratings.some((r) => r !== null);
    say("");  // a notice about the item before (e.g. "label this item again") is done with
    // The version shown: if someone edited the example meanwhile, the service refuses the label (409).
    const body = { annotator: me.annotator, verdict: kind, score: state.score, version: example.version,
      // Unrated steps count as neutral; steps after the first wrong one are not judged (PRM800K).
      step_ratings: rated ? state.ratings.map((r) => r ?? 0) : null,
      corrected_output: kind === "needs_fix" && corrected !== example.output ? corrected : null,
      note: note || null };
    const saving = call("POST", `/v1/examples/${encodeURIComponent(example.id)}/labels`, { body });
    state.recent = [...state.recent.slice(-40), example.id];
    await advance();
    // The label is counted (and undoable) only once the service has stored it; a refusal brings the item back.
    saving.then((result) => {
      // Undo puts the item back among the pending ones only if this label took it out.
      const counted = typeof state.pending === "number" && result.example.status !== "pending";
      state.last = { exampleId: example.id, labelId: result.label.id, counted };
      state.done += 1;
      if (counted) state.pending -= 1;
      drawProgress();
      const undoButton = document.getElementById("undo");
      if (undoButton) undoButton.disabled = false;
    }).catch(async (error) => {
      state.recent = state.recent.filter((id) => id !== example.id);
      if (signal.aborted) return;
      if (isDeleted(error)) { gone(example.id); return; }  // already moved on: nothing to bring back
      let back = item;
      let why = `Your ${kind} label was not saved: ${error.message}${error.field ? ` (${error.field})` : ""}. The item is back.`;
      if (error instanceof ApiError && error.status === 409 && error.field === "version") {
        // Edited by someone else while on screen: show what it says now, to be judged afresh.
        try {
          back = { ...item, example: await call("GET", `/v1/examples/${encodeURIComponent(example.id)}`) };
        } catch (again) {
          if (isDeleted(again)) { gone(example.id); return; }
          throw again;
        }
        why = `This example was edited while you were reading it (now version ${back.example.version}): `
          + "your label was not saved. Here it is as it is now: look at it again before labelling.";
      }
      if (signal.aborted) return;
      if (state.item) state.ahead = Promise.resolve(state.item);
      setItem(back);
      shown();
      say(why, "error");
    }).catch((error) => say(`Your ${kind} label was not saved: ${error.message}`, "error"));
  });

  const skip = guarded(async () => {
    if (!state.item) return;
    const id = state.item.example.id;
    say("");
    if (state.item.lease_expires_at) {
      await call("POST", `/v1/review/${encodeURIComponent(id)}/release`).catch((error) => {
        if (!isDeleted(error)) throw error;
        gone(id);  // nothing left to hand back: move on all the same
      });
    }
    state.skipped.push(id);
    await advance();
  });

  const undo = guarded(async () => {
    if (!state.last) return;
    const { exampleId, labelId, counted } = state.last;
    try {
      await call("DELETE", `/v1/examples/${encodeURIComponent(exampleId)}/labels/${encodeURIComponent(labelId)}`);
    } catch (error) {
      say(`Undo failed: ${error.message}`, "error");
      return;
    }
    state.last = null; state.done -= 1;
    state.recent = state.recent.filter((id) => id !== exampleId);
    // The item on screen stays leased and comes next; the undone one is labelled again first.
    if (state.item) state.ahead = Promise.resolve(state.item);
    const example = await call("GET", `/v1/examples/${encodeURIComponent(exampleId)}`);
    if (counted && example.status === "pending") state.pending += 1;
    drawProgress();
    setItem({ example, reason: "undo", labels: null, lease_expires_at: null });
    say("Label removed: label this item again.");
    shown();
  });

  function openFix() { if (state.item) { state.fixing = true; draw(); } }

  const moveStep = (by) => {
    const count = state.ratings.length;
    if (!count) return;
    state.step = Math.min(count - 1, Math.max(0, (state.step < 0 ? (by > 0 ? -1 : count) : state.step) + by));
    draw();
  };

  const rate = (value) => {
    if (!state.ratings.length) return;
    if (state.step < 0) state.step = 0;
    state.ratings[state.step] = value;
    if (state.step < state.ratings.length - 1) state.step += 1;
    draw();
  };

  const onKey = (event) => {
    if (event.altKey || event.metaKey) return;
    const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(event.target.tagName);
    if (state.fixing && typing) {
      if (event.key === "Escape") { state.fixing = false; draw(); main.focus(); event.preventDefault(); }
      else if (event.key === "Enter" && event.ctrlKey) { document.getElementById("fix-panel").requestSubmit(); event.preventDefault(); }
      return;
    }
    if (typing || event.ctrlKey) return;
    const key = event.key;
    // A held-down key repeats: one press is one decision.
    if (event.repeat && ["a", "r", "s", "u"].includes(key)) { event.preventDefault(); return; }
    if (key === "a" || key === "r") {
      event.preventDefault();
      state.pressedAt = performance.now();
      verdict(key === "a" ? "approve" : "reject");
    } else if (key === "f") { event.preventDefault(); openFix(); }
    else if (key === "s") { event.preventDefault(); skip(); }
    else if (key === "u") { event.preventDefault(); undo(); }
    else if (/^[1-5]$/.test(key)) { event.preventDefault(); setScore(Number(key)); }
    else if (key === "ArrowDown" || key === "ArrowRight" || key === "j") { event.preventDefault(); moveStep(1); }
    else if (key === "ArrowUp" || key === "ArrowLeft" || key === "k") { event.preventDefault(); moveStep(-1); }
    else if (key in RATING_KEYS) { event.preventDefault(); rate(RATING_KEYS[key]); }
  };
  // Removed when the page is left (the signal aborts), even if that happens before this page finished loading.
  document.addEventListener("keydown", onKey, { signal });
  main.focus();
  try { await load(); } catch (error) { say(error.message, "error"); }

  // Leaving the page hands the item back, so it does not sit leased until the lease runs out.
  return async () => {
    const ahead = state.ahead ? await state.ahead : null;
    for (const held of [state.item, ahead]) {
      if (held && held.lease_expires_at) {
        await call("POST", `/v1/review/${encodeURIComponent(held.example.id)}/release`).catch(() => {});
      }
    }
  };
}
