"""The dashboard page: plain HTML and a small script that draws the trend chart as SVG (no libraries, no CDN).

The page holds no data; the script reads the API key from the address (``/#key=KEY``) and fetches
``/api/summary`` with it every few seconds.
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tuneforge monitor</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:10px 20px;display:flex;gap:20px;align-items:center}
header h1{font-size:18px;margin:0}main{padding:16px 20px;display:grid;gap:16px}
section{background:#fff;border-radius:6px;padding:12px 16px;box-shadow:0 1px 2px #0002}
h2{font-size:15px;margin:0 0 8px}table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:4px 6px;border-bottom:1px solid #eee;vertical-align:top}
.open{color:#b00020;font-weight:600}.closed{color:#667}.neg{color:#b00020}.pos{color:#0a7a32}
#legend span{margin-right:12px;white-space:nowrap}
#legend i{display:inline-block;width:10px;height:10px;margin-right:4px}
#error{color:#b00020}
</style></head><body>
<header><h1>tuneforge monitor</h1>
<label>topic <select id="topic-filter"><option value="">all</option></select></label>
<label>source <select id="source-filter"><option value="">all</option></select></label>
<span id="status">loading</span><span id="error"></span></header>
<main>
<section><h2>Negative share per topic</h2><svg id="trend" width="900" height="260" role="img"></svg>
<div id="legend"></div></section>
<section><h2>Recent alerts</h2><table id="alerts"><thead><tr><th>opened</th><th>state</th><th>rule</th><th>on</th>
<th>what</th></tr></thead><tbody></tbody></table></section>
<section><h2>Latest items</h2><table id="items"><thead><tr><th>time</th><th>topic</th><th>source</th>
<th>sentiment</th><th>text</th></tr></thead><tbody></tbody></table></section>
</main>
<script>
const KEY = new URLSearchParams(location.hash.slice(1)).get("key") || "";
const COLORS = ["#1f77b4","#d62728","#2ca02c","#ff7f0e","#9467bd","#8c564b","#e377c2","#17becf","#7f7f7f","#bcbd22"];
const SVG = "http://www.w3.org/2000/svg";
function el(tag, attrs, text) { const e = document.createElementNS(SVG, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]); if (text !== undefined) e.textContent = text; return e; }
function cell(row, text, cls) { const td = row.insertCell(); td.textContent = text ?? ""; if (cls) td.className = cls; }
function fill(select, values) { const keep = select.value; select.length = 1;
  for (const v of values) select.add(new Option(v, v)); select.value = values.includes(keep) ? keep : ""; }
function chart(trend) {
  const svg = document.getElementById("trend"), legend = document.getElementById("legend");
  svg.replaceChildren(); legend.replaceChildren();
  const W = 900, H = 260, L = 40, R = 10, T = 10, B = 30, topics = Object.keys(trend);
  const n = topics.length ? trend[topics[0]].length : 0;
  for (const y of [0, 0.25, 0.5, 0.75, 1]) { const py = T + (1 - y) * (H - T - B);
    svg.append(el("line", {x1: L, x2: W - R, y1: py, y2: py, stroke: "#ddd"}));
    svg.append(el("text", {x: 4, y: py + 4, "font-size": 11}, Math.round(y * 100) + "%")); }
  if (n) { svg.append(el("text", {x: L, y: H - 8, "font-size": 11}, trend[topics[0]][0].start.slice(0, 16)));
    svg.append(el("text", {x: W - R - 110, y: H - 8, "font-size": 11}, trend[topics[0]][n - 1].start.slice(0, 16))); }
  const x = i => L + (n > 1 ? i / (n - 1) : 0.5) * (W - L - R), y = v => T + (1 - v) * (H - T - B);
  topics.forEach((topic, k) => { const color = COLORS[k % COLORS.length]; let d = "";
    trend[topic].forEach((p, i) => { if (p.negative_share === null) return;
      d += (d ? "L" : "M") + x(i).toFixed(1) + "," + y(p.negative_share).toFixed(1);
      const dot = el("circle", {cx: x(i), cy: y(p.negative_share), r: 2.5, fill: color});
      dot.append(el("title", {}, `${topic} ${p.start}: ${Math.round(p.negative_share * 100)}% of ${p.volume}`));
      svg.append(dot); });
    svg.append(el("path", {d: d, fill: "none", stroke: color, "stroke-width": 2, class: "series",
                           "data-topic": topic}));
    const s = document.createElement("span"); s.innerHTML = `<i style="background:${color}"></i>`;
    s.append(topic); legend.append(s); });
}
async function refresh() {
  const topic = document.getElementById("topic-filter").value, source = document.getElementById("source-filter").value;
  const q = new URLSearchParams({topic, source});
  try {
    const r = await fetch("api/summary?" + q, {headers: {"X-API-Key": KEY}});
    const data = await r.json();
    if (!r.ok) throw new Error(data.error ? data.error.message : r.statusText);
    document.getElementById("error").textContent = "";
    fill(document.getElementById("topic-filter"), data.topics);
    fill(document.getElementById("source-filter"), data.sources);
    chart(data.trend);
    const alerts = document.querySelector("#alerts tbody"); alerts.replaceChildren();
    for (const a of data.alerts) { const row = alerts.insertRow(); row.dataset.rule = a.rule; row.dataset.key = a.key;
      cell(row, a.opened_at); cell(row, a.state, a.state); cell(row, a.rule); cell(row, a.scope + " " + a.key);
      cell(row, a.message); }
    const items = document.querySelector("#items tbody"); items.replaceChildren();
    for (const it of data.items) { const row = items.insertRow(); row.dataset.id = it.id;
      cell(row, it.time); cell(row, it.topic); cell(row, it.source);
      cell(row, it.sentiment + (it.negative_score === null ? "" : ` (neg ${it.negative_score.toFixed(2)})`),
           it.sentiment === "negative" ? "neg" : it.sentiment === "positive" ? "pos" : "");
      cell(row, it.text); }
    document.getElementById("status").textContent =
      `${data.counts.items} items, ${data.counts.alerts} alerts, stream time ${data.now || "-"}`;
  } catch (e) { document.getElementById("error").textContent = "error: " + e.message; }
}
document.getElementById("topic-filter").onchange = refresh;
document.getElementById("source-filter").onchange = refresh;
refresh(); setInterval(refresh, 5000);
</script></body></html>
"""
