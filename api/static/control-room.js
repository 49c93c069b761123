// The control-room board. Plain JavaScript, no build step.
// The API key stays in this browser (localStorage) and goes in the
// Authorization header; the SSE stream is read with fetch so the key
// never appears in a URL. Every text from the server goes in with
// textContent, never as HTML. Every text of our own comes from a
// catalogue (/static/i18n/<lang>.json) through t(); numbers and times are
// formatted for the chosen language in the city's time zone (from the
// city profile, /public/map). The map is Leaflet (vendored, BSD-2) drawing
// the profile's district boundaries and the devices on one canvas: no tiles.
// A fleet larger than AGGREGATE_ABOVE is drawn as one marker per district (its device count, coloured
// by its worst open alert, else silent devices; focusable, opened with a click or Enter), and only the
// devices of the district the operator opens (or zooms into) are read and drawn (/fleet/districts,
// /fleet/devices?district=).
// The key, the language, t() and keyed API calls: staff.js.
"use strict";

const SEVERITY_ORDER = { critical: 0, warning: 1, info: 2 };
const FLEET_REFRESH_MS = 15000;
const RECONNECT_MS = 2000;
const PAGE_LIMIT = 1000; // the API's largest page: lists are read page by page up to their count
const AGGREGATE_ABOVE = 5000; // more devices than this: the map shows districts, a district's devices when opened
const ZOOM_OPENS = 2; // zoomed in this many steps past the whole city, the district at the centre opens
const SILENT_SHOWN = 500; // the silent list shows the longest silent this many, and how many there are in all

const alerts = new Map();
let streamAbort = null;
let fleet = []; // the devices drawn: every device, or the opened district's when the map is aggregated
let districtsFleet = []; // /fleet/districts: the fleet counted by district
let aggregated = false; // more than AGGREGATE_ABOVE devices: one marker per district
let openDistrict = null; // the district whose devices are drawn while aggregated
let silentPage = { data: [], count: 0 }; // /fleet/silent: the longest silent first

// ------------------------------------------------------------ language and formats

const formatters = new Map();
function numberFormat(decimals) {
  const key = lang + decimals;
  if (!formatters.has(key)) {
    formatters.set(key, new Intl.NumberFormat(locale(), { minimumFractionDigits: decimals, maximumFractionDigits: decimals }));
  }
  return formatters.get(key);
}

// A reading with its metric's resolution and unit: "1,20 bar" in Indonesian, "1.20 bar" in English.
function reading(metric, value) {
  if (value === null || value === undefined) return "";
  const format = (city && city.metrics[metric]) || { decimals: 2, unit: "" };
  const unit = t("unit." + format.unit);
  const number = numberFormat(format.decimals).format(value);
  return unit ? number + "\u00a0" + unit : number;
}

function localTime(ms, withDate) {
  const options = { timeZone: city ? city.time_zone : undefined, hour: "2-digit", minute: "2-digit", timeZoneName: "short" };
  if (withDate) Object.assign(options, { day: "numeric", month: "short" });
  return new Intl.DateTimeFormat(locale(), options).format(new Date(ms));
}

function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 90) return t("ago.s", { n: s });
  if (s < 5400) return t("ago.min", { n: Math.round(s / 60) });
  return t("ago.h", { n: Math.round(s / 3600) });
}

async function setLanguage(code) {
  await applyLanguage(code);
  formatters.clear();
  for (const entry of cards.values()) entry.signature = ""; // every card is drawn again in the new language
  if (map) { drawDistrictLabels(); renderDistricts(); }
  renderAlerts();
  renderSilent();
  renderAlarmLists();
  tick();
}

onLanguageChange(setLanguage);

// ------------------------------------------------------------ API

// The JSON body; a 401 shows the sign-in form and throws (staff.js), another error throws its message.
async function api(path, options = {}) {
  const response = await keyed(path, options, showLogin);
  const body = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(body && body.message ? body.message : "HTTP " + response.status);
  return body;
}

// Every item of a paged list {data, count}, page after page (any number of alerts or devices).
async function everything(path) {
  const items = [];
  const joiner = path.includes("?") ? "&" : "?";
  for (let offset = 0; ; offset += PAGE_LIMIT) {
    const page = await api(`${path}${joiner}limit=${PAGE_LIMIT}&offset=${offset}`);
    items.push(...page.data);
    if (page.data.length < PAGE_LIMIT || items.length >= page.count) return items;
  }
}

// ------------------------------------------------------------ sign-in

function showLogin(message) {
  if (streamAbort) streamAbort.abort();
  $("board").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("key").focus();
}

onSignIn(start);

// ------------------------------------------------------------ alerts

const cards = new Map(); // alert id -> {card, signature}: a card is drawn again only when its alert changed

function openAlerts() {
  const open = [...alerts.values()].filter(alarmOnBoard); // alarms.js: not shelved, suppressed, chattering, grouped
  open.sort((a, b) => byPriority(a, b) || SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity]
    || (a.state === b.state ? 0 : a.state === "active" ? -1 : 1) || b.changed_ms - a.changed_ms);
  return open;
}

let renderQueued = false;
function scheduleRender() {
  // a burst of stream events costs one render per frame, not one per event
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; renderAlerts(); });
}

function renderAlerts() {
  const list = $("alerts");
  const open = openAlerts();
  const keep = new Set();
  let previous = null;
  for (const a of open) {
    keep.add(a.id);
    const signature = a.changed_ms + "|" + a.state + "|" + a.severity + "|" + a.acknowledged + "|" + a.assignee
      + "|" + a.escalation + "|" + a.citizen_reports;
    let entry = cards.get(a.id);
    if (!entry || entry.signature !== signature) {
      const card = alertCard(a);
      if (entry) { // keep what someone is typing in the old card
        const old = entry.card.querySelector("input.note");
        const input = card.querySelector("input.note");
        input.value = old.value;
        const focused = document.activeElement === old;
        entry.card.replaceWith(card);
        if (focused) input.focus();
      }
      entry = { card, signature };
      cards.set(a.id, entry);
    }
    const want = previous ? previous.nextSibling : list.firstChild;
    if (want !== entry.card) list.insertBefore(entry.card, want);
    previous = entry.card;
  }
  for (const [id, entry] of cards) {
    if (!keep.has(id)) { entry.card.remove(); cards.delete(id); }
  }
  $("no-alerts").hidden = open.length > 0;
  $("alerts-shown").textContent = open.length ? t("alerts.count", { n: numberFormat(0).format(open.length) }) : "";
  for (const sev of ["critical", "warning", "info"]) {
    $("n-" + sev).textContent = open.filter((a) => a.severity === sev && a.state === "active").length;
  }
  afterRender(open); // alarms.js: groups, flood
  renderDevices();
  renderDistricts();
}

// The engine's sentence from its message (a catalogue key and raw params, as telemetry_shared/alert_text.py
// renders it for the e-mails); an alert without one (an older sender) has only its English words.
const READING_PARAMS = ["observed", "expected", "scale", "bound", "median", "low", "high"];
const DECIMAL_PARAMS = { z: 1, minutes: 1, percent: 0, factor: 0, window_min: 0, n: 0 };
function metricName(metric) {
  if (metric.startsWith("peer:")) return t("explain.peer_member", { metric: metricName(metric.slice(5)) });
  return "metric." + metric in catalogue ? t("metric." + metric) : metric;
}
function reasonText(item) { // "out_of_bounds:6": why the ingest refused, how often
  const cut = item.lastIndexOf(":");
  const reason = item.slice(0, cut);
  return ("reason." + reason in catalogue ? t("reason." + reason) : reason.replaceAll("_", " ")) + " ×" + item.slice(cut + 1);
}
function explainAlert(a) {
  const m = a.message;
  if (!m || !m.key) return lang === "en" ? a.explanation || "" : "";
  const p = m.params || {};
  const fields = {};
  for (const [name, value] of Object.entries(p)) {
    if (READING_PARAMS.includes(name)) fields[name] = reading(p.metric || "", value);
    else if (name in DECIMAL_PARAMS) fields[name] = numberFormat(DECIMAL_PARAMS[name]).format(value);
    else if (name === "since") fields[name] = localTime(value, true);
    else if (name === "metric") fields[name] = metricName(value);
    else if (name === "reasons") fields.reasons = value.map(reasonText).join(", ");
    else if (name === "rule") fields.words = "explain.words." + value in catalogue ? t("explain.words." + value) : value;
    else fields[name] = value;
  }
  fields.usual = p.usual_pct === null || p.usual_pct === undefined ? ""
    : t("explain.peer_usual", { usual_pct: (p.usual_pct >= 0 ? "+" : "") + numberFormat(0).format(p.usual_pct) });
  let text = t(m.key, fields);
  if (p.also) text = t("explain.also", { text });
  if (p.affected && p.affected.length) text += t("explain.affected", { metrics: p.affected.map(metricName).join(", ") });
  return text;
}

function alertCard(a) {
  const card = el("li", `alert ${a.severity} ${a.state}${a.acknowledged ? " acked" : ""}`);
  card.dataset.alertId = a.id;
  card.dataset.testid = "alert";
  const title = el("div", "title");
  const rule = "rule." + a.rule in catalogue ? t("rule." + a.rule) : a.rule.replaceAll("_", " ");
  title.append(el("span", "sev", t("severity." + a.severity)), el("span", "rule", rule),
    el("span", "where", t("alert.where", { device: a.device, kind: t("kind." + a.kind), district: districtName(a.district) })));
  const status = [t("state." + a.state), t("status.since", { when: localTime(a.started_ms, true), ago: ago(a.started_ms) })];
  status.push(a.acknowledged ? t("status.acked", { who: a.acknowledged_by }) : t("status.not_acked"));
  if (a.assignee) status.push(t("status.assigned", { who: a.assignee }));
  if (a.escalation) status.push(t("status.escalated", { n: a.escalation }));
  const metric = t("metric." + a.metric);
  const numbers = a.observed === null ? "" : a.expected === null
    ? t("alert.observed", { metric, observed: reading(a.metric, a.observed) })
    : t("alert.observed_expected", { metric, observed: reading(a.metric, a.observed), expected: reading(a.metric, a.expected) });
  const explanation = el("div", "explanation", numbers);
  const why = el("div", "why", explainAlert(a));
  const note = el("input", "note");
  note.placeholder = t("note.placeholder");
  note.setAttribute("aria-label", t("note.aria", { id: a.id }));
  const ack = el("button", "ack", t("button.ack"));
  ack.addEventListener("click", () => act(a.id, "ack", { note: note.value }, card));
  const resolve = el("button", "resolve", t("button.resolve"));
  const answer = a.citizen_reports ? el("input", "public-note") : null;
  resolve.addEventListener("click", () => {
    if (!note.value.trim()) { note.focus(); note.placeholder = t("note.required"); return; }
    act(a.id, "resolve", Object.assign({ note: note.value, public_note: answer ? answer.value : "" },
      resolveCause(card)), card); // alarms.js: its cause
  });
  const actions = el("div", "actions");
  actions.append(note, ack, resolve);
  card.append(title, explanation, why, el("div", "status", status.join(" · ")));
  if (a.citizen_reports) card.append(citizenReports(a, answer));
  card.append(actions);
  decorateCard(card, a, note); // alarms.js: priority, shelving
  return card;
}

// "N citizen reports" on an incident, their texts read when opened, and the public answer they get on resolve
function citizenReports(a, answer) {
  const box = el("details", "citizens");
  box.append(el("summary", "", t("alert.citizen_reports", { n: numberFormat(0).format(a.citizen_reports) })));
  const list = el("ul", "citizen-texts");
  box.addEventListener("toggle", async () => {
    if (!box.open || list.childElementCount) return;
    const page = await api(`/complaints?alert_id=${encodeURIComponent(a.id)}&limit=50`);
    list.replaceChildren(...page.data.map((c) => el("li", "", c.description)));
  });
  answer.placeholder = t("note.public_placeholder");
  answer.setAttribute("aria-label", t("note.public_placeholder"));
  box.append(list, answer);
  return box;
}

async function act(id, verb, body, card) {
  try {
    const alert = await api(`/alerts/${encodeURIComponent(id)}/${verb}`, { method: "POST", body: JSON.stringify(body) });
    alerts.set(alert.id, alert);
    renderAlerts();
  } catch (error) {
    card.append(el("div", "status", t("act.failed", { error: error.message })));
  }
}

let streamedDuringLoad = null; // ids the stream changed while a list load was in flight

async function loadAlerts() {
  streamedDuringLoad = new Set();
  const listed = await everything("/alerts?resolved=false");
  // The list may have left the server before a change the stream already showed: keep the newer one.
  const merged = new Map(listed.map((a) => [a.id, a]));
  for (const id of streamedDuringLoad) {
    const live = alerts.get(id);
    const known = merged.get(id);
    if (live && (!known || live.changed_ms >= known.changed_ms)) merged.set(id, live);
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
    $("who").textContent = t("who", { user: body.user, role: body.role });
    alarmHello(body.role);
    loadAlerts().catch(() => {}); // the stream is open: nothing between the load and now is lost
  } else if (event === "alert") {
    alerts.set(body.alert.id, body.alert);
    if (streamedDuringLoad) streamedDuringLoad.add(body.alert.id);
    scheduleRender();
    scheduleAlarmState();
  } else if (event === "maintenance") {
    loadFleet();
    scheduleAlarmState();
  }
}

function setLink(key, up) {
  const link = $("link");
  link.dataset.i18n = key;
  link.textContent = t(key);
  link.classList.toggle("up", up);
  link.classList.toggle("down", !up);
}

async function stream() {
  streamAbort = new AbortController();
  try {
    const response = await keyed("/alerts/stream", { signal: streamAbort.signal }); // the key in a header, not the URL
    if (response.status === 401) { showLogin(t("login.invalid")); return; }
    if (!response.ok) throw new Error("HTTP " + response.status);
    setLink("link.live", true);
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
  setLink("link.reconnecting", false);
  setTimeout(stream, RECONNECT_MS);
}

// ------------------------------------------------------------ the map

let map = null;
let cityZoom = 0; // the zoom that fits the whole city
let canvas = null;
let labels = null;
const markers = new Map(); // device id -> {marker, look}
const palette = {};

function drawMap() {
  const style = getComputedStyle(document.documentElement);
  for (const look of ["ok", "silent", "provisioned", "critical", "warning", "info", "maintenance", "district", "edge"]) {
    palette[look] = style.getPropertyValue("--map-" + look).trim();
  }
  canvas = L.canvas({ padding: 0.2 });
  map = L.map("map", { preferCanvas: true, renderer: canvas, zoomSnap: 0.25, attributionControl: false });
  const [minLon, minLat, maxLon, maxLat] = city.bounds;
  const bounds = L.latLngBounds([minLat, minLon], [maxLat, maxLon]);
  map.fitBounds(bounds, { padding: [36, 36] });
  cityZoom = map.getZoom();
  map.setMaxBounds(bounds.pad(1));
  map.on("zoomend", openDistrictZoomedIn);
  L.geoJSON(city.districts, {
    renderer: canvas,
    style: () => ({ color: palette.edge, weight: 2, fillColor: palette.district, fillOpacity: 0.55 }),
  }).addTo(map);
  labels = L.layerGroup().addTo(map);
  drawDistrictLabels();
  $("map-back").addEventListener("click", closeDistrict);
}

function drawDistrictLabels() {
  labels.clearLayers();
  for (const feature of city.districts.features) {
    const center = L.geoJSON(feature).getBounds().getCenter();
    const spot = insideSpot(feature, center);
    labels.addLayer(L.marker(spot, { interactive: false, keyboard: false,
      icon: L.divIcon({ className: "district-label", html: "", iconSize: null }) })
      .on("add", (event) => { event.target.getElement().replaceChildren(el("span", "", districtName(feature.properties.slug))); }));
  }
}

// ray casting over the outer ring(s) of a district's GeoJSON geometry
function rings(geometry) {
  return geometry.type === "Polygon" ? [geometry.coordinates[0]] : geometry.coordinates.map((p) => p[0]);
}
function inside(geometry, lon, lat) {
  let hit = false;
  for (const ring of rings(geometry)) {
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const [xi, yi] = ring[i];
      const [xj, yj] = ring[j];
      if ((yi > lat) !== (yj > lat) && lon < xi + (lat - yi) * (xj - xi) / (yj - yi)) hit = !hit;
    }
  }
  return hit;
}
function insideSpot(feature, center) {
  if (inside(feature.geometry, center.lng, center.lat)) return center;
  const b = L.geoJSON(feature).getBounds();
  for (let k = 1; k < 400; k++) { // a stable point inside the boundary
    const lat = b.getSouth() + ((k * 0.618034) % 1) * (b.getNorth() - b.getSouth());
    const lon = b.getWest() + ((k * 0.7548777) % 1) * (b.getEast() - b.getWest());
    if (inside(feature.geometry, lon, lat)) return L.latLng(lat, lon);
  }
  return center;
}

function hash(text) { // FNV-1a, then a murmur finaliser: similar ids land far apart
  let h = 2166136261;
  for (const ch of text) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

// Where a device sits: its registered position, else a stable spot inside its district.
function position(d) {
  if (d.lat !== null && d.lon !== null) return L.latLng(d.lat, d.lon);
  const feature = city.districts.features.find((f) => f.properties.slug === d.district);
  const [minLon, minLat, maxLon, maxLat] = city.bounds;
  let h = hash(d.id);
  for (let k = 0; k < 50; k++) {
    const lat = minLat + (h & 0xffff) / 0xffff * (maxLat - minLat);
    const lon = minLon + (h >>> 16) / 0xffff * (maxLon - minLon);
    if (!feature || inside(feature.geometry, lon, lat)) return L.latLng(lat, lon);
    h = hash(d.id + k);
  }
  return insideSpot(feature, L.geoJSON(feature).getBounds().getCenter());
}

function worstByDevice() {
  const worst = {};
  for (const a of alerts.values()) {
    if (a.resolved || a.state !== "active") continue;
    if (!(a.device in worst) || SEVERITY_ORDER[a.severity] < SEVERITY_ORDER[worst[a.device]]) worst[a.device] = a.severity;
  }
  return worst;
}

const RADIUS = { critical: 8, warning: 7 };

function renderDevices() {
  if (!map) return;
  const worst = worstByDevice();
  const shown = new Set();
  for (const d of fleet) {
    if (d.state === "retired") continue;
    shown.add(d.id);
    const look = d.maintenance_until_ms ? "maintenance" : worst[d.id] || (d.state === "active" ? "ok" : d.state);
    let entry = markers.get(d.id);
    if (!entry) {
      const marker = L.circleMarker(position(d), { renderer: canvas, radius: RADIUS[look] || 5, weight: 1,
        color: palette.edge, fillColor: palette[look], fillOpacity: 0.95 });
      marker.bindTooltip(() => deviceTooltip(d.id));
      entry = { marker, look, device: d };
      markers.set(d.id, entry);
      marker.addTo(map);
    } else if (entry.look !== look) {
      entry.marker.setStyle({ fillColor: palette[look] });
      entry.marker.setRadius(RADIUS[look] || 5);
      entry.look = look;
    }
    entry.device = d;
    if (look === "critical") entry.marker.bringToFront();
  }
  for (const [id, entry] of markers) {
    if (!shown.has(id)) { entry.marker.remove(); markers.delete(id); }
  }
  renderMapCount();
}

function deviceTooltip(id) {
  const { device: d, look } = markers.get(id);
  const params = { device: d.id, kind: t("kind." + d.kind), district: districtName(d.district),
    state: t("device.state." + d.state), severity: t("severity." + look) };
  if (look === "maintenance") return t("device.tooltip_maintenance", Object.assign(params, { until: localTime(d.maintenance_until_ms, true) }));
  return t(look in SEVERITY_ORDER ? "device.tooltip_alert" : "device.tooltip", params);
}

// ------------------------------------------------------------ districts (a large fleet)

const districtMarkers = new Map(); // slug -> {marker, look, summary}
const LOOK_ORDER = ["critical", "warning", "silent", "info", "maintenance", "ok"]; // worst first

// The district's worst: its worst open active alert (live, from the stream), else silent devices, else ok.
function districtLooks() {
  const worst = {};
  for (const a of alerts.values()) {
    if (a.resolved || a.state !== "active") continue;
    if (!(a.district in worst) || SEVERITY_ORDER[a.severity] < SEVERITY_ORDER[worst[a.district]]) worst[a.district] = a.severity;
  }
  const looks = {};
  for (const d of districtsFleet) {
    const found = [worst[d.district], d.states.silent ? "silent" : null, d.maintenance ? "maintenance" : null, "ok"];
    looks[d.district] = found.filter(Boolean).sort((a, b) => LOOK_ORDER.indexOf(a) - LOOK_ORDER.indexOf(b))[0];
  }
  return looks;
}

function districtLabel(d, look) {
  const open = [...alerts.values()].filter((a) => a.district === d.district && !a.resolved && a.state === "active").length;
  return t("district.marker", { district: districtName(d.district), n: numberFormat(0).format(d.devices),
    silent: numberFormat(0).format(d.states.silent), alerts: numberFormat(0).format(open), worst: t("look." + look) });
}

function districtSpot(d) {
  const feature = city.districts.features.find((f) => f.properties.slug === d.district);
  if (feature) return insideSpot(feature, L.geoJSON(feature).getBounds().getCenter());
  return d.lat === null ? null : L.latLng(d.lat, d.lon);
}

function renderDistricts() {
  if (!map) return;
  const looks = districtLooks();
  const keep = new Set();
  for (const d of aggregated ? districtsFleet : []) {
    if (d.district === openDistrict || !d.devices) continue;
    const spot = districtSpot(d);
    if (!spot) continue;
    keep.add(d.district);
    const look = looks[d.district];
    let entry = districtMarkers.get(d.district);
    if (!entry) {
      const marker = L.marker(spot, { keyboard: true, riseOnHover: true,
        icon: L.divIcon({ className: "district-count", html: "", iconSize: [76, 26], iconAnchor: [38, -12] }) });
      entry = { marker, look: null, summary: d, label: "" };
      marker.on("click", () => openDistrictDevices(d.district));
      marker.on("add", () => {
        paintDistrict(entry);
        marker.getElement().addEventListener("keydown", (event) => { // a button: Enter or Space opens it
          if (event.key !== "Enter" && event.key !== " ") return;
          event.preventDefault();
          openDistrictDevices(d.district);
        });
      });
      districtMarkers.set(d.district, entry);
      marker.addTo(map);
    }
    entry.summary = d;
    const label = districtLabel(d, look);
    if (entry.look !== look || entry.label !== label) { entry.look = look; entry.label = label; paintDistrict(entry); }
  }
  for (const [slug, entry] of districtMarkers) {
    if (!keep.has(slug)) { entry.marker.remove(); districtMarkers.delete(slug); }
  }
  $("map-back").hidden = !(aggregated && openDistrict);
  renderMapCount();
}

function paintDistrict(entry) {
  const element = entry.marker.getElement();
  if (!element) return;
  element.className = element.className.replace(/ look-\w+/g, "") + " look-" + entry.look;
  element.dataset.district = entry.summary.district;
  element.setAttribute("aria-label", entry.label);
  element.title = entry.label;
  element.textContent = numberFormat(0).format(entry.summary.devices); // the name: the district's label above
}

async function openDistrictDevices(slug) {
  openDistrict = slug;
  const feature = city.districts.features.find((f) => f.properties.slug === slug);
  if (feature) map.fitBounds(L.geoJSON(feature).getBounds(), { padding: [24, 24] });
  renderDistricts();
  await loadFleet();
}

// Zoomed in ZOOM_OPENS steps past the whole city on an aggregated map: the district under the map's centre opens.
function openDistrictZoomedIn() {
  if (!aggregated || openDistrict || map.getZoom() < cityZoom + ZOOM_OPENS) return;
  const centre = map.getCenter();
  const feature = city.districts.features.find((f) => inside(f.geometry, centre.lng, centre.lat));
  if (!feature) return;
  openDistrict = feature.properties.slug;
  renderDistricts();
  loadFleet();
}

function closeDistrict() {
  openDistrict = null;
  const [minLon, minLat, maxLon, maxLat] = city.bounds;
  map.fitBounds(L.latLngBounds([minLat, minLon], [maxLat, maxLon]), { padding: [36, 36] });
  fleet = [];
  renderDevices();
  renderDistricts();
  $("map").focus();
}

function renderMapCount() {
  const total = districtsFleet.reduce((n, d) => n + d.devices, 0);
  let text = t("map.devices", { n: numberFormat(0).format(markers.size) });
  if (aggregated && openDistrict) {
    text = t("map.district_open", { n: numberFormat(0).format(markers.size), district: districtName(openDistrict),
      total: numberFormat(0).format(total) });
  } else if (aggregated) {
    text = t("map.aggregated", { total: numberFormat(0).format(total), districts: numberFormat(0).format(districtMarkers.size) });
  }
  $("map-count").textContent = text;
}

// what tests and the wall screen's operators can ask the map (a canvas has no elements to query)
window.controlRoom = {
  deviceLook: (id) => (markers.get(id) || {}).look || null,
  devicesOnMap: () => markers.size,
  districtsOnMap: () => (city ? city.districts.features.length : 0),
  aggregated: () => aggregated,
  fleetLoads: () => fleetLoads,
  zoom: () => (map ? { zoom: map.getZoom(), city: cityZoom, centre: map.getCenter() } : null),
  openDistrict: () => openDistrict,
  districtMarkers: () => [...districtMarkers.values()].map((e) => ({ district: e.summary.district,
    devices: e.summary.devices, look: e.look, label: e.label })),
};

// ------------------------------------------------------------ silent list

function renderSilent() {
  const silent = silentPage.data;
  $("n-silent").textContent = numberFormat(0).format(silentPage.count);
  $("silent").replaceChildren(...silent.map((d) => el("li", "", t("silent.item", { device: d.id,
    kind: t("kind." + d.kind), district: districtName(d.district),
    when: d.last_seen_ms ? ago(d.last_seen_ms) : t("silent.never") }))));
  $("no-silent").hidden = silentPage.count > 0;
  $("silent-shown").hidden = silentPage.count <= silent.length;
  $("silent-shown").textContent = t("silent.shown", { n: numberFormat(0).format(silent.length),
    total: numberFormat(0).format(silentPage.count) });
}

let fleetLoads = 0; // fleet loads done (a test or a bench waits for the first)
let fleetLoading = null; // one load at a time: a refresh asked meanwhile runs once it ends

async function loadFleet() {
  if (fleetLoading) { fleetLoading.again = true; return fleetLoading.done; }
  fleetLoading = { again: false };
  fleetLoading.done = (async () => {
    do {
      fleetLoading.again = false;
      try {
        const [districts, silent] = await Promise.all([api("/fleet/districts"), api(`/fleet/silent?limit=${SILENT_SHOWN}`)]);
        districtsFleet = districts.data;
        silentPage = silent;
        aggregated = districtsFleet.reduce((n, d) => n + d.devices, 0) > AGGREGATE_ABOVE;
        if (!aggregated) openDistrict = null;
        const wanted = openDistrict;
        const devices = !aggregated ? await everything("/fleet/devices")
          : wanted ? await everything(`/fleet/devices?district=${encodeURIComponent(wanted)}`) : [];
        if (wanted !== openDistrict) continue; // the operator opened or closed a district meanwhile
        fleet = devices;
        fleetLoads += 1;
        renderDevices();
        renderDistricts();
        renderSilent();
      } catch (error) { /* shown as stale; tried again shortly */ }
    } while (fleetLoading.again);
    fleetLoading = null;
  })();
  return fleetLoading.done;
}

// ------------------------------------------------------------ start

function tick() {
  if (city) $("clock").textContent = localTime(Date.now(), false);
}

function start() {
  if (!apiKey) { showLogin(); return; }
  $("login").hidden = true;
  $("board").hidden = false;
  if (!map) drawMap();
  map.invalidateSize();
  stream();
  loadFleet();
}

async function boot() {
  await loadCity();
  await setLanguage(pickLanguage(city.language));
  setInterval(tick, 1000);
  setInterval(() => { if (apiKey) loadFleet(); }, FLEET_REFRESH_MS);
  start();
}

boot();
