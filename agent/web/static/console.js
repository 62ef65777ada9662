// edge-agent console: hand-written, no framework, no build step, no network beyond the daemon.
"use strict";
const body = document.body;
const page = body.dataset.page;
const viewer = Math.random().toString(36).slice(2, 12);
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
}

async function getJSON(url) {
  const r = await fetch(url, { credentials: "same-origin", cache: "no-store" });
  if (r.status === 401) { location.href = "/console/login"; throw new Error("login"); }
  if (!r.ok) throw new Error(url + ": " + r.status);
  $("conn").textContent = "";
  return r.json();
}
const fmt = (x, unit) => (x === null || x === undefined) ? "–" : x + (unit || "");
const enc = (key) => key.split("/").map(encodeURIComponent).join("/");

// ------------------------------------------------------------------ station cards
const cards = {};
function card(s) {
  if (cards[s.key]) return cards[s.key];
  const img = el("img", { alt: "live image of " + s.key, class: "live" });
  const banner = el("div", { class: "banner", text: "–" });
  const stats = el("div", { class: "stats" });
  const c = el("article", { class: "card", id: "card-" + s.key.replace("/", "-") },
    el("h3", {}, el("a", { href: "/console/station/" + enc(s.key), text: s.key }),
      el("span", { class: "muted state" })),
    el("div", { class: "img" }, img, banner),
    el("div", { class: "latch", text: "STOP LATCHED" }), stats);
  if (body.dataset.reset === "on") c.append(resetForm(s.key));
  $("stations").append(c);
  cards[s.key] = { c, img, banner, stats };
  liveLoop(s.key, img);
  return cards[s.key];
}

function liveLoop(key, img) {
  const period = 1000 / (parseFloat(body.dataset.fps) || 5);
  let n = 0;
  const next = (wait) => setTimeout(() => {
    img.src = "/console/live/" + enc(key) + ".jpg?viewer=" + viewer + "&n=" + (n++);
  }, wait);
  img.onload = () => next(period);
  img.onerror = () => next(Math.max(period, 500));
  next(0);
}

function stat(value, label, cls) {
  return el("div", { class: cls || "" }, el("b", { text: value }), el("span", { text: label }));
}

function updateCard(s) {
  const k = card(s);
  k.c.classList.toggle("latched", !!s.latched);
  k.c.querySelector(".state").textContent = s.paused ? "paused" : s.state;
  k.banner.textContent = s.banner;
  k.banner.className = "banner " + s.banner;
  const c = s.counts || {};
  k.stats.replaceChildren(
    stat(fmt(s.fps), "fps"), stat(fmt(s.frame_age_ms, " ms"), "frame age"),
    stat(fmt(s.infer_p50_ms, " / ") + fmt(s.infer_p99_ms, " ms"), "inference p50 / p99"),
    stat(fmt(c.OK), "OK", "counts ok"), stat(fmt(c.NG), "NG", "counts ng"),
    stat(fmt(c.UNKNOWN), "UNKNOWN", "counts unk"));
}

function resetForm(key) {
  const tok = el("input", { type: "password", placeholder: "operator credential",
    "aria-label": "operator credential" });
  const btn = el("button", { text: "Reset stop" });
  const out = el("span", { class: "muted" });
  btn.onclick = async () => {
    const form = new URLSearchParams({ station: key, operator_token: tok.value,
      csrf: body.dataset.csrf });
    const r = await fetch("/console/api/reset", { method: "POST", body: form,
      credentials: "same-origin" });
    const j = await r.json();
    out.textContent = j.accepted ? "reset sent" : (j.reason || j.detail || r.status);
    tok.value = "";
  };
  return el("div", { class: "reset on" }, tok, btn, out);
}

// ------------------------------------------------------------------ side tables
function table(id, head, rows) {
  const t = $(id);
  t.replaceChildren(el("tr", {}, ...head.map((h) => el("th", { text: h }))));
  for (const r of rows) t.append(el("tr", {}, ...r.map((v) => v instanceof Node ? el("td", {}, v)
    : el("td", { text: v, class: typeof v === "string" ? "state-" + v : "" }))));
}
function bits(p) {
  if (!p.bits) return "–";
  return el("span", { class: "bits", title: "status word " + p.status_word },
    ...Object.entries(p.bits).map(([k, v]) => el("span", { class: v ? "on" : "", text: k })));
}
function side(d) {
  table("cameras", ["camera", "state", "fps", "dropped"],
    d.cameras.map((c) => [c.name, c.state, fmt(c.fps), String(c.dropped)]));
  table("plcs", ["PLC", "link", "heartbeat", "status"], d.plcs.map((p) => [p.name, p.state,
    p.heartbeat ? String(p.heartbeat.counter) + (p.heartbeat.refusing ? " refused" : "") : "–",
    bits(p)]));
  table("sinks", ["sink", "state", "queued", "sent", "dead"], d.sinks.map((s) =>
    [s.name, s.state, String(s.queued), String(s.sent), String(s.dead)]));
}

async function linePage() {
  try { const d = await getJSON("/console/api/line"); d.stations.forEach(updateCard); side(d); }
  catch (e) { $("conn").textContent = "connection: " + e.message; }
  setTimeout(linePage, 1000);
}

// ------------------------------------------------------------------ station detail
function windows(rules) {
  $("rules").replaceChildren(...rules.map((r) => {
    const marks = [];
    for (let i = 0; i < r.n; i++) {
      const m = r.marks[i];
      marks.push(el("span", { class: m && m.hit ? "hit" : "", title: m ? "score " + m.score : "" }));
    }
    return el("div", { class: "window" + (r.confirmed ? " confirmed" : "") },
      el("span", { class: "cls", text: r.class }), el("span", { class: "marks" }, ...marks),
      el("span", { class: "muted", text: `k=${r.k} of n=${r.n}` + (r.open ? " · incident open" : "") }));
  }));
}

function parseMetrics(text, name, match) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith(name + "_bucket{")) continue;
    const labels = {};
    for (const m of line.matchAll(/(\w+)="([^"]*)"/g)) labels[m[1]] = m[2];
    if (Object.entries(match).every(([k, v]) => labels[k] === v))
      out.push({ labels, le: labels.le, n: parseFloat(line.split("} ")[1]) });
  }
  return out;
}

function histogram(title, buckets) {
  const W = 260, H = 110, pad = 18;
  const counts = buckets.map((b, i) => b.n - (i ? buckets[i - 1].n : 0));
  const max = Math.max(1, ...counts);
  const bw = (W - 8) / Math.max(1, counts.length);
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("width", W); svg.setAttribute("height", H);
  counts.forEach((c, i) => {
    const h = (H - 2 * pad) * c / max;
    const r = document.createElementNS(NS, "rect");
    r.setAttribute("x", 4 + i * bw); r.setAttribute("y", H - pad - h);
    r.setAttribute("width", Math.max(1, bw - 2)); r.setAttribute("height", h);
    r.setAttribute("fill", "#3d8bd9");
    const t = document.createElementNS(NS, "title");
    t.textContent = `≤ ${buckets[i].le} s: ${c}`; r.append(t); svg.append(r);
  });
  const lab = (x, y, s) => { const t = document.createElementNS(NS, "text");
    t.setAttribute("x", x); t.setAttribute("y", y); t.textContent = s; svg.append(t); };
  lab(4, 11, `${title} (n=${buckets.length ? buckets[buckets.length - 1].n : 0})`);
  if (buckets.length) { lab(4, H - 4, (buckets[0].le * 1000) + " ms");
    lab(W - 60, H - 4, buckets[buckets.length - 2] ? "≤" + (buckets[buckets.length - 2].le * 1000) + " ms" : ""); }
  return el("div", { class: "hist" }, svg);
}

async function histograms(key) {
  const [line, station] = key.split("/");
  try {
    const r = await fetch("/metrics", { credentials: "same-origin", cache: "no-store" });
    const text = await r.text();
    const plots = ["frame_age", "pre", "infer", "post"].map((stage) => histogram(stage,
      parseMetrics(text, "edge_agent_stage_seconds", { line, station, stage })));
    plots.push(histogram("capture → verdict",
      parseMetrics(text, "edge_agent_verdict_latency_seconds", { line, station })));
    $("hists").replaceChildren(...plots);
  } catch (e) { $("conn").textContent = "metrics: " + e.message; }
  setTimeout(() => histograms(key), 2000);
}

async function stationPage() {
  const key = body.dataset.key;
  try {
    const d = await getJSON("/console/api/station/" + enc(key));
    updateCard(d.card);
    windows(d.rules);
    table("drift", ["statistic", "value"], Object.entries(d.drift.stats).map(([k, v]) =>
      [k, fmt(v)]));
    if (!d.drift.enabled) table("drift", ["drift"], [["off for this station"]]);
    $("model").textContent = `${d.model.name} ${d.model.version} on ${d.model.provider}`;
    table("lifecycle", ["model lifecycle", "value"], d.lifecycle);
  } catch (e) { $("conn").textContent = "connection: " + e.message; }
  setTimeout(stationPage, 1000);
}

// ------------------------------------------------------------------ defects
async function defectsPage() {
  const f = $("filters");
  const q = new URLSearchParams(new FormData(f));
  q.set("limit", body.dataset.shown);
  try {
    const d = await getJSON("/console/api/defects?" + q);
    for (const [name, values] of Object.entries(d.choices)) {
      const sel = f.elements[name];
      const have = new Set([...sel.options].map((o) => o.value));
      values.filter((v) => !have.has(v)).forEach((v) => sel.append(el("option", { value: v, text: v })));
    }
    $("count").textContent = d.off || (d.items.length + " shown of " + d.total);
    $("grid").replaceChildren(...d.items.map(thumb));
  } catch (e) { $("conn").textContent = "connection: " + e.message; }
}
const when = (t) => t ? t.replace("T", " ").slice(0, 19) + " UTC" : "–";
function thumb(it) {
  const t = el("figure", { class: "thumb", "data-id": it.id },
    el("img", { src: it.thumb, alt: "evidence " + it.id }),
    el("p", {}, el("span", { class: "tag " + it.verdict, text: it.verdict }), " ",
      (it.class || "–") + " · " + it.station),
    el("p", { class: "muted", text: when(it.time) }));
  t.onclick = () => openDetail(it);
  return t;
}
async function openDetail(it) {
  const d = await getJSON("/console/api/defects/" + encodeURIComponent(it.id));
  $("detail-body").replaceChildren(
    el("h3", { text: `${d.verdict} ${d.class || ""} · ${d.station} · ${when(d.time)}` }),
    el("img", { src: d.image, alt: "annotated evidence " + d.id, class: "full" }),
    el("h4", { text: "PLC outcome" }), el("pre", { text: JSON.stringify(d.plc, null, 2) }),
    el("h4", { text: "Sidecar" }), el("pre", { text: JSON.stringify(d.sidecar, null, 2) }));
  $("detail").showModal();
}

if (page === "line") linePage();
if (page === "station") { stationPage(); histograms(body.dataset.key); }
if (page === "defects") {
  $("filters").onchange = defectsPage; $("close").onclick = () => $("detail").close();
  defectsPage(); setInterval(defectsPage, 3000);
}
