// What the citizens' pages share (beds.html, complaint.html): the catalogue, the language switch,
// the city from its profile (/public/map), and small DOM helpers. Plain JavaScript, no build step.
// Every text of our own comes from /static/i18n/<lang>.json through t(); every text from the
// server goes in with textContent, never as HTML.
"use strict";

const CITIZEN_LANG_STORE = "cityLanguage";
const CITIZEN_LOCALES = { id: "id-ID", en: "en-GB" };
const citizen = { city: null, lang: "id", catalogue: {}, onLanguage: () => {} };

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
};

function t(key, params = {}) {
  const text = key in citizen.catalogue ? citizen.catalogue[key] : key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

function citizenLocale() { return CITIZEN_LOCALES[citizen.lang] || citizen.lang; }

function localTime(ms) {
  return new Intl.DateTimeFormat(citizenLocale(), { timeZone: citizen.city ? citizen.city.time_zone : undefined,
    day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", timeZoneName: "short" }).format(new Date(ms));
}

function number(value, decimals = 0) {
  return new Intl.NumberFormat(citizenLocale(), { minimumFractionDigits: decimals, maximumFractionDigits: decimals })
    .format(value);
}

function districtName(slug) {
  const feature = citizen.city && citizen.city.districts.features.find((f) => f.properties.slug === slug);
  return feature ? feature.properties.names[citizen.lang] || feature.properties.name : slug;
}

async function setLanguage(code) {
  const response = await fetch(`/static/i18n/${encodeURIComponent(code)}.json`);
  citizen.catalogue = await response.json();
  citizen.lang = code;
  document.documentElement.lang = code;
  const params = { city: citizen.city ? citizen.city.name : "" };
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n, params);
  for (const node of document.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of node.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":");
      node.setAttribute(attr, t(key, params));
    }
  }
  const select = $("lang");
  select.replaceChildren(...citizen.city.languages.map((lang) => {
    const option = el("option", "", t("lang." + lang));
    option.value = lang;
    option.selected = lang === code;
    return option;
  }));
  citizen.onLanguage();
}

// The city's own language first (Bahasa Indonesia in Tanjungpinang), or what this browser chose before.
async function startCitizenPage(onLanguage) {
  citizen.onLanguage = onLanguage;
  citizen.city = await (await fetch("/public/map")).json();
  const stored = localStorage.getItem(CITIZEN_LANG_STORE);
  const languages = citizen.city.languages;
  const first = stored && languages.includes(stored) ? stored : citizen.city.default_language;
  $("lang").addEventListener("change", (event) => {
    localStorage.setItem(CITIZEN_LANG_STORE, event.target.value);
    setLanguage(event.target.value);
  });
  await setLanguage(first);
}

function districtOptions(select, withAny) {
  const keep = select.value;
  const options = withAny ? [el("option", "", t("citizen.any_district"))] : [];
  if (withAny) options[0].value = "";
  for (const f of citizen.city.districts.features) {
    const option = el("option", "", districtName(f.properties.slug));
    option.value = f.properties.slug;
    options.push(option);
  }
  select.replaceChildren(...options);
  select.value = keep;
}
