// The shift supervisor's KPI page: GET /alarms/kpis over the chosen range, refreshed every minute,
// and the tuning proposals learnt from false alarms (GET /alarms/tuning) with their measured effect.
// The key is the control room's (this browser's localStorage); texts from the catalogues (staff.js).
"use strict";

const REFRESH_MS = 60000;
const TARGETS = { high: 5, medium: 15, low: 80 };

let last = null;
let proposals = null;
let mayDecide = false; // the API said so: POST /alarms/tuning/propose answered 200, not 403

function number(value, decimals = 0) {
  if (value === null || value === undefined) return t("kpis.none");
  return new Intl.NumberFormat(locale(), { minimumFractionDigits: decimals, maximumFractionDigits: decimals })
    .format(value);
}

function seconds(value) {
  if (value === null || value === undefined) return t("kpis.none");
  return value < 120 ? t("duration.s", { n: number(value) }) : t("duration.min", { n: number(value / 60, 1) });
}

async function setLanguage(code) {
  await applyLanguage(code);
  if (last) render(last);
  if (proposals) renderTuning(proposals);
}

function row(label, value, testid) {
  const tr = el("tr");
  if (testid) tr.dataset.testid = testid;
  tr.append(el("th", "", label), el("td", "", value));
  return tr;
}

function render(k) {
  $("figures").tBodies[0].replaceChildren(
    row(t("kpis.per_operator_hour"), number(k.per_operator_hour, 1), "per-operator-hour"),
    row(t("kpis.per_10min"), t("kpis.mean_max", { mean: number(k.per_10min_mean, 1), max: number(k.per_10min_max) }), "per-10min"),
    row(t("kpis.flood"), t("kpis.percent", { n: number(k.flood_percent, 1) }), "flood"),
    row(t("kpis.annunciated"), t("kpis.of_raised", { n: number(k.annunciated), raised: number(k.raised) }), "annunciated"),
    row(t("kpis.false_alarms"), t("kpis.false_planned", { n: number(k.false_alarms), planned: number(k.planned_work) }),
      "false-alarms"),
    row(t("kpis.chattering"), number(k.chattering_sources), "chattering"),
    row(t("kpis.stale"), number(k.stale_now), "stale"),
    row(t("kpis.shelved"), number(k.shelved_now), "shelved"),
    row(t("kpis.suppressed"), number(k.suppressed_now), "suppressed"),
    row(t("kpis.ack"), t("kpis.median_p90", { median: seconds(k.time_to_ack.median_s), p90: seconds(k.time_to_ack.p90_s) }), "ack"),
    row(t("kpis.resolve"), t("kpis.median_p90", { median: seconds(k.time_to_resolve.median_s), p90: seconds(k.time_to_resolve.p90_s) }), "resolve"));
  $("mix").tBodies[0].replaceChildren(...["high", "medium", "low"].map((p) => row(t("priority." + p),
    t("kpis.mix_value", { n: number(k.priority_mix[p] || 0), pct: number(k.priority_percent[p] || 0, 1), target: TARGETS[p] }),
    "mix-" + p)));
  $("top").replaceChildren(...k.top_sources.map((s) => el("li", "", t("kpis.source", {
    device: s.device, rule: "rule." + s.rule in catalogue ? t("rule." + s.rule) : s.rule, n: number(s.raises) }))));
}


function when(ms) {
  return new Intl.DateTimeFormat(locale(), { dateStyle: "medium", timeStyle: "short", timeZone: city.time_zone })
    .format(new Date(ms));
}

function effectText(e) {
  return t("tuning.effect", { days: number(e.window_days), alarms: number(e.alarms), share: number(e.board_share_percent, 1),
    held: number(e.held),
    false: number(e.false_alarms), faults: number(e.real_faults), planned: number(e.planned_work),
    undecided: number(e.undecided) });
}

// Weekday names in the reader's language: 2024-01-01 was a Monday (the API counts Monday 0).
function weekday(day) {
  return new Intl.DateTimeFormat(locale(), { weekday: "long", timeZone: "UTC" })
    .format(new Date(Date.UTC(2024, 0, 1 + day)));
}

function hour(h) {
  return String(Math.floor(h)).padStart(2, "0") + ":" + String(Math.round((h % 1) * 60)).padStart(2, "0");
}

function whole(p) { return p.metric === "*"; } // planned work: a calendar exception for the whole device

function changeText(p) {
  const params = p.params || {};
  if (p.change === "score_cutoff") return t("tuning.change.score_cutoff", { min_score: number(params.min_score, 2) });
  if (p.change === "calendar") {
    return t(whole(p) ? "tuning.change.calendar_device" : "tuning.change.calendar", {
      weekdays: params.weekdays.map(weekday).join(", "), from: hour(params.from_h),
      to: hour(params.to_h) });
  }
  if (p.change === "threshold") {
    const limit = "below" in params ? "< " + number(params.below, 2) : "> " + number(params.above, 2);
    return t("tuning.change.threshold", { limit });
  }
  return t("tuning.change." + p.change);
}

function stateText(p) {
  if (p.state === "proposed") return t("tuning.proposed_at", { when: when(p.proposed_ms) });
  if (p.state === "undone") return t("tuning.undone_by", { who: p.undone_by, when: when(p.undone_ms) });
  return t("tuning.decided_by", { state: t("tuning.state." + p.state), who: p.decided_by, when: when(p.decided_ms) });
}

function decisionButton(p, action) {
  const button = el("button", "tuning-" + action, t("tuning." + action));
  button.type = "button";
  button.setAttribute("aria-label", t("tuning." + action + "_aria", { id: p.id, device: p.device }));
  button.addEventListener("click", () => decide(p.id, action));
  return button;
}

// Engineers get buttons for what the API allows next: a proposed one is approved or rejected, an approved one undone.
function proposalItem(p) {
  const li = el("li", "proposal");
  li.dataset.tuningId = p.id;
  li.dataset.state = p.state;
  li.tabIndex = -1; // focus lands here after a decision that leaves no button
  const rule = whole(p) ? t("tuning.every_rule") : "rule." + p.rule in catalogue ? t("rule." + p.rule) : p.rule;
  const metric = whole(p) ? t("tuning.every_metric") : "metric." + p.metric in catalogue ? t("metric." + p.metric)
    : p.metric || t("kpis.none");
  li.append(el("strong", "", t("tuning.source", { device: p.device, metric, rule })),
    el("span", "badge", t("tuning.state." + p.state)),
    el("div", "change", changeText(p)),
    el("div", "effect", effectText(p.effect)),
    el("div", "decided", stateText(p)));
  if (mayDecide) {
    const actions = p.state === "proposed" ? ["approve", "reject"] : p.state === "approved" ? ["undo"] : [];
    const bar = el("div", "actions");
    bar.append(...actions.map((action) => decisionButton(p, action)));
    if (actions.length) li.append(bar);
  }
  return li;
}

function renderTuning(list) {
  $("tuning-who").textContent = t(mayDecide ? "tuning.may_decide" : "tuning.read_only");
  $("tuning").replaceChildren(...(list.length ? list.map(proposalItem) : [el("li", "none", t("tuning.none"))]));
}

async function loadTuning() {
  // an engineer's visit looks for new proposals first; anyone else's answer is a 403 and the list is read-only
  const made = await keyed("/alarms/tuning/propose", { method: "POST" });
  mayDecide = made.ok;
  const response = await keyed("/alarms/tuning");
  const body = await response.json();
  if (!response.ok) { $("tuning-error").textContent = t("tuning.load_failed", { error: body.message || response.status }); return; }
  proposals = body.data;
  renderTuning(proposals);
}

async function decide(id, action) {
  const response = await keyed(`/alarms/tuning/${id}/${action}`, { method: "POST", body: "{}" });
  const body = await response.json();
  $("tuning-error").textContent = response.ok ? "" : t("tuning.failed", { id, error: body.message || response.status });
  await loadTuning(); // a 409 means someone else decided first: show what they decided
  const item = $("tuning").querySelector(`li[data-tuning-id="${id}"]`);
  if (item) (item.querySelector("button") || item).focus();
}

let asked = 0; // the latest load: an answer for a range (or a refresh) asked before it is not shown

async function load() {
  loadTuning().catch((error) => { $("tuning-error").textContent = t("tuning.load_failed", { error }); });
  const ticket = ++asked;
  const since = $("range").selectedOptions[0].dataset.since;
  const response = await keyed(`/alarms/kpis?since=${encodeURIComponent(since)}`);
  const body = await response.json();
  if (ticket !== asked) return;
  if (!response.ok) { $("kpi-error").textContent = t("kpis.failed", { error: body.message || response.status }); return; }
  $("kpi-error").textContent = "";
  last = body;
  render(body);
}

onLanguageChange(setLanguage);
$("range").addEventListener("change", load);

async function boot() {
  await loadCity();
  await setLanguage(pickLanguage());
  await load();
  setInterval(load, REFRESH_MS);
}

boot();
