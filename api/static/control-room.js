// The control-room board. Plain JavaScript, no build step.
// The API key stays in this browser (localStorage) and goes in the
// Authorization header; the SSE stream is read with fetch so the key
// never appears in a URL. Every text from the server goes in with
// textContent, never as HTML.
"use strict";

const KEY_STORE = "cityApiKey";
const SEVERITY_ORDER = { critical: 0, warning: 1, info: 2 };
const FLEET_REFRESH_MS = 15000;
const RECONNECT_MS = 2000;
const alerts = new Map();
let apiKey = localStorage.getItem(KEY_STORE) || "";
let streamAbort = null;

// Schematic districts (not to scale): where each district sits on the wall map.
const DISTRICTS = {
  "bukit-bestari": { box: [260, 60, 440, 210], label: "Bukit Bestari" },
  "tanjungpinang-kota": { box: [30, 300, 255, 230], label: "Tanjungpinang Kota" },
  "tanjungpinang-barat": { box: [300, 290, 235, 290], label: "Tanjungpinang Barat" },
  "tanjungpinang-timur": { box: [550, 290, 410, 290], label: "Tanjungpinang Timur" },
};
const OTHER_BOX = [60, 560, 220, 60];
const BOUNDS = { latMin: 0.85, latMax: 1.0, lonMin: 104.4, lonMax: 104.6 };

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
};
const svg = (tag, attrs) => {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
};

function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 90) return s + " s ago";
  if (s < 5400) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + apiKey }, options.headers || {});
  if (options.body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) {
    showLogin("That key is not valid (any more). Sign in again.");
    throw new Error("unauthorized");
  }
  const body = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(body && body.message ? body.message : "HTTP " + response.status);
  return body;
}

// ------------------------------------------------------------ sign-in

function showLogin(message) {
  if (streamAbort) streamAbort.abort();
  $("board").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("key").focus();
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  apiKey = $("key").value.trim();
  localStorage.setItem(KEY_STORE, apiKey);
  start();
});

// ------------------------------------------------------------ alerts

function renderAlerts() {
  const list = $("alerts");
  const open = [...alerts.values()].filter((a) => !a.resolved);
  open.sort((a, b) => SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity]
    || (a.state === b.state ? 0 : a.state === "active" ? -1 : 1) || b.changed_ms - a.changed_ms);
  // keep what someone is typing while other alerts arrive
  const typed = {};
  let focused = null;
  for (const input of list.querySelectorAll("input.note")) {
    const id = input.closest("li").dataset.alertId;
    typed[id] = input.value;
    if (document.activeElement === input) focused = id;
  }
  list.replaceChildren(...open.map(alertCard));
  for (const input of list.querySelectorAll("input.note")) {
    const id = input.closest("li").dataset.alertId;
    if (typed[id]) input.value = typed[id];
    if (id === focused) input.focus();
  }
  $("no-alerts").hidden = open.length > 0;
  for (const sev of ["critical", "warning", "info"]) {
    $("n-" + sev).textContent = open.filter((a) => a.severity === sev && a.state === "active").length;
  }
  renderDevices();
}

function alertCard(a) {
  const card = el("li", `alert ${a.severity} ${a.state}${a.acknowledged ? " acked" : ""}`);
  card.dataset.alertId = a.id;
  card.dataset.testid = "alert";
  const title = el("div", "title");
  title.append(el("span", "sev", a.severity), el("span", "rule", a.rule.replaceAll("_", " ")),
    el("span", "where", `${a.device} · ${a.kind} · ${a.district}`));
  const status = [a.state === "active" ? "ACTIVE" : "cleared", "since " + ago(a.started_ms)];
  status.push(a.acknowledged ? "acknowledged by " + a.acknowledged_by : "NOT acknowledged");
  if (a.assignee) status.push("assigned to " + a.assignee);
  if (a.escalation) status.push("escalated ×" + a.escalation);
  const numbers = a.observed === null ? "" : ` (${a.metric}: ${a.observed}` +
    (a.expected === null ? ")" : `, expected ${a.expected})`);
  const note = el("input", "note");
  note.placeholder = "note (required to resolve)";
  note.setAttribute("aria-label", "note for " + a.id);
  const ack = el("button", "ack", "Acknowledge");
  ack.addEventListener("click", () => act(a.id, "ack", { note: note.value }, card));
  const resolve = el("button", "resolve", "Resolve");
  resolve.addEventListener("click", () => {
    if (!note.value.trim()) { note.focus(); note.placeholder = "write what was done, then Resolve"; return; }
    act(a.id, "resolve", { note: note.value }, card);
  });
  const actions = el("div", "actions");
  actions.append(note, ack, resolve);
  card.append(title, el("div", "explanation", (a.explanation || a.rule) + numbers),
    el("div", "status", status.join(" · ")), actions);
  return card;
}

async function act(id, verb, body, card) {
  try {
    const alert = await api(`/alerts/${encodeURIComponent(id)}/${verb}`, { method: "POST", body: JSON.stringify(body) });
    alerts.set(alert.id, alert);
    renderAlerts();
  } catch (error) {
    const message = el("div", "status", "Not done: " + error.message);
    card.append(message);
  }
}

let streamedDuringLoad = null; // ids the stream changed while a list load was in flight

async function loadAlerts() {
  streamedDuringLoad = new Set();
  const page = await api("/alerts?resolved=false&limit=1000");
  // The list may have left the server before a change the stream already showed: keep the newer one.
  const merged = new Map(page.data.map((a) => [a.id, a]));
  for (const id of streamedDuringLoad) {
    const live = alerts.get(id);
    const listed = merged.get(id);
    if (live && (!listed || live.changed_ms >= listed.changed_ms)) merged.set(id, live);
  }
  streamedDuringLoad = null;
  alerts.clear();
  for (const [id, a] of merged) alerts.set(id, a);
  renderAlerts();
}

// ------------------------------------------------------------ live stream

function handleFrame(frame) {
  let event = "message";
  const data = [];
  for (const line of frame.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trim());
  }
  if (!data.length) return;
  const body = JSON.parse(data.join("\n"));
  if (event === "hello") {
    $("who").textContent = `${body.user} (${body.role})`;
    loadAlerts().catch(() => {}); // the stream is open: nothing between the load and now is lost
  } else if (event === "alert") {
    alerts.set(body.alert.id, body.alert);
    if (streamedDuringLoad) streamedDuringLoad.add(body.alert.id);
    renderAlerts();
  }
}

async function stream() {
  streamAbort = new AbortController();
  const link = $("link");
  try {
    const response = await fetch("/alerts/stream", {
      headers: { Authorization: "Bearer " + apiKey }, signal: streamAbort.signal });
    if (response.status === 401) { showLogin("That key is not valid (any more). Sign in again."); return; }
    if (!response.ok) throw new Error("HTTP " + response.status);
    link.textContent = "live"; link.className = "link up";
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        handleFrame(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
      }
    }
  } catch (error) {
    if (streamAbort.signal.aborted) return;
  }
  link.textContent = "reconnecting"; link.className = "link down";
  setTimeout(stream, RECONNECT_MS);
}

// ------------------------------------------------------------ fleet: map and silent list

let fleet = [];

function position(d, index) {
  // A device of a known district sits inside its district's box (the map is a
  // schematic, so true coordinates would scatter dots across the boxes).
  if (!(d.district in DISTRICTS) && d.lat !== null && d.lon !== null) {
    const x = 40 + (d.lon - BOUNDS.lonMin) / (BOUNDS.lonMax - BOUNDS.lonMin) * 920;
    const y = 40 + (BOUNDS.latMax - d.lat) / (BOUNDS.latMax - BOUNDS.latMin) * 560;
    if (x >= 0 && x <= 1000 && y >= 0 && y <= 640) return [x, y];
  }
  // a stable spot inside its district, from the id
  const [bx, by, bw, bh] = (DISTRICTS[d.district] || {}).box || OTHER_BOX;
  let h = 2166136261; // FNV-1a, then a murmur finaliser: similar ids land far apart
  for (const ch of d.id) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  return [bx + 20 + (h & 0xffff) / 0xffff * (bw - 40), by + 45 + (h >>> 16) / 0xffff * (bh - 65)];
}

function drawDistricts() {
  const group = $("districts");
  for (const [slug, district] of Object.entries(DISTRICTS)) {
    const [x, y, w, h] = district.box;
    group.append(svg("rect", { class: "district", x, y, width: w, height: h, rx: 24, "data-district": slug }));
    const label = svg("text", { class: "district-label", x: x + w / 2, y: y + 28 });
    label.textContent = district.label;
    group.append(label);
  }
}

function renderDevices() {
  const worst = {};
  for (const a of alerts.values()) {
    if (a.resolved || a.state !== "active") continue;
    if (!(a.device in worst) || SEVERITY_ORDER[a.severity] < SEVERITY_ORDER[worst[a.device]]) worst[a.device] = a.severity;
  }
  const dots = fleet.filter((d) => d.state !== "retired").map((d, i) => {
    const [cx, cy] = position(d, i);
    const look = worst[d.id] || (d.state === "active" ? "ok" : d.state);
    const dot = svg("circle", { class: "device " + look, cx: cx.toFixed(1), cy: cy.toFixed(1), r: 7,
      "data-device": d.id });
    const title = svg("title", {});
    title.textContent = `${d.id} (${d.kind}, ${d.district}): ${d.state}` + (worst[d.id] ? `, ${worst[d.id]} alert` : "");
    dot.append(title);
    return dot;
  });
  $("devices").replaceChildren(...dots);
}

function renderSilent() {
  const silent = fleet.filter((d) => d.state === "silent");
  $("n-silent").textContent = silent.length;
  $("silent").replaceChildren(...silent.map((d) => el("li", "",
    `${d.id} · ${d.kind} · ${d.district} · last heard ${d.last_seen_ms ? ago(d.last_seen_ms) : "never"}`)));
  $("no-silent").hidden = silent.length > 0;
}

async function loadFleet() {
  try {
    const page = await api("/fleet/devices?limit=1000");
    fleet = page.data;
    renderDevices();
    renderSilent();
  } catch (error) { /* shown as stale; tried again shortly */ }
}

// ------------------------------------------------------------ start

function tick() { $("clock").textContent = new Date().toLocaleTimeString("en-GB", { timeZone: "Asia/Jakarta" }) + " WIB"; }

function start() {
  if (!apiKey) { showLogin(); return; }
  $("login").hidden = true;
  $("board").hidden = false;
  stream();
  loadFleet();
}

drawDistricts();
tick();
setInterval(tick, 1000);
setInterval(() => { if (apiKey) loadFleet(); }, FLEET_REFRESH_MS);
start();
