/**
 * The dashboard: one self-contained page (no CDN, no web fonts, no images),
 * kept as a string so that it ships inside `dist/` with the code. It opens
 * `/events` (EventSource), draws the history it gets first, then one frame a
 * second.
 *
 * The script below is plain ES2020 built with string concatenation: no template
 * literals and no backslashes, so this file's own template literal stays simple.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sluice · live</title>
<style>
:root {
  --bg: #0a0e16; --panel: #111827; --panel2: #0e1420; --line: #1e293b; --line2: #273449;
  --text: #e6ebf3; --muted: #8a96aa; --dim: #5b6678;
  --accent: #2dd4bf; --ok: #22c55e; --warn: #f59e0b; --bad: #ef4444; --info: #38bdf8;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", "Liberation Mono", monospace;
  --sans: ui-sans-serif, system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "DejaVu Sans", Arial, sans-serif;
}
* { box-sizing: border-box; }
html, body { margin: 0; background: var(--bg); color: var(--text); font: 14px/1.45 var(--sans); -webkit-font-smoothing: antialiased; }
body { min-height: 100vh; background: radial-gradient(1200px 500px at 10% -10%, rgba(45,212,191,0.07), transparent 60%), var(--bg); }
header { position: sticky; top: 0; z-index: 5; display: flex; align-items: center; gap: 18px; padding: 14px 28px;
  background: rgba(10,14,22,0.86); backdrop-filter: blur(8px); border-bottom: 1px solid var(--line); }
.brand { display: flex; align-items: center; gap: 10px; font-weight: 700; font-size: 18px; letter-spacing: 0.2px; }
.brand small { font-weight: 500; color: var(--muted); font-size: 13px; margin-left: 2px; }
.pills { display: flex; gap: 8px; margin-left: auto; align-items: center; flex-wrap: wrap; }
.pill { display: inline-flex; align-items: center; gap: 7px; padding: 4px 10px; border-radius: 999px; font-size: 12px;
  color: var(--muted); background: var(--panel); border: 1px solid var(--line); white-space: nowrap; }
.dot { width: 8px; height: 8px; border-radius: 50%; background: var(--dim); }
.dot.ok { background: var(--ok); box-shadow: 0 0 0 3px rgba(34,197,94,0.18); }
.dot.bad { background: var(--bad); box-shadow: 0 0 0 3px rgba(239,68,68,0.2); }
.dot.live { animation: pulse 1.6s ease-in-out infinite; }
@keyframes pulse { 50% { opacity: 0.35; } }
main { padding: 22px 28px 40px; max-width: 1680px; margin: 0 auto; }
.kpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px; margin-bottom: 26px; }
.kpi { background: linear-gradient(180deg, var(--panel), var(--panel2)); border: 1px solid var(--line); border-radius: 12px; padding: 12px 14px 10px; position: relative; overflow: hidden; min-height: 88px; }
.kpi.with-spark { padding-bottom: 36px; }
.kpi .label { color: var(--muted); font-size: 11.5px; text-transform: uppercase; letter-spacing: 0.08em; }
.kpi .value { font: 600 26px/1.2 var(--sans); margin-top: 4px; font-variant-numeric: tabular-nums; }
.kpi .value .unit { font-size: 13px; color: var(--muted); font-weight: 500; margin-left: 4px; }
.kpi svg { position: absolute; right: 0; bottom: 0; left: 0; width: 100%; height: 30px; opacity: 0.9; }
h2 { font-size: 13px; font-weight: 600; color: var(--muted); text-transform: uppercase; letter-spacing: 0.1em; margin: 0 0 12px; display: flex; align-items: baseline; gap: 10px; }
h2 .count { color: var(--dim); font-weight: 500; letter-spacing: 0.04em; }
.models { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 14px; margin-bottom: 30px; }
.card { background: linear-gradient(180deg, var(--panel), var(--panel2)); border: 1px solid var(--line); border-radius: 14px; padding: 14px 16px 12px; }
.card.open { border-color: rgba(239,68,68,0.55); box-shadow: 0 0 0 1px rgba(239,68,68,0.18), 0 8px 30px -12px rgba(239,68,68,0.35); }
.card.halfOpen { border-color: rgba(245,158,11,0.5); }
.card-head { display: flex; align-items: center; gap: 10px; margin-bottom: 10px; }
.model { font: 600 15px/1.3 var(--mono); overflow: hidden; text-overflow: ellipsis; white-space: nowrap; flex: 1; }
.badge { font: 700 11px/1 var(--sans); letter-spacing: 0.08em; text-transform: uppercase; padding: 5px 8px; border-radius: 6px; white-space: nowrap; }
.badge.closed { color: #86efac; background: rgba(34,197,94,0.12); border: 1px solid rgba(34,197,94,0.35); }
.badge.halfOpen { color: #fcd34d; background: rgba(245,158,11,0.12); border: 1px solid rgba(245,158,11,0.4); }
.badge.open { color: #fecaca; background: rgba(239,68,68,0.2); border: 1px solid rgba(239,68,68,0.6); }
.badge.none { color: var(--muted); background: transparent; border: 1px solid var(--line2); }
.badge.shed { color: #fed7aa; background: rgba(251,146,60,0.15); border: 1px solid rgba(251,146,60,0.45); }
.sub { color: var(--muted); font-size: 12px; margin: -4px 0 10px; min-height: 17px; }
.sub b { color: var(--text); font-weight: 600; }
.stats { display: grid; grid-template-columns: repeat(4, 1fr); gap: 8px; margin-bottom: 12px; }
.stat { background: rgba(255,255,255,0.02); border: 1px solid var(--line); border-radius: 9px; padding: 7px 9px; min-width: 0; }
.stat .k { color: var(--muted); font-size: 10.5px; text-transform: uppercase; letter-spacing: 0.07em; white-space: nowrap; }
.stat .v { font: 600 16px/1.3 var(--sans); font-variant-numeric: tabular-nums; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.stat .v.ok { color: #86efac; } .stat .v.bad { color: #fca5a5; } .stat .v.warn { color: #fcd34d; }
.stat .v small { font-size: 11px; color: var(--muted); font-weight: 500; margin-left: 2px; }
.charts { display: grid; grid-template-columns: 1fr 1fr; gap: 10px; }
.chart { min-width: 0; }
.chart.wide { grid-column: 1 / -1; }
.chart .t { display: flex; justify-content: space-between; align-items: baseline; font-size: 11px; color: var(--muted); text-transform: uppercase; letter-spacing: 0.07em; margin-bottom: 3px; }
.chart .t span:last-child { text-transform: none; letter-spacing: 0; font: 600 12px var(--sans); color: var(--text); font-variant-numeric: tabular-nums; }
.chart .t span.over { color: #fdba74; }
.chart svg { display: block; width: 100%; height: 38px; background: rgba(255,255,255,0.015); border-radius: 6px; }
.chart.wide svg { height: 44px; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 12px; margin-top: 7px; font-size: 11.5px; color: var(--muted); min-height: 17px; }
.legend i { display: inline-block; width: 8px; height: 8px; border-radius: 2px; margin-right: 5px; vertical-align: 0; }
.legend b { color: var(--text); font-weight: 600; font-variant-numeric: tabular-nums; }
.panel { background: linear-gradient(180deg, var(--panel), var(--panel2)); border: 1px solid var(--line); border-radius: 14px; overflow: hidden; }
table { width: 100%; border-collapse: collapse; }
th.r { text-align: right; }
th { text-align: left; font-size: 11px; text-transform: uppercase; letter-spacing: 0.08em; color: var(--muted); font-weight: 600; padding: 10px 16px; border-bottom: 1px solid var(--line); background: rgba(255,255,255,0.015); }
td { padding: 10px 16px; border-bottom: 1px solid var(--line); vertical-align: middle; font-variant-numeric: tabular-nums; }
tr:last-child td { border-bottom: 0; }
td.scope { font: 500 13px var(--mono); max-width: 320px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.kind { display: inline-block; font: 600 10.5px/1 var(--sans); text-transform: uppercase; letter-spacing: 0.06em; padding: 4px 6px; border-radius: 5px; margin-right: 8px; vertical-align: 1px; }
.bar { position: relative; height: 10px; border-radius: 999px; background: rgba(255,255,255,0.05); overflow: hidden; min-width: 160px; }
.bar .u { position: absolute; left: 0; top: 0; bottom: 0; border-radius: 999px; }
.bar .r { position: absolute; top: 0; bottom: 0; background: repeating-linear-gradient(45deg, rgba(255,255,255,0.28) 0 4px, rgba(255,255,255,0.1) 4px 8px); }
td.num { text-align: right; white-space: nowrap; }
td.share { font-weight: 700; text-align: right; width: 70px; }
.muted { color: var(--muted); }
.empty { color: var(--muted); padding: 28px; text-align: center; border: 1px dashed var(--line2); border-radius: 14px; }
footer { color: var(--dim); font-size: 12px; margin-top: 26px; display: flex; gap: 16px; flex-wrap: wrap; }
footer a { color: var(--muted); text-decoration: none; border-bottom: 1px dotted var(--dim); }
@media (max-width: 720px) { header, main { padding-left: 14px; padding-right: 14px; } .stats { grid-template-columns: repeat(2, 1fr); } }
</style>
</head>
<body>
<header>
  <div class="brand">
    <svg width="26" height="26" viewBox="0 0 26 26" aria-hidden="true"><rect x="1" y="1" width="24" height="24" rx="7" fill="#0f766e"/><path d="M6 9h14M6 13h9M6 17h5" stroke="#ccfbf1" stroke-width="2.2" stroke-linecap="round"/><circle cx="19.5" cy="17" r="2.4" fill="#5eead4"/></svg>
    sluice <small>admission control</small>
  </div>
  <div class="pills">
    <span class="pill" id="pill-live"><span class="dot" id="dot-live"></span><span id="live-text">connecting</span></span>
    <span class="pill"><span class="dot" id="dot-nats"></span>NATS</span>
    <span class="pill"><span class="dot" id="dot-serving"></span>serving</span>
    <span class="pill" id="clock">–</span>
  </div>
</header>
<main>
  <section class="kpis" id="kpis"></section>
  <h2>Models <span class="count" id="models-count"></span></h2>
  <section class="models" id="models"><div class="empty">Waiting for data…</div></section>
  <h2>Budgets <span class="count">top scopes by share used</span></h2>
  <section class="panel" id="budgets"><div class="empty" style="border:0">Waiting for data…</div></section>
  <footer><span>sluice dashboard · updates every second from <a href="events">/events</a></span><a href="metrics">/metrics</a><a href="healthz">/healthz</a><a href="readyz">/readyz</a><a href="api/snapshot">/api/snapshot</a></footer>
</main>
<script>
(function () {
"use strict";
var HISTORY = 180;
var SMOOTH = 5;
var REASONS = {
  rate_limited: "#f97316", concurrency: "#a78bfa", budget_exhausted: "#f472b6", circuit_open: "#ef4444",
  overloaded: "#fde047", backoff: "#38bdf8", too_large: "#94a3b8"
};
var KIND_COLORS = ["#2dd4bf", "#818cf8", "#f472b6", "#fbbf24", "#34d399", "#60a5fa", "#f87171", "#c084fc"];
var points = [];
/* Maps keyed by model names (any string a caller sends: "constructor", "__proto__") have no prototype. */
function dict() { return Object.create(null); }
var cards = dict();
var last = null;

function $(id) { return document.getElementById(id); }
/* A point's model, only if the point has it (never an inherited property of the name). */
function modelOf(point, model) { return Object.prototype.hasOwnProperty.call(point.m, model) ? point.m[model] : undefined; }
function esc(s) {
  return String(s).replace(/[&<>"']/g, function (c) {
    return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
  });
}
function fmt(n, digits) {
  if (n === null || n === undefined || isNaN(n)) return "–";
  var a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(1) + "G";
  if (a >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (n / 1e3).toFixed(1) + "k";
  if (digits !== undefined) return n.toFixed(digits);
  return a >= 100 || n === Math.round(n) ? String(Math.round(n)) : n.toFixed(1);
}
function ms(n) {
  if (n === null || n === undefined) return "–";
  if (n >= 10000) return (n / 1000).toFixed(1) + " s";
  if (n >= 1000) return (n / 1000).toFixed(2) + " s";
  return (n >= 100 ? Math.round(n) : n.toFixed(1)) + " ms";
}
function duration(msLeft) {
  if (msLeft === null || msLeft === undefined) return "never";
  var s = Math.max(0, Math.round(msLeft / 1000));
  if (s < 60) return s + " s";
  var m = Math.floor(s / 60);
  if (m < 60) return m + " m " + (s % 60) + " s";
  var h = Math.floor(m / 60);
  if (h < 48) return h + " h " + (m % 60) + " m";
  return Math.floor(h / 24) + " d " + (h % 24) + " h";
}
function perSec(count, intervalMs) { return intervalMs > 0 ? (count * 1000) / intervalMs : 0; }
function sum(obj) { var t = 0; for (var k in obj) t += obj[k]; return t; }
function kindColor(kind) {
  var h = 0;
  for (var i = 0; i < kind.length; i++) h = (h * 31 + kind.charCodeAt(i)) >>> 0;
  return KIND_COLORS[h % KIND_COLORS.length];
}

/* A line sparkline with an area under it, and a dashed threshold line if given. */
function spark(values, color, threshold) {
  var W = 300, H = 38, n = values.length;
  var max = threshold || 0;
  for (var i = 0; i < n; i++) if (values[i] !== null && values[i] > max) max = values[i];
  if (max <= 0) max = 1;
  max *= 1.12;
  var step = W / Math.max(HISTORY - 1, 1), x0 = W - (n - 1) * step;
  var line = "", area = "", started = false;
  for (var j = 0; j < n; j++) {
    var v = values[j];
    if (v === null) continue;
    var x = (x0 + j * step).toFixed(1), y = (H - 2 - (v / max) * (H - 4)).toFixed(1);
    line += (started ? "L" : "M") + x + " " + y;
    area += (started ? "L" : "M" + x + " " + H + "L") + x + " " + y;
    started = true;
  }
  var out = '<svg viewBox="0 0 ' + W + " " + H + '" preserveAspectRatio="none">';
  if (started) {
    area += "L" + W + " " + H + "Z";
    out += '<path d="' + area + '" fill="' + color + '" fill-opacity="0.14"/>';
    out += '<path d="' + line + '" fill="none" stroke="' + color + '" stroke-width="1.6" vector-effect="non-scaling-stroke" stroke-linejoin="round"/>';
  }
  if (threshold) {
    var ty = (H - 2 - (threshold / max) * (H - 4)).toFixed(1);
    out += '<line x1="0" x2="' + W + '" y1="' + ty + '" y2="' + ty + '" stroke="#fb923c" stroke-opacity="0.7" stroke-dasharray="4 4" vector-effect="non-scaling-stroke"/>';
  }
  return out + "</svg>";
}

/* Stacked bars per interval: admissions in green from the bottom, rejections by reason above. */
function bars(pts) {
  var W = 300, H = 44, n = pts.length, max = 1;
  for (var i = 0; i < n; i++) { var t = pts[i].a + sum(pts[i].r); if (t > max) max = t; }
  var bw = W / HISTORY, x0 = W - n * bw, out = '<svg viewBox="0 0 ' + W + " " + H + '" preserveAspectRatio="none">';
  for (var j = 0; j < n; j++) {
    var p = pts[j], x = (x0 + j * bw).toFixed(2), y = H, w = Math.max(bw - 0.4, 0.6).toFixed(2);
    if (p.a > 0) {
      var h = (p.a / max) * (H - 2); y -= h;
      out += '<rect x="' + x + '" y="' + y.toFixed(2) + '" width="' + w + '" height="' + h.toFixed(2) + '" fill="#22c55e" fill-opacity="0.85"/>';
    }
    for (var reason in p.r) {
      var hr = (p.r[reason] / max) * (H - 2); y -= hr;
      out += '<rect x="' + x + '" y="' + y.toFixed(2) + '" width="' + w + '" height="' + hr.toFixed(2) + '" fill="' + (REASONS[reason] || "#94a3b8") + '"/>';
    }
  }
  return out + "</svg>";
}

function seriesOf(model, field) {
  var out = [];
  for (var i = 0; i < points.length; i++) {
    var m = modelOf(points[i], model);
    out.push(m ? m[field] : null);
  }
  return out;
}
function pointsOf(model) {
  var out = [];
  for (var i = 0; i < points.length; i++) {
    var m = modelOf(points[i], model), k = 1000 / Math.max(points[i].intervalMs, 1);
    if (!m) { out.push({ a: 0, r: {} }); continue; }
    var r = {};
    for (var reason in m.r) r[reason] = m.r[reason] * k;
    out.push({ a: m.a * k, r: r });
  }
  return out;
}
/* Rates averaged over the last n intervals: steadier figures than one second's. */
function smooth(pts, n) {
  var from = Math.max(0, pts.length - n), k = pts.length - from, a = 0, r = {};
  for (var i = from; i < pts.length; i++) {
    a += pts[i].a;
    for (var reason in pts[i].r) r[reason] = (r[reason] || 0) + pts[i].r[reason];
  }
  if (k === 0) return { a: 0, r: {} };
  for (var x in r) r[x] /= k;
  return { a: a / k, r: r };
}
function toPoint(frame) {
  var m = dict();
  for (var i = 0; i < frame.models.length; i++) {
    var f = frame.models[i];
    m[f.model] = { t: f.ttftMs, i: f.itlMs, a: f.admits, r: f.rejects, p: f.pacingMs };
  }
  return { seq: frame.seq, ts: frame.ts, intervalMs: frame.intervalMs, m: m };
}

var BREAKER_TEXT = { closed: "closed", halfOpen: "half-open", open: "open" };

function renderKpis(frame) {
  var adm = [], rej = [];
  for (var i = 0; i < points.length; i++) {
    var p = points[i], a = 0, r = 0;
    for (var k in p.m) { a += p.m[k].a; r += sum(p.m[k].r); }
    adm.push(perSec(a, p.intervalMs)); rej.push(perSec(r, p.intervalMs));
  }
  var total = frame.admits + frame.rejects;
  var actors = 0; for (var kind in frame.actors) actors += frame.actors[kind];
  var open = 0; for (var j = 0; j < frame.models.length; j++) if (frame.models[j].breaker !== "closed") open++;
  var tiles = [
    ["Admitted", fmt(perSec(frame.admits, frame.intervalMs)), "/s", spark(adm, "#22c55e"), "kpi-admits"],
    ["Rejected", fmt(perSec(frame.rejects, frame.intervalMs)), "/s", spark(rej, "#ef4444"), "kpi-rejects"],
    ["Reject share", total ? Math.round((frame.rejects / total) * 100) : 0, "%", "", "kpi-share"],
    ["Breakers not closed", open, "of " + frame.models.filter(function (m) { return m.hasBreaker; }).length, "", "kpi-breakers"],
    ["Waiting", fmt(frame.waiting), "in queue", "", "kpi-waiting"],
    ["Live leases", fmt(frame.leases), "", "", "kpi-leases"],
    ["Scope actors", fmt(actors), "", "", "kpi-actors"]
  ];
  var html = "";
  for (var t = 0; t < tiles.length; t++) {
    html += '<div class="kpi' + (tiles[t][3] ? " with-spark" : "") + '" data-testid="' + tiles[t][4] + '"><div class="label">' + tiles[t][0] + '</div><div class="value">' + tiles[t][1] +
      '<span class="unit">' + tiles[t][2] + "</span></div>" + tiles[t][3] + "</div>";
  }
  $("kpis").innerHTML = html;
}

function renderCard(el, m, frame) {
  var state = m.hasBreaker ? m.breaker : "none";
  el.className = "card " + (m.hasBreaker ? m.breaker : "");
  var sub = "";
  if (m.breaker === "open" && m.openUntil) sub = "half-open in <b>" + duration(m.openUntil - frame.ts) + "</b>";
  else if (m.breaker === "halfOpen") sub = "probing: letting test calls through";
  else if (m.overloaded) sub = "shedding load: a latency average is over its limit";
  else if (m.pacingMs) sub = "paced: one call every <b>" + ms(m.pacingMs) + "</b>";
  else sub = m.hasBreaker ? "healthy" : "no breaker in policy";
  if (m.fallback) sub += ' <span class="muted">· fallback</span> <b>' + esc(m.fallback) + "</b>";
  var rejTotal = m.rejectTotal, admTotal = m.admitTotal;
  var pacing = m.pacingMs === null ? '<span class="muted">off</span>' : m.pacingMs > 0 ? ms(m.pacingMs) : "0 ms";
  var conc = m.concurrency === undefined ? fmt(m.held) : fmt(m.held) + "<small>/ " + fmt(m.concurrency) + "</small>";
  var html = '<div class="card-head"><div class="model" title="' + esc(m.model) + '">' + esc(m.model) + "</div>";
  if (m.overloaded) html += '<span class="badge shed">overloaded</span>';
  html += '<span class="badge ' + state + '" data-testid="breaker">' + (m.hasBreaker ? BREAKER_TEXT[m.breaker] : "no breaker") + "</span></div>";
  html += '<div class="sub">' + sub + "</div>";
  html += '<div class="stats">' +
    '<div class="stat"><div class="k">admitted</div><div class="v ok" data-testid="admit-total">' + fmt(admTotal) + "</div></div>" +
    '<div class="stat"><div class="k">rejected</div><div class="v' + (rejTotal ? " bad" : "") + '" data-testid="reject-total">' + fmt(rejTotal) + "</div></div>" +
    '<div class="stat"><div class="k">pacing</div><div class="v' + (m.pacingMs ? " warn" : "") + '" data-testid="pacing">' + pacing + "</div></div>" +
    '<div class="stat"><div class="k">in flight</div><div class="v">' + conc + "</div></div></div>";
  html += '<div class="charts">';
  html += chart("TTFT avg", m.ttftMs, m.ttftLimitMs, seriesOf(m.model, "t"), "#2dd4bf");
  html += chart("ITL avg", m.itlMs, m.itlLimitMs, seriesOf(m.model, "i"), "#818cf8");
  var pts = pointsOf(m.model), recent = smooth(pts, SMOOTH), rj = sum(recent.r);
  html += '<div class="chart wide"><div class="t"><span>decisions / s · by reason</span><span>' + fmt(recent.a) + " admit · " + fmt(rj) + " reject</span></div>" + bars(pts);
  html += '<div class="legend"><span><i style="background:#22c55e"></i>admit <b>' + fmt(recent.a) + "</b></span>";
  var reasons = Object.keys(recent.r).sort();
  for (var i = 0; i < reasons.length; i++) {
    html += '<span data-reason="' + esc(reasons[i]) + '"><i style="background:' + (REASONS[reasons[i]] || "#94a3b8") + '"></i>' + esc(reasons[i].replace("_", " ")) + " <b>" + fmt(recent.r[reasons[i]]) + "</b></span>";
  }
  if (!reasons.length && !recent.a) html += '<span class="muted">idle</span>';
  html += "</div></div></div>";
  el.innerHTML = html;
}

function chart(title, value, limit, series, color) {
  if (value === null) {
    return '<div class="chart"><div class="t"><span>' + title + '</span><span class="muted">no latency policy</span></div>' + spark([], color) + "</div>";
  }
  var over = limit && value > limit;
  return '<div class="chart"><div class="t"><span>' + title + (limit ? ' <span style="text-transform:none;letter-spacing:0">≤ ' + ms(limit) + "</span>" : "") +
    '</span><span class="' + (over ? "over" : "") + '">' + ms(value) + "</span></div>" + spark(series, over ? "#fb923c" : color, limit) + "</div>";
}

function renderModels(frame) {
  var box = $("models"), seen = dict();
  $("models-count").textContent = frame.models.length + (frame.moreModels ? " shown · " + frame.moreModels + " more" : "");
  if (frame.models.length === 0) {
    box.innerHTML = '<div class="empty">No model scopes yet. A model appears here after its first admission.</div>';
    cards = dict();
    return;
  }
  if (box.querySelector(".empty")) box.innerHTML = "";
  for (var i = 0; i < frame.models.length; i++) {
    var m = frame.models[i], el = cards[m.model];
    if (!el) { el = document.createElement("article"); el.setAttribute("data-model", m.model); cards[m.model] = el; }
    box.appendChild(el); /* keeps the frame's (name) order */
    renderCard(el, m, frame);
    seen[m.model] = true;
  }
  for (var name in cards) if (!seen[name]) { cards[name].remove(); delete cards[name]; }
}

function amount(n, unit) {
  /* Cost: cents shown, so that 399.84 of 400 does not read as all of it. */
  if (unit === "cost") return n >= 10000 ? fmt(n) : n === Math.round(n) ? String(n) : n.toFixed(2);
  return fmt(n);
}

function renderBudgets(frame) {
  var rows = frame.top;
  if (rows.length === 0) {
    $("budgets").innerHTML = '<div class="empty" style="border:0">No budgets in use. Scopes with a budget in the policy appear here once used.</div>';
    return;
  }
  var html = '<table><thead><tr><th>scope</th><th style="width:38%">used · reserved</th><th class="r">amount</th><th class="r">share</th><th class="r">resets in</th></tr></thead><tbody>';
  for (var i = 0; i < rows.length; i++) {
    var r = rows[i], colon = r.scope.indexOf(":"), value = r.scope.slice(colon + 1), c = kindColor(r.kind);
    var usedPct = r.limit > 0 ? Math.min(100, (r.used / r.limit) * 100) : 100;
    var resPct = r.limit > 0 ? Math.min(100 - usedPct, (r.reserved / r.limit) * 100) : 0;
    var share = r.share, col = share >= 1 ? "#ef4444" : share >= 0.8 ? "#f59e0b" : "#2dd4bf";
    html += '<tr data-scope="' + esc(r.scope) + '"><td class="scope"><span class="kind" style="color:' + c + ";background:" + c + '22">' + esc(r.kind) + "</span>" + esc(value) + "</td>" +
      '<td><div class="bar"><div class="u" style="width:' + usedPct.toFixed(1) + "%;background:" + col + '"></div><div class="r" style="left:' + usedPct.toFixed(1) + "%;width:" + resPct.toFixed(1) + '%"></div></div></td>' +
      '<td class="num">' + amount(r.used, r.unit) + (r.reserved >= r.limit / 1000 && r.reserved > 0 ? ' <span class="muted">+' + amount(r.reserved, r.unit) + " held</span>" : "") +
      ' <span class="muted">/ ' + amount(r.limit, r.unit) + " " + esc(r.unit === "cost" ? "" : r.unit) + "</span></td>" +
      '<td class="share" style="color:' + col + '">' + (share >= 1 ? 100 : Math.min(99, Math.floor(share * 100))) + "%</td>" +
      '<td class="num muted">' + duration(r.resetAt === null ? null : r.resetAt - frame.ts) + "</td></tr>";
  }
  $("budgets").innerHTML = html + "</tbody></table>";
}

function setDot(id, ok) { $(id).className = "dot " + (ok ? "ok" : "bad"); }

function render(frame) {
  last = frame;
  setDot("dot-nats", frame.nats);
  setDot("dot-serving", frame.serving);
  $("clock").textContent = new Date(frame.ts).toISOString().slice(11, 19) + " UTC";
  renderKpis(frame);
  renderModels(frame);
  renderBudgets(frame);
  document.body.setAttribute("data-frames", String(Number(document.body.getAttribute("data-frames") || 0) + 1));
}

function connect() {
  var es = new EventSource("events");
  es.addEventListener("history", function (e) {
    points = JSON.parse(e.data).slice(-HISTORY);
  });
  es.onmessage = function (e) {
    var frame = JSON.parse(e.data);
    var point = toPoint(frame);
    // The first frame after the history is the history's last point: a frame is known by its seq
    // (two frames may share a cached scan's ts, and the later one's counts must not be lost).
    if (!points.length || points[points.length - 1].seq !== point.seq) points.push(point);
    if (points.length > HISTORY) points.splice(0, points.length - HISTORY);
    render(frame);
  };
  es.onopen = function () { $("dot-live").className = "dot ok live"; $("live-text").textContent = "live"; };
  es.onerror = function () { $("dot-live").className = "dot bad"; $("live-text").textContent = "reconnecting"; };
}
connect();
})();
</script>
</body>
</html>
`;
