// The bank's health: topic × difficulty coverage (thin cells link to a filtered browse), near-duplicate
// clusters (each links to its members), source mix over time, label agreement, the quality model.

import { ApiError, call, image, query } from "./api.js";
import { clear, h } from "./dom.js";

const pct = (x) => (x === null || x === undefined ? "–" : `${Math.round(x * 100)}%`);
const num = (x) => (x === null || x === undefined ? "–" : Number(x).toFixed(2));

export async function show(main, { me, say }) {
  const coverage = h("section", { class: "card", id: "coverage" }, h("h2", {}, "Coverage"), h("p", {}, "Loading…"));
  const clusters = h("section", { class: "card", id: "clusters" }, h("h2", {}, "Near-duplicates"));
  const charts = h("section", { class: "card", id: "charts" }, h("h2", {}, "Source mix"));
  const throughput = h("section", { class: "card", id: "throughput" }, h("h2", {}, "Labels per day"));
  const agreement = h("section", { class: "card", id: "agreement" }, h("h2", {}, "Agreement"), h("p", {}, "Loading…"));
  const quality = me.may("admin") ? h("section", { class: "card", id: "quality" }, h("h2", {}, "Quality model")) : null;
  main.append(h("div", { class: "health" }, coverage, clusters, agreement, charts, throughput, quality));
  const urls = [];

  call("GET", "/v1/stats").then((stats) => {
    drawCoverage(coverage, stats);
    drawClusters(clusters, stats.near_duplicates);
    drawThroughput(throughput, stats.label_throughput);
  }).catch((error) => clear(coverage).append(h("p", { class: "error" }, error.message)));
  image("/v1/stats/charts/source_mix.png").then((url) => {
    urls.push(url);
    charts.append(h("img", { src: url, alt: "Live examples per topic, split by source (curated, llm, imported)", class: "chart" }));
  }).catch((error) => charts.append(h("p", { class: "error" }, `Chart unavailable: ${error.message}`)));
  call("GET", "/v1/stats/agreement").then((report) => drawAgreement(agreement, report))
    .catch((error) => clear(agreement).append(h("p", { class: "error" }, error.message)));
  if (quality) {
    call("GET", "/v1/admin/quality").then((info) => quality.append(
      h("p", {}, `Trained ${new Date(info.trained_at).toLocaleString()} on bank revision ${info.bank_revision}.`),
      h("pre", { class: "text" }, JSON.stringify(info.metrics, null, 2)),
    )).catch((error) => quality.append(h("p", { class: "muted" },
      error instanceof ApiError && error.status === 404 ? "No quality model trained yet." : error.message)));
  }
  return () => urls.forEach((url) => URL.revokeObjectURL(url));
}

function drawCoverage(section, stats) {
  const approved = new Map();
  for (const cell of stats.cells) {
    if (cell.status !== "approved" || cell.topic === null || cell.difficulty === null) continue;
    const key = `${cell.topic}|${cell.difficulty}`;
    approved.set(key, (approved.get(key) || 0) + cell.count);
  }
  const topics = Object.keys(stats.by_topic).filter(Boolean).sort();
  const target = stats.coverage_target;
  clear(section).append(
    h("h2", {}, "Coverage: approved examples per topic × difficulty"),
    h("p", { class: "muted" }, `${stats.total} examples (${Object.entries(stats.by_status).map(([s, n]) => `${n} ${s}`).join(", ")}). `,
      `Cells under the target of ${target} are thin: open one to see what it holds.`),
    h("div", { class: "scroll" }, h("table", { class: "coverage" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Topic"), [1, 2, 3, 4, 5].map((d) => h("th", { scope: "col" }, `D${d}`)))),
      h("tbody", {}, topics.map((topic) => h("tr", {}, h("th", { scope: "row" }, topic), [1, 2, 3, 4, 5].map((d) => {
        const n = approved.get(`${topic}|${d}`) || 0;
        const link = h("a", { href: `#browse${query({ topic, difficulty: d })}`,
          "aria-label": `${topic}, difficulty ${d}: ${n} approved${n < target ? " (thin)" : ""}` }, String(n));
        return h("td", { class: n < target ? "thin" : "" }, link);
      })))))));
}

function drawClusters(section, report) {
  clear(section).append(h("h2", {}, "Near-duplicate clusters"),
    h("p", { class: "muted" }, `${report.count} cluster(s) of examples at least ${report.threshold} similar, ${report.examples} examples in all.`));
  if (!report.largest.length) return;
  section.append(h("ol", {}, report.largest.map((cluster) => h("li", {},
    h("a", { href: `#browse${query({ ids: cluster.members.map((m) => m.id).join(",") })}` },
      `${cluster.size} examples, similarity up to ${num(cluster.max_similarity)}`),
    h("ul", {}, cluster.members.map((member) => h("li", {},
      h("a", { href: `#example/${encodeURIComponent(member.id)}` }, member.input), ` (${member.status})`)))))));
}

function drawAgreement(section, report) {
  const verdict = report.questions.find((q) => q.question === "verdict");
  clear(section).append(h("h2", {}, "Agreement"),
    h("p", { class: "muted" }, `${report.examples_labelled} examples labelled by ${report.annotators.length} annotator(s); `,
      `${report.fast_labels.count} label(s) faster than ${report.fast_labels.threshold_seconds} s.`),
    h("div", { class: "scroll" }, h("table", {}, h("thead", {}, h("tr", {}, ["Question", "Units", "Agreement", "Cohen κ", "Fleiss κ", "Krippendorff α"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, report.questions.map((q) => h("tr", {}, h("th", { scope: "row" }, q.question), h("td", {}, q.units),
        h("td", {}, pct(q.percent_agreement)), h("td", {}, num(q.cohen_kappa)),
        h("td", {}, num(q.fleiss_kappa && q.fleiss_kappa.value)), h("td", {}, num(q.krippendorff_alpha))))))),
    h("h3", {}, "Per annotator"),
    h("div", { class: "scroll" }, h("table", {}, h("thead", {}, h("tr", {}, ["Annotator", "Labels", "With consensus", "Gold accuracy", "Fast labels"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, report.per_annotator.map((a) => h("tr", { class: a.fast_labels > 0 ? "flagged" : "" },
        h("th", { scope: "row" }, a.annotator), h("td", {}, a.labels), h("td", {}, pct(a.agreement_with_consensus)),
        h("td", {}, a.gold_items ? pct(a.gold_accuracy) : "no gold"), h("td", {}, `${a.fast_labels} (${pct(a.fast_share)})`)))))),
    h("h3", {}, "Per pair (verdict)"),
    verdict && verdict.cohen_pairs.length
      ? h("div", { class: "scroll" }, h("table", {}, h("thead", {}, h("tr", {}, ["Pair", "Shared items", "Cohen κ"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, verdict.cohen_pairs.map((p) => h("tr", {}, h("th", { scope: "row" }, p.annotators.join(" · ")),
          h("td", {}, p.items), h("td", {}, num(p.kappa)))))))
      : h("p", { class: "muted" }, "No two annotators have labelled the same examples yet."));
}

function drawThroughput(section, days) {
  if (!days.length) { section.append(h("p", { class: "muted" }, "No labels yet.")); return; }
  section.append(h("table", {}, h("thead", {}, h("tr", {}, ["Day (UTC)", "Labels", "Annotators", "Examples"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, days.slice(-14).reverse().map((d) => h("tr", {}, h("th", { scope: "row" }, d.day),
      h("td", {}, d.labels), h("td", {}, d.annotators), h("td", {}, d.examples))))));
}
