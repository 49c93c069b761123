// What the staff pages share (the control room, its KPI page, the moderation queue): the API key and
// the language kept in this browser (localStorage), texts from the catalogues (/static/i18n/<lang>.json)
// through t(), the city profile (/public/map) and API calls with the key in the Authorization header
// (never in a URL). Loaded before each page's own script, as a plain script: these names are the pages'.
"use strict";

const KEY_STORE = "cityApiKey";
const LANG_STORE = "cityLanguage";
const LOCALES = { id: "id-ID", en: "en-GB" };

let apiKey = localStorage.getItem(KEY_STORE) || "";
let catalogue = {};
let lang = "en";
let city = null; // /public/map: name, time zone, languages, districts (GeoJSON), metric formats

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

function locale() { return LOCALES[lang] || lang; }

function districtName(slug) {
  const feature = city && city.districts.features.find((f) => f.properties.slug === slug);
  return feature ? feature.properties.names[lang] || feature.properties.name : slug;
}

// The city profile, then the language this browser chose before if the city offers it, else `fallback`
// (the server's pick from Accept-Language, or the city's own).
async function loadCity() {
  city = await (await fetch("/public/map")).json();
  return city;
}

function pickLanguage(fallback) {
  const stored = localStorage.getItem(LANG_STORE);
  return stored && city.languages.includes(stored) ? stored : fallback || city.language;
}

// Load a catalogue and put its texts into the page: [data-i18n] nodes, [data-i18n-attr] attributes
// ("attr:key;attr:key") and the language select (#lang). The page redraws its own content after.
async function applyLanguage(code) {
  catalogue = await (await fetch(`/static/i18n/${encodeURIComponent(code)}.json`)).json();
  lang = code;
  document.documentElement.lang = code;
  const params = { city: city ? city.name : "" };
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n, params);
  for (const node of document.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of node.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":");
      node.setAttribute(attr, t(key, params));
    }
  }
  $("lang").replaceChildren(...city.languages.map((c) => {
    const option = el("option", "", t("lang." + c));
    option.value = c;
    option.selected = c === lang;
    return option;
  }));
}

// The language select: remembered in this browser, then the page's own setLanguage(code).
function onLanguageChange(setLanguage) {
  $("lang").addEventListener("change", (event) => {
    localStorage.setItem(LANG_STORE, event.target.value);
    setLanguage(event.target.value);
  });
}

// fetch with the key; a 401 (a revoked or mistyped key) shows the page's sign-in (signedOut) and throws.
async function keyed(path, options = {}, signedOut = null) {
  const headers = Object.assign({ Authorization: "Bearer " + apiKey }, options.headers || {});
  if (options.body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401 && signedOut) {
    signedOut(t("login.invalid"));
    throw new Error("unauthorized");
  }
  return response;
}

// The sign-in form (#login, #key): the key is kept in this browser, then the page starts again.
function onSignIn(start) {
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    apiKey = $("key").value.trim();
    localStorage.setItem(KEY_STORE, apiKey);
    start();
  });
}
