// The shift supervisor's KPI page: GET /alarms/kpis over the chosen range, refreshed every minute.
// The key is the control room's (this browser's localStorage); texts from the catalogues.
"use strict";

const KEY_STORE = "cityApiKey";
const LANG_STORE = "cityLanguage";
const LOCALES = { id: "id-ID", en: "en-GB" };
const REFRESH_MS = 60000;
const TARGETS = { high: 5, medium: 15, low: 80 };

let catalogue = {};
let lang = "en";
let city = null;
let last = null;

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
};

function t(key, params = {}) {
  const text = key in catalogue ? catalogue[key] : key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

function number(value, decimals = 0) {
  if (value === null || value === undefined) return t("kpis.none");
  return new Intl.NumberFormat(LOCALES[lang] || lang, { minimumFractionDigits: decimals, maximumFractionDigits: decimals })
    .format(value);
}

function seconds(value) {
  if (value === null || value === undefined) return t("kpis.none");
  return value < 120 ? t("duration.s", { n: number(value) }) : t("duration.min", { n: number(value / 60, 1) });
}

async function setLanguage(code) {
  catalogue = await (await fetch(`/static/i18n/${encodeURIComponent(code)}.json`)).json();
  lang = code;
  document.documentElement.lang = code;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n, { city: city.name });
  for (const node of document.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of node.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":");
      node.setAttribute(attr, t(key));
    }
  }
  $("lang").replaceChildren(...city.languages.map((c) => {
    const option = el("option", "", t("lang." + c));
    option.value = c;
    option.selected = c === lang;
    return option;
  }));
  if (last) render(last);
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

async function load() {
  const key = localStorage.getItem(KEY_STORE) || "";
  const since = $("range").selectedOptions[0].dataset.since;
  const response = await fetch(`/alarms/kpis?since=${encodeURIComponent(since)}`, { headers: { Authorization: "Bearer " + key } });
  const body = await response.json();
  if (!response.ok) { $("kpi-error").textContent = t("kpis.failed", { error: body.message || response.status }); return; }
  $("kpi-error").textContent = "";
  last = body;
  render(body);
}

$("lang").addEventListener("change", (event) => {
  localStorage.setItem(LANG_STORE, event.target.value);
  setLanguage(event.target.value);
});
$("range").addEventListener("change", load);

async function boot() {
  city = await (await fetch("/public/map")).json();
  const stored = localStorage.getItem(LANG_STORE);
  await setLanguage(stored && city.languages.includes(stored) ? stored : city.language);
  await load();
  setInterval(load, REFRESH_MS);
}

boot();
