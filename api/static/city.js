// The public city page: the profile's districts on a Leaflet map (vector shapes only, no tile server),
// each coloured by its public power status, and a table of the districts' public figures, refreshed
// every minute. Data only from /public/city (city-level figures, never a device).
"use strict";

const REFRESH_MS = 60000;
let figures = null; // /public/city
let cityMap = null;
let shapes = null;
let districtLabels = null;
const colours = {};

function statusOf(slug) {
  const row = figures && figures.districts.find((d) => d.district === slug);
  return row || { district: slug, power: "unknown", traffic: "unknown", mean_speed_kmh: null };
}

function drawCityMap() {
  const style = getComputedStyle(document.documentElement);
  for (const look of ["on", "outage", "unknown", "edge"]) colours[look] = style.getPropertyValue("--power-" + look).trim();
  const canvas = L.canvas({ padding: 0.2 });
  cityMap = L.map("map", { preferCanvas: true, renderer: canvas, zoomSnap: 0.25, attributionControl: false });
  const [minLon, minLat, maxLon, maxLat] = publicPage.city.bounds;
  const bounds = L.latLngBounds([minLat, minLon], [maxLat, maxLon]);
  cityMap.fitBounds(bounds, { padding: [12, 12] });
  cityMap.setMaxBounds(bounds.pad(1));
  shapes = L.geoJSON(publicPage.city.districts, { renderer: canvas, style: districtStyle }).addTo(cityMap);
  districtLabels = L.layerGroup().addTo(cityMap);
}

function districtStyle(feature) {
  const power = statusOf(feature.properties.slug).power;
  return { color: colours.edge, weight: 2, fillColor: colours[power] || colours.unknown, fillOpacity: 0.6 };
}

function drawLabels() {
  districtLabels.clearLayers();
  for (const feature of publicPage.city.districts.features) {
    const center = L.geoJSON(feature).getBounds().getCenter();
    districtLabels.addLayer(L.marker(center, { interactive: false, keyboard: false,
      icon: L.divIcon({ className: "district-label", html: "", iconSize: null }) })
      .on("add", (event) => { event.target.getElement().replaceChildren(el("span", "", districtName(feature.properties.slug))); }));
  }
}

function renderCity() {
  if (!cityMap) drawCityMap();
  shapes.setStyle(districtStyle);
  drawLabels();
  const body = $("districts").tBodies[0];
  body.replaceChildren(...publicPage.city.districts.features.map((feature) => {
    const row = statusOf(feature.properties.slug);
    const tr = el("tr");
    tr.dataset.district = row.district;
    const traffic = row.mean_speed_kmh === null ? t("public.traffic." + row.traffic)
      : t("public.traffic_speed", { state: t("public.traffic." + row.traffic), speed: number(row.mean_speed_kmh, 0) });
    tr.append(el("th", "", districtName(row.district)), el("td", "power " + row.power, t("public.power." + row.power)),
      el("td", "traffic", traffic));
    return tr;
  }));
  $("water").textContent = figures && figures.water_supplied_today_m3 !== null
    ? t("public.water_today", { m3: number(figures.water_supplied_today_m3, 1) }) : t("public.water_unknown");
  $("as-of").textContent = figures ? t("public.as_of", { when: localTime(figures.as_of_ms) }) : "";
}

async function loadFigures() {
  try {
    const response = await fetch("/public/city");
    if (!response.ok) throw new Error(String(response.status));
    figures = await response.json();
    $("error").hidden = true;
  } catch (error) {
    $("error").hidden = false;
  }
  renderCity();
}

// what the Chromium test asks the page
window.cityPage = {
  districtsOnMap: () => (shapes ? shapes.getLayers().length : 0),
  powerLook: (slug) => statusOf(slug).power,
};

publicPage.start(renderCity).then(() => {
  loadFigures();
  setInterval(loadFigures, REFRESH_MS);
});
