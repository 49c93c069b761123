// The shell every public page shares: the catalogue and the language switch (Bahasa Indonesia first,
// remembered in this browser), the city from its profile (/public/map), and the navigation between
// the public pages. Plain JavaScript, no build step. A new public page: add its route (api/routes),
// one entry to PUBLIC_PAGES (its label a t() of a nav.* key in both catalogues), and call publicPage.start(render).
// Every text of our own comes from /static/i18n/<lang>.json through t(); every text from the server
// goes in with textContent, never as HTML.
"use strict";

const PUBLIC_PAGES = [
  { path: "/city", label: () => t("nav.city") },
  { path: "/beds", label: () => t("nav.beds") },
  { path: "/complaint", label: () => t("nav.complaint") },
  { path: "/data", label: () => t("nav.data") },
];
const PUBLIC_LANG_STORE = "cityLanguage"; // the same choice as the control room's
const PUBLIC_LOCALES = { id: "id-ID", en: "en-GB" };
const publicPage = { city: null, lang: "id", catalogue: {}, render: () => {} };

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
};

function t(key, params = {}) {
  const text = key in publicPage.catalogue ? publicPage.catalogue[key] : key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

function publicLocale() { return PUBLIC_LOCALES[publicPage.lang] || publicPage.lang; }

function localTime(ms) {
  return new Intl.DateTimeFormat(publicLocale(), { timeZone: publicPage.city.time_zone, day: "numeric",
    month: "long", hour: "2-digit", minute: "2-digit", timeZoneName: "short" }).format(new Date(ms));
}

function number(value, decimals = 0) {
  return new Intl.NumberFormat(publicLocale(), { minimumFractionDigits: decimals, maximumFractionDigits: decimals })
    .format(value);
}

function districtName(slug) {
  const feature = publicPage.city.districts.features.find((f) => f.properties.slug === slug);
  return feature ? feature.properties.names[publicPage.lang] || feature.properties.name : slug;
}

function drawNav() {
  const list = $("site-nav").querySelector("ul");
  list.replaceChildren(...PUBLIC_PAGES.map((entry) => {
    const link = el("a", "", entry.label());
    link.href = entry.path;
    if (entry.path === location.pathname) link.setAttribute("aria-current", "page");
    const item = el("li");
    item.append(link);
    return item;
  }));
}

async function setLanguage(code) {
  const response = await fetch(`/static/i18n/${encodeURIComponent(code)}.json`);
  publicPage.catalogue = await response.json();
  publicPage.lang = code;
  document.documentElement.lang = code;
  const params = { city: publicPage.city.name };
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n, params);
  for (const node of document.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of node.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":");
      node.setAttribute(attr, t(key, params));
    }
  }
  $("lang").replaceChildren(...publicPage.city.languages.map((offered) => {
    const option = el("option", "", t("lang." + offered));
    option.value = offered;
    option.selected = offered === code;
    return option;
  }));
  drawNav();
  publicPage.render();
}

// The city's default language first (the profile's default_language), unless this browser chose one.
publicPage.start = async function start(render) {
  publicPage.render = render;
  publicPage.city = await (await fetch("/public/map")).json();
  const stored = localStorage.getItem(PUBLIC_LANG_STORE);
  const code = stored && publicPage.city.languages.includes(stored) ? stored : publicPage.city.default_language;
  $("lang").addEventListener("change", (event) => {
    localStorage.setItem(PUBLIC_LANG_STORE, event.target.value);
    setLanguage(event.target.value);
  });
  await setLanguage(code);
};
