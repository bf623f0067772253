// The insights page: draws GET /v1/insights with uPlot (vendored, /static/vendor/uplot), and lists the
// items behind a group from GET /v1/insights/items. Same origin, the session cookie; reads only.
"use strict";

(function () {
  const root = document.getElementById("insights");
  if (!root || typeof uPlot === "undefined") return;
  const range = { from: root.dataset.from, to: root.dataset.to };
  const by = root.dataset.by;
  const PALETTE = ["#c0392b", "#2471a3", "#229954", "#d68910", "#7d3c98", "#17a589", "#a04000", "#5d6d7e",
                   "#cb4335", "#2e86c1", "#28b463", "#b7950b", "#6c3483", "#148f77", "#873600", "#34495e", "#999"];

  function el(tag, text, attrs) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const cell of cells) {
      const td = document.createElement("td");
      if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell === null || cell === undefined ? "-" : String(cell);
      tr.appendChild(td);
    }
    return tr;
  }

  function pct(v) { return v === null || v === undefined ? "-" : (100 * v).toFixed(0) + " %"; }

  function width(node) { return Math.max(320, Math.min(1100, node.clientWidth || 900)); }

  function xs(weeks) { return weeks.map((w) => Date.parse(w + "T00:00:00Z") / 1000); }

  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") q.set(k, v);
    return q.toString();
  }

  async function getJson(path) {
    const response = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(path + ": " + response.status);
    return response.json();
  }

  function drawNegative(data) {
    const target = document.getElementById("chart-negative");
    const series = data.series.slice(0, 16);
    if (!series.length) { target.appendChild(el("p", "No scored items in this range.", { class: "muted" })); return; }
    const opts = {
      width: width(target), height: 320, spanGaps: true,
      scales: { y: { range: [0, 1] } },
      axes: [{}, { values: (u, ticks) => ticks.map((t) => (100 * t).toFixed(0) + "%") }],
      series: [{ label: "week of", value: (u, v) => (v === null ? "-" : new Date(v * 1000).toISOString().slice(0, 10)) }]
        .concat(series.map((s, i) => ({ label: s.group, stroke: PALETTE[i % PALETTE.length], width: 2,
                                         value: (u, v) => pct(v), points: { show: true } }))),
    };
    const plot = new uPlot(opts, [xs(data.weeks)].concat(series.map((s) => s.negative_share)), target);
    target.dataset.series = String(plot.series.length - 1);
  }

  function drawScores(data) {
    const target = document.getElementById("chart-scores");
    const opts = {
      width: width(target), height: 280, spanGaps: true,
      scales: { nps: { range: [-100, 100] }, csat: { range: [1, 5] } },
      axes: [{}, { scale: "nps", label: "NPS" }, { scale: "csat", side: 1, label: "CSAT", grid: { show: false } }],
      series: [
        { label: "week of", value: (u, v) => (v === null ? "-" : new Date(v * 1000).toISOString().slice(0, 10)) },
        { label: "NPS", scale: "nps", stroke: "#2471a3", width: 2, points: { show: true } },
        { label: "CSAT", scale: "csat", stroke: "#d68910", width: 2, points: { show: true } },
      ],
    };
    const plot = new uPlot(opts, [xs(data.weeks), data.scores.nps, data.scores.csat], target);
    target.dataset.series = String(plot.series.length - 1);
  }

  function drawDrivers(data) {
    const target = document.getElementById("chart-drivers");
    const drivers = data.drivers;
    const body = document.querySelector("#drivers tbody");
    body.replaceChildren(...drivers.map((d) => row([d.need, d.detractors, pct(d.detractor_share), d.promoters,
                                                    pct(d.promoter_share)])));
    if (!drivers.length) { target.appendChild(el("p", "No NPS answers with text in this range.", { class: "muted" })); return; }
    // One bar pair per need: x is the need's position, labelled with its name.
    const names = drivers.map((d) => d.need);
    const bars = uPlot.paths.bars({ size: [0.3, 40], align: -1 });
    const opts = {
      width: width(target), height: 260,
      scales: { x: { time: false, range: [-0.7, names.length - 0.3] }, y: { range: [0, 1] } },
      axes: [{ values: (u, ticks) => ticks.map((t) => (Number.isInteger(t) ? names[t] || "" : "")), splits: () => names.map((_, i) => i) },
             { values: (u, ticks) => ticks.map((t) => (100 * t).toFixed(0) + "%") }],
      series: [
        { label: "need", value: (u, v) => (v === null ? "-" : names[v]) },
        { label: "share of detractors", stroke: "#c0392b", fill: "rgba(192,57,43,0.6)", paths: bars, points: { show: false },
          value: (u, v) => pct(v) },
        { label: "share of promoters", stroke: "#229954", fill: "rgba(34,153,84,0.6)",
          paths: uPlot.paths.bars({ size: [0.3, 40], align: 1 }), points: { show: false }, value: (u, v) => pct(v) },
      ],
    };
    new uPlot(opts, [names.map((_, i) => i), drivers.map((d) => d.detractor_share || 0),
                     drivers.map((d) => d.promoter_share || 0)], target);
  }

  function num(v) { return v === null || v === undefined ? "-" : Number(v).toFixed(2); }

  function drawExpectations(data) {
    // SUR-3: per touch point, the feeling answers expected against the one they had; worst gap first.
    const target = document.getElementById("chart-expectations");
    const gaps = data.expectations;
    const body = document.querySelector("#expectations tbody");
    body.replaceChildren(...gaps.map((g) => row([g.touch_point.replace("_", " "), num(g.expected), num(g.perceived),
                                                 g.gap === null ? "-" : (g.gap > 0 ? "+" : "") + num(g.gap), g.answers])));
    if (!gaps.length) { target.appendChild(el("p", "No answers rated expected or perceived in this range.", { class: "muted" })); return; }
    const names = gaps.map((g) => g.touch_point);
    const opts = {
      width: width(target), height: 260,
      scales: { x: { time: false, range: [-0.7, names.length - 0.3] }, y: { range: [0, 5] } },
      axes: [{ values: (u, ticks) => ticks.map((t) => (Number.isInteger(t) ? (names[t] || "").replace("_", " ") : "")),
               splits: () => names.map((_, i) => i) }, {}],
      series: [
        { label: "touch point", value: (u, v) => (v === null ? "-" : names[v]) },
        { label: "expected", stroke: "#5d6d7e", fill: "rgba(93,109,126,0.5)", paths: uPlot.paths.bars({ size: [0.3, 40], align: -1 }),
          points: { show: false }, value: (u, v) => num(v) },
        { label: "perceived", stroke: "#2471a3", fill: "rgba(36,113,163,0.7)", paths: uPlot.paths.bars({ size: [0.3, 40], align: 1 }),
          points: { show: false }, value: (u, v) => num(v) },
      ],
    };
    const plot = new uPlot(opts, [names.map((_, i) => i), gaps.map((g) => g.expected), gaps.map((g) => g.perceived)], target);
    target.dataset.series = String(plot.series.length - 1);
  }

  async function showItems(group) {
    const params = Object.assign({}, range, { sentiment: "negative", limit: 50 });
    params[by] = group;
    const caption = document.getElementById("items-caption");
    const body = document.querySelector("#items tbody");
    try {
      const items = await getJson("/v1/insights/items?" + query(params));
      caption.textContent = `Negative items for ${by.replace("_", " ")} "${group}" (${items.length}, newest first)`;
      body.replaceChildren(...items.map((i) => row([i.day, i.sentiment, i.needs.map((n) => `${n.need} (${n.sentiment})`).join(", "),
                                                    i.source, i.touch_point, i.nps, i.csat, i.excerpt])));
    } catch (err) {
      caption.textContent = "Could not load the items: " + err.message;
    }
  }

  function drawRising(data) {
    const body = document.querySelector("#rising tbody");
    if (!data.rising.length) { body.replaceChildren(row(["Nothing rose against the previous period.", "", "", "", ""])); return; }
    body.replaceChildren(...data.rising.map((r) => {
      const link = el("a", r.group, { href: "#items", "data-group": r.group, class: "rising-group" });
      link.addEventListener("click", () => showItems(r.group));
      const list = el("ul");
      for (const item of r.top_items) list.appendChild(el("li", `${item.day} (${Number(item.score).toFixed(2)}): ${item.excerpt}`, { "data-item": item.id }));
      return row([link, r.negative, r.previous_negative, "+" + r.delta, list]);
    }));
  }

  function drawTotals(data) {
    const t = data.totals;
    document.getElementById("totals").textContent =
      `${data.from} to ${data.to}: ${t.items} items, ${pct(t.negative_share)} negative, net sentiment ` +
      `${t.net_sentiment === null ? "-" : t.net_sentiment.toFixed(2)}; NPS ${t.nps === null ? "-" : t.nps} ` +
      `(${t.answers} answers: ${t.promoters} promoters, ${t.passives} passives, ${t.detractors} detractors); ` +
      `CSAT ${t.csat === null ? "-" : t.csat.toFixed(2)} (${t.csat_answers} answers).`;
  }

  getJson("/v1/insights?" + query({ from: range.from, to: range.to, by: by }))
    .then((data) => {
      drawTotals(data);
      drawNegative(data);
      drawScores(data);
      drawRising(data);
      drawDrivers(data);
      drawExpectations(data);
      root.dataset.ready = "true";
    })
    .catch((err) => { document.getElementById("totals").textContent = "Could not load the insights: " + err.message; });
})();
