// The public open-data page: charts drawn in the browser (Chart.js, vendored in /static/vendor/chartjs) from
// the open summaries (/public/summary/*), each also as a table (keyboard and screen readers), and a link to
// every dataset. Data only from public routes that the publication policy filtered: never a device.
"use strict";

const REFRESH_MS = 5 * 60000;
const SUMMARIES = {
  water: "/public/summary/water?days=14",
  power: "/public/summary/power?days=7",
  traffic: "/public/summary/traffic?days=2",
  complaints: "/public/summary/complaints?days=30",
  beds: "/public/summary/beds",
};
const PALETTE = ["#0b5cad", "#c25e00", "#2e9e5b", "#8e44ad", "#c62828", "#00838f", "#6d4c41", "#546e7a"];
const summaries = {}; // name -> the route's answer, or null when it failed
const charts = {}; // name -> Chart

Chart.defaults.animation = false; // figures, not a show: drawn at once (and the same in every screenshot)
Chart.defaults.maintainAspectRatio = false;

function dayLabel(ms) {
  return new Intl.DateTimeFormat(publicLocale(), { timeZone: publicPage.city.time_zone, day: "numeric",
    month: "short" }).format(new Date(ms));
}

function hourLabel(ms) {
  return new Intl.DateTimeFormat(publicLocale(), { timeZone: publicPage.city.time_zone, hour: "2-digit",
    minute: "2-digit" }).format(new Date(ms));
}

function draw(name, config, label) {
  if (charts[name]) charts[name].destroy();
  const canvas = $(name + "-chart");
  canvas.setAttribute("aria-label", label);
  config.options = Object.assign({ responsive: true, locale: publicLocale(),
    plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } } }, config.options || {});
  charts[name] = new Chart(canvas, config);
}

function table(name, head, rows) {
  const tr = (cells, tag) => {
    const row = el("tr");
    row.append(...cells.map((cell) => el(tag, "", cell)));
    return row;
  };
  const thead = el("thead");
  thead.append(tr(head, "th"));
  const tbody = el("tbody");
  tbody.append(...rows.map((cells) => tr(cells, "td")));
  $(name + "-table").replaceChildren(thead, tbody);
}

function byDistrict(rows, key, valueOf) {
  const districts = [...new Set(rows.map((r) => r.district))].sort();
  const times = [...new Set(rows.map((r) => r[key]))].sort((a, b) => a - b);
  const cell = new Map(rows.map((r) => [r.district + "@" + r[key], valueOf(r)]));
  const datasets = districts.map((d, i) => ({ label: districtName(d), backgroundColor: PALETTE[i % PALETTE.length],
    borderColor: PALETTE[i % PALETTE.length], data: times.map((t) => cell.get(d + "@" + t) ?? null) }));
  return { districts, times, datasets };
}

function renderWater(body) {
  const days = body.data;
  const known = days.filter((d) => d.supplied_m3 !== null);
  $("water-figure").textContent = known.length
    ? t("data.water.latest", { day: dayLabel(known[known.length - 1].start_ms), m3: number(known[known.length - 1].supplied_m3, 1) })
    : t("data.no_data");
  draw("water", { type: "bar", data: { labels: days.map((d) => dayLabel(d.start_ms)),
    datasets: [{ label: t("data.water.series"), data: days.map((d) => d.supplied_m3), backgroundColor: PALETTE[0] }] },
    options: { scales: { y: { beginAtZero: true, title: { display: true, text: "m³" } } } } }, t("data.water.title"));
  table("water", [t("data.col.day"), t("data.water.series")],
    days.map((d) => [dayLabel(d.start_ms), d.supplied_m3 === null ? t("data.no_data") : number(d.supplied_m3, 1)]));
}

function renderPower(body) {
  const { districts, times, datasets } = byDistrict(body.data, "start_ms", (r) => r.minutes_without_power);
  $("power-note").textContent = t("data.power.note", { volts: number(body.threshold_v, 0) });
  draw("power", { type: "bar", data: { labels: times.map(dayLabel), datasets },
    options: { scales: { y: { beginAtZero: true, title: { display: true, text: t("data.unit.minutes") } } } } },
  t("data.power.title"));
  table("power", [t("data.col.day"), ...districts.map(districtName)],
    times.map((time, i) => [dayLabel(time), ...datasets.map((d) => (d.data[i] === null ? "–" : number(d.data[i], 0)))]));
}

function renderTraffic(body) {
  const { districts, times, datasets } = byDistrict(body.data, "start_ms", (r) => r.speed_kmh);
  for (const d of datasets) { d.fill = false; d.tension = 0.2; d.spanGaps = true; }
  draw("traffic", { type: "line", data: { labels: times.map(hourLabel), datasets },
    options: { scales: { y: { beginAtZero: true, title: { display: true, text: "km/h" } } } } }, t("data.traffic.title"));
  table("traffic", [t("data.col.hour"), ...districts.map(districtName)],
    times.map((time, i) => [hourLabel(time), ...datasets.map((d) => (d.data[i] === null ? "–" : number(d.data[i], 1)))]));
}

function renderComplaints(body) {
  $("complaints-figure").textContent = t("data.complaints.figure", { received: number(body.received),
    answered: number(body.answered),
    hours: body.median_hours_to_answer === null ? "–" : number(body.median_hours_to_answer, 1) });
  draw("complaints", { type: "bar", data: { labels: body.data.map((d) => dayLabel(d.start_ms)), datasets: [
    { label: t("data.complaints.received"), data: body.data.map((d) => d.received), backgroundColor: PALETTE[1] },
    { label: t("data.complaints.answered"), data: body.data.map((d) => d.answered), backgroundColor: PALETTE[2] }] },
  options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } } }, t("data.complaints.title"));
  table("complaints", [t("data.col.day"), t("data.complaints.received"), t("data.complaints.answered"),
    t("data.complaints.median")], body.data.map((d) => [dayLabel(d.start_ms), number(d.received), number(d.answered),
    d.median_hours_to_answer === null ? "–" : number(d.median_hours_to_answer, 1)]));
}

function renderBeds(body) {
  const labels = body.data.map((r) => t("bed_class." + r.bed_class));
  draw("beds", { type: "bar", data: { labels, datasets: [
    { label: t("data.beds.free"), data: body.data.map((r) => r.beds_free), backgroundColor: PALETTE[2] },
    { label: t("data.beds.capacity"), data: body.data.map((r) => r.capacity), backgroundColor: PALETTE[7] }] },
  options: { indexAxis: "y", scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } } }, t("data.beds.title"));
  table("beds", [t("data.beds.class"), t("data.beds.free"), t("data.beds.capacity")],
    body.data.map((r, i) => [labels[i], number(r.beds_free), number(r.capacity)]));
}

const RENDER = { water: renderWater, power: renderPower, traffic: renderTraffic, complaints: renderComplaints,
  beds: renderBeds };

const FILE_FORMATS = [["csv", "CSV"], ["json", "JSON"], ["ngsild", "NGSI-LD"]];
let catalogue = null; // /opendata/datasets: the published datasets (the policy closed the others)
let loaded = false; // every route answered (or failed) once

function link(href, text) {
  const a = el("a", "", text);
  a.href = href;
  return a;
}

function cityMonth(iso) {
  return new Intl.DateTimeFormat("en-CA", { timeZone: publicPage.city.time_zone, year: "numeric",
    month: "2-digit" }).format(new Date(iso));
}

// each published dataset: its title (a link to its page of periods), its licence, and this month's files
function datasetItem(dataset) {
  const item = el("li");
  item.dataset.dataset = dataset.id;
  item.append(link(dataset.page, dataset.title[publicPage.lang] || dataset.title.en || dataset.id));
  const files = el("span", "files");
  if (dataset.start) {
    const month = cityMonth(dataset.end);
    files.append(" ", t("data.datasets.files", { month }), " ");
    FILE_FORMATS.forEach(([fmt, label], i) => {
      if (i) files.append(" · ");
      files.append(link(`/opendata/download/${encodeURIComponent(dataset.id)}/${month}.${fmt}`, label));
    });
  } else {
    files.append(" ", t("data.datasets.empty"));
  }
  item.append(files);
  return item;
}

function renderDatasets() {
  const summaries = Object.entries(SUMMARIES).map(([name, path]) => {
    const item = el("li");
    item.append(link(path, t("data." + name + ".title")), el("span", "dim", " · JSON"));
    return item;
  });
  $("summaries").replaceChildren(...summaries);
  if (catalogue) $("datasets").replaceChildren(...catalogue.data.map(datasetItem));
}

async function loadCatalogue() {
  try {
    const response = await fetch("/opendata/datasets");
    if (!response.ok) throw new Error(String(response.status));
    catalogue = await response.json();
  } catch (error) {
    catalogue = null;
  }
}

function renderAll() {
  for (const [name, render] of Object.entries(RENDER)) if (summaries[name]) render(summaries[name]);
  renderDatasets();
  $("error").hidden = !loaded || (catalogue !== null && Object.keys(SUMMARIES).every((name) => summaries[name] !== null));
}

async function loadSummaries() {
  await Promise.all([loadCatalogue(), ...Object.entries(SUMMARIES).map(async ([name, path]) => {
    try {
      const response = await fetch(path);
      if (!response.ok) throw new Error(String(response.status));
      summaries[name] = await response.json();
    } catch (error) {
      summaries[name] = null;
    }
  })]);
  loaded = true;
  renderAll();
}

// what the Chromium test asks the page: each chart's labels and values as drawn
window.dataPage = {
  chart: (name) => (charts[name] ? { labels: charts[name].data.labels, datasets: charts[name].data.datasets.map((d) =>
    ({ label: d.label, data: d.data, drawn: charts[name].getDatasetMeta(charts[name].data.datasets.indexOf(d)).data.length })) } : null),
  ready: () => loaded,
};

publicPage.start(renderAll).then(() => {
  loadSummaries();
  setInterval(loadSummaries, REFRESH_MS);
});
