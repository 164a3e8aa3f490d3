// Browse the bank (text search and filters), open an example, edit it under the version check, and see
// its history and labels. #browse?topic=..&difficulty=..&status=.. and #example/ID are linkable.

import { ApiError, call, isDeleted, query } from "./api.js";
import { clear, field, h, select, when } from "./dom.js";

const FILTERS = ["q", "topic", "difficulty_min", "difficulty_max", "status", "source"];
const STATUSES = [["", "any status"], ["approved", "approved"], ["pending", "pending"], ["rejected", "rejected"]];
const SOURCES = [["", "any source"], ["curated", "curated"], ["llm", "llm"], ["imported", "imported"]];
const LEVELS = [["", "any"], ...[1, 2, 3, 4, 5].map((d) => [String(d), String(d)])];
const DIFFICULTIES = [["", "none"], ...LEVELS.slice(1)]; // an example's own: "any" would read as a filter

export async function show(main, context) {
  if (context.route === "example") return showExample(main, context, context.args[0] || "");
  return showList(main, context);
}

function showList(main, { params, say }) {
  const given = Object.fromEntries(FILTERS.map((name) => [name, params.get(name) || ""]));
  if (params.get("difficulty")) given.difficulty_min = given.difficulty_max = params.get("difficulty");
  const ids = (params.get("ids") || "").split(",").filter(Boolean);
  const controls = {
    q: h("input", { type: "search", name: "q", value: given.q, maxlength: 200 }),
    topic: h("input", { type: "text", name: "topic", value: given.topic }),
    difficulty_min: select("difficulty_min", LEVELS, given.difficulty_min),
    difficulty_max: select("difficulty_max", LEVELS, given.difficulty_max),
    status: select("status", STATUSES, given.status),
    source: select("source", SOURCES, given.source),
  };
  const form = h("form", { class: "card filters", role: "search" },
    field("Text", controls.q), field("Topic", controls.topic), field("Difficulty from", controls.difficulty_min),
    field("to", controls.difficulty_max), field("Status", controls.status), field("Source", controls.source),
    h("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = Object.fromEntries(FILTERS.map((name) => [name, controls[name].value.trim()]));
    location.hash = `browse${query(chosen)}`;
  });
  const results = h("tbody");
  const more = h("button", { type: "button", hidden: true }, "More");
  const summary = h("p", { class: "muted", "aria-live": "polite" });
  main.append(form, h("section", { class: "card" }, summary,
    h("table", { class: "results", id: "results" },
      h("thead", {}, h("tr", {}, ["Input", "Topic", "Difficulty", "Status", "Source", "Quality"].map((t) => h("th", { scope: "col" }, t)))),
      results), more));

  const row = (example) => h("tr", {},
    h("td", {}, h("a", { href: `#example/${encodeURIComponent(example.id)}` }, excerpt(example.input))),
    // data-label: the column's name, shown beside the value where a narrow window stacks the cells.
    h("td", { "data-label": "Topic" }, example.topic || "–"), h("td", { "data-label": "Difficulty" }, example.difficulty ?? "–"),
    h("td", { "data-label": "Status" }, example.status), h("td", { "data-label": "Source" }, example.source),
    h("td", { "data-label": "Quality" }, example.quality ?? "–"));

  let cursor = null;
  let count = 0;
  const page = async () => {
    const filters = Object.fromEntries(FILTERS.map((name) => [name, given[name]]));
    const data = await call("GET", `/v1/examples${query({ ...filters, cursor, limit: 50 })}`);
    results.append(...data.examples.map(row));
    count += data.examples.length;
    cursor = data.next_cursor;
    more.hidden = !cursor;
    summary.textContent = `${count}${cursor ? "+" : ""} example(s)`;
  };
  // One page at a time: a double click on More would load the same cursor twice.
  more.addEventListener("click", () => {
    more.disabled = true;
    page().catch((error) => say(error.message, "error")).finally(() => { more.disabled = false; });
  });
  if (ids.length) {
    // A duplicate cluster's members, opened from the health page.
    Promise.all(ids.map((id) => call("GET", `/v1/examples/${encodeURIComponent(id)}`).catch(() => null)))
      .then((found) => { const live = found.filter(Boolean); results.append(...live.map(row));
        summary.textContent = `${live.length} example(s) of a near-duplicate cluster`; });
  } else {
    page().catch((error) => say(error instanceof ApiError ? error.message : String(error), "error"));
  }
  return null;
}

// The worked solution, a textarea a step: a step keeps its line breaks and indentation (code, a table)
// exactly, as one textarea split on line breaks could not. Steps left blank are dropped on saving.
function stepEditor(steps) {
  const list = h("ol", { class: "step-editor" });
  const renumber = () => list.querySelectorAll("li").forEach((item, n) => {
    item.querySelector("textarea").setAttribute("aria-label", `Step ${n + 1}`);
    item.querySelector("button").setAttribute("aria-label", `Remove step ${n + 1}`);
  });
  const changed = () => list.dispatchEvent(new Event("input", { bubbles: true }));
  const add = (text) => {
    const lines = text.split("\n").length;
    const area = h("textarea", { rows: Math.min(8, Math.max(2, lines)), value: text, dataset: { field: "steps" } });
    const remove = () => {
      // Focus stays in the list for keyboard users: on the step that moved up, else on "Add step".
      const next = item.nextElementSibling || item.previousElementSibling;
      item.remove();
      renumber();
      changed();
      (next ? next.querySelector("textarea") : addButton).focus();
    };
    const item = h("li", {}, area, h("button", { type: "button", onclick: remove }, "Remove"));
    list.append(item);
    renumber();
    return area;
  };
  const addButton = h("button", { type: "button", onclick: () => { add("").focus(); changed(); } }, "Add step");
  steps.forEach(add);
  list.dataset.field = "steps";
  const node = h("fieldset", { class: "step-fields", id: "step-editor" }, h("legend", {}, "Steps"), list, addButton);
  node.value = () => [...list.querySelectorAll("textarea")].map((area) => area.value).filter((text) => text.trim());
  return node;
}

function excerpt(text) {
  return text.length > 140 ? `${text.slice(0, 140)}…` : text;
}

async function showExample(main, context, id) {
  const { say, signal } = context;
  if (!id) {
    main.append(h("p", { class: "error card", id: "no-example" }, "There is no example id in the address (#example/ID). ",
      h("a", { href: "#browse" }, "Browse the bank"), " to open one."));
    return null;
  }
  const path = `/v1/examples/${encodeURIComponent(id)}`;
  let example;
  try {
    example = await call("GET", path);
  } catch (error) {
    if (!signal.aborted) main.append(h("p", { class: "error card" }, error.message));
    return null;
  }
  if (signal.aborted) return null;  // left while loading: main belongs to another page now
  const steps = stepEditor(example.steps || []);
  const controls = {
    input: h("textarea", { name: "input", rows: 4, value: example.input }),
    steps,
    output: h("textarea", { name: "output", rows: 2, value: example.output }),
    topic: h("input", { type: "text", name: "topic", value: example.topic || "" }),
    difficulty: select("difficulty", DIFFICULTIES, example.difficulty ? String(example.difficulty) : ""),
    // One tag a line: a tag may hold commas ("1,000 lines"), never a line break worth keeping.
    tags: h("textarea", { name: "tags", rows: Math.max(2, example.tags.length + 1), value: example.tags.join("\n") }),
    status: select("status", STATUSES.slice(1), example.status),
  };
  const version = h("span", { id: "version" }, String(example.version));
  const updated = h("span", { id: "updated" }, when(example.updated_at));
  const saveButton = h("button", { type: "submit" }, "Save");
  const conflict = h("div", { class: "conflict", id: "conflict", role: "alert", hidden: true });
  const form = h("form", { class: "card edit", "aria-label": "Edit example" },
    h("h1", {}, "Example ", h("code", {}, example.id)),
    h("p", { class: "muted" }, `${example.source} · version `, version, " · updated ", updated),
    field("Input", controls.input), steps, field("Output", controls.output),
    h("div", { class: "row" }, field("Topic", controls.topic), field("Difficulty", controls.difficulty),
      field("Tags (one per line)", controls.tags), field("Status", controls.status)),
    conflict,
    saveButton);

  // Only the fields the curator touched are sent: a field shown in a simpler form than it is stored (tags
  // trimmed, one a line) must not be rewritten by an edit elsewhere.
  const touched = new Set();
  const touch = (event) => touched.add(event.target.name || event.target.dataset.field);
  for (const kind of ["input", "change"]) form.addEventListener(kind, touch);
  const draft = () => ({
    input: controls.input.value,
    steps: steps.value(),
    output: controls.output.value,
    topic: controls.topic.value.trim() || null,
    difficulty: controls.difficulty.value ? Number(controls.difficulty.value) : null,
    tags: [...new Set(controls.tags.value.split("\n").map((t) => t.trim()).filter(Boolean))],  // exact duplicates once
    status: controls.status.value,
  });
  const changed = (base, mine) => Object.fromEntries(Object.entries(mine).filter(([name, value]) => touched.has(name)
    && JSON.stringify(value) !== JSON.stringify(name === "steps" ? base.steps || [] : base[name])));

  const unsaved = () => Object.keys(changed(example, draft())).length > 0;
  context.guard(unsaved);  // the shell asks before leaving the page or closing the tab
  const deleted = () => say("This example was deleted (by someone else): your edit was not saved. "
    + "Copy what you want to keep from the form before leaving the page.", "error");

  // One save at a time: a second one in flight would be based on the old version, a conflict with yourself.
  const save = async (basedOn, { keepDuplicate = false } = {}) => {
    if (saveButton.disabled) return;
    const changes = changed(example, draft());
    if (!Object.keys(changes).length) { say("Nothing changed."); return; }
    saveButton.disabled = true;
    try {
      const target = keepDuplicate ? `${path}?on_duplicate=keep` : path;
      example = await call("PATCH", target, { body: changes, extraHeaders: { "If-Match": `"${basedOn}"` } });
      version.textContent = String(example.version);
      updated.textContent = when(example.updated_at);
      conflict.hidden = true;
      say(`Saved: version ${example.version}.`);
      loadSide().catch((error) => say(error.message, "error"));
    } catch (error) {
      if (isDeleted(error)) deleted();
      else if (error instanceof ApiError && error.code === "duplicate") showDuplicate(error.duplicates[0], basedOn);
      else if (error instanceof ApiError && error.status === 409) await showConflict(changes);
      else say(`${error.message}${error.field ? ` (field ${error.field})` : ""}`, "error");
    } finally {
      saveButton.disabled = false;
    }
  };

  // Someone saved first: show what they changed beside the edit, which stays in the form until chosen.
  const showConflict = async (mine) => {
    let theirs;
    try {
      theirs = await call("GET", path);
    } catch (error) {
      if (isDeleted(error)) { deleted(); return; }
      throw error;
    }
    clear(conflict).append(
      h("h2", {}, `Conflict: someone saved version ${theirs.version} after you opened version ${example.version}`),
      h("p", {}, "Your edit is still in the form. Compare, then keep yours or take theirs."),
      h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Field"), h("th", {}, "Theirs (saved)"), h("th", {}, "Yours"))),
        h("tbody", {}, Object.keys(mine).map((name) => h("tr", {}, h("th", { scope: "row" }, name),
          h("td", { class: "text" }, show_(theirs[name])), h("td", { class: "text" }, show_(mine[name])))))),
      h("button", { type: "button", onclick: () => { example = { ...example, version: theirs.version }; save(theirs.version); } },
        "Keep mine (save over theirs)"),
      h("button", { type: "button", onclick: () => showExampleAgain() }, "Take theirs (discard mine)"));
    conflict.hidden = false;
    conflict.querySelector("button").focus();
  };
  // The new input repeats another example: say which, and let the curator open it or save anyway.
  const showDuplicate = (twin, basedOn) => {
    const how = twin.kind === "exact" ? "reads the same as" : `is nearly the same as (similarity ${twin.similarity.toFixed(3)})`;
    clear(conflict).append(
      h("h2", {}, "Not saved: this input would duplicate another example"),
      h("p", {}, `The new input ${how} example `,
        h("a", { href: `#example/${encodeURIComponent(twin.duplicate_of)}`, target: "_blank", rel: "noopener" },
          twin.duplicate_of), ". Your edit is still in the form."),
      h("button", { type: "button", onclick: () => save(basedOn, { keepDuplicate: true }) }, "Save anyway"));
    conflict.hidden = false;
    conflict.querySelector("a").focus();
  };
  const showExampleAgain = () => { clear(main); showExample(main, context, id); };
  const show_ = (value) => (value === null || value === undefined ? "–" : Array.isArray(value) ? value.join("\n") : String(value));

  form.addEventListener("submit", (event) => { event.preventDefault(); save(example.version); });

  const side = h("aside", { class: "card side" });
  const loadSide = async () => {
    const [history, labels, usage] = await Promise.all([
      call("GET", `${path}/history`), call("GET", `${path}/labels`), call("GET", `${path}/usage`)]);
    const times = (n) => `${n} ${n === 1 ? "time" : "times"}`;
    clear(side).append(
      h("p", { id: "served" }, `Served ${times(usage.served_last_day)} in the last day`,
        h("span", { class: "muted" }, ` (${times(usage.served_kept)} among the kept selections)`)),
      // Withdrawn labels stay in the record but no longer count: listed, marked, not counted.
      h("h2", {}, `Labels (${labels.filter((label) => !label.withdrawn_at).length})`),
      labels.length ? h("ul", { id: "labels" }, labels.map((label) => h("li", { class: label.withdrawn_at ? "withdrawn" : "" },
        label.withdrawn_at ? h("strong", {}, `Withdrawn ${when(label.withdrawn_at)}: `) : null,
        `${label.annotator}: ${label.verdict}${label.score ? ` ${label.score}/5` : ""}`,
        label.step_ratings ? ` · steps ${label.step_ratings.map((r) => (r > 0 ? "+" : r < 0 ? "−" : "0")).join(" ")}` : "",
        ` · ${when(label.created_at)}`, label.note ? h("div", { class: "muted text" }, label.note) : null)))
        : h("p", { class: "muted" }, "No labels."),
      h("h2", {}, "History"),
      h("ol", { id: "history" }, history.map((entry) => h("li", {}, `${when(entry.at)} · ${entry.actor} · ${entry.action}`,
        Object.keys(entry.changes || {}).length ? ` (${Object.keys(entry.changes).join(", ")})` : ""))));
  };
  main.append(h("div", { class: "example-layout" }, form, side));
  loadSide().catch((error) => say(error.message, "error"));
  controls.input.focus();
  return null;
}
