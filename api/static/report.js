// The weekly report: GET /reports/weekly?week=YYYY-Www with the key (staff.js), one table per section in
// the order the API gives them (api/reports/weekly.py SECTIONS: a new section needs no change here), its
// columns titled report.col.<column>, its notes, and a CSV link (GET /reports/weekly.csv, fetched with the
// key, saved as a file). Keyboard: the week field, Show, then each section's CSV button.
"use strict";

let shown = null; // the last report, drawn again when the language changes

function isoWeek(date) {
  const day = new Date(Date.UTC(date.getFullYear(), date.getMonth(), date.getDate()));
  const weekday = day.getUTCDay() || 7;
  day.setUTCDate(day.getUTCDate() + 4 - weekday);
  const first = new Date(Date.UTC(day.getUTCFullYear(), 0, 1));
  const week = Math.ceil(((day - first) / 86400000 + 1) / 7);
  return day.getUTCFullYear() + "-W" + String(week).padStart(2, "0");
}

function cell(value, column) {
  if (value === null || value === undefined) return "-";
  if (column === "dma") return String(value);
  if (typeof value === "number") return new Intl.NumberFormat(locale(), { maximumFractionDigits: 2 }).format(value);
  return String(value);
}

function sectionNode(section) {
  const box = el("section", "report-section");
  box.id = "section-" + section.key;
  box.append(el("h2", "", t(section.title)));
  if (!section.rows.length) box.append(el("p", "empty", t("report.no_rows")));
  else {
    const table = el("table", "report-table");
    const head = el("tr");
    for (const column of section.columns) head.append(el("th", "", t("report.col." + column)));
    const thead = el("thead");
    thead.append(head);
    table.append(thead);
    const body = el("tbody");
    for (const row of section.rows) {
      const line = el("tr");
      for (const column of section.columns) line.append(el("td", "", cell(row[column], column)));
      body.append(line);
    }
    table.append(body);
    box.append(table);
  }
  if (section.bursts && section.bursts.length) {
    box.append(el("h3", "", t("report.bursts", { n: section.bursts.length })));
    const list = el("ul");
    for (const b of section.bursts) {
      list.append(el("li", "", t("report.burst", { dma: b.dma, when: localTime(b.t_ms), rise: cell(b.rise_lps) })));
    }
    box.append(list);
  }
  for (const note of section.notes || []) box.append(el("p", "dim", t(note)));
  const csv = el("button", "", t("report.csv"));
  csv.type = "button";
  csv.addEventListener("click", () => download(section.key));
  box.append(csv);
  return box;
}

function localTime(ms) {
  return new Intl.DateTimeFormat(locale(), { timeZone: city.time_zone, day: "numeric", month: "short",
    hour: "2-digit", minute: "2-digit", timeZoneName: "short" }).format(new Date(ms));
}

function render() {
  if (!shown) return;
  $("sections").replaceChildren(...shown.sections.map(sectionNode));
}

async function download(key) {
  const week = $("week").value;
  const response = await keyed(`/reports/weekly.csv?week=${encodeURIComponent(week)}&section=${encodeURIComponent(key)}`,
    {}, showLogin);
  if (!response.ok) { $("report-error").textContent = (await response.json()).message; return; }
  const link = el("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = `report-${week}-${key}.csv`;
  link.click();
  URL.revokeObjectURL(link.href);
}

let asked = 0; // the latest load: an earlier week's answer that comes after it is not shown

async function load(event) {
  if (event) event.preventDefault();
  const ticket = ++asked;
  $("report-error").textContent = "";
  $("report-status").textContent = t("report.loading");
  try {
    const response = await keyed(`/reports/weekly?week=${encodeURIComponent($("week").value)}`, {}, showLogin);
    const body = await response.json();
    if (ticket !== asked) return;
    if (!response.ok) throw new Error(body.message);
    shown = body;
    $("report-status").textContent = t("report.loaded", { week: body.week });
    render();
  } catch (error) {
    if (ticket !== asked) return;
    $("report-status").textContent = "";
    if (error.message !== "unauthorized") $("report-error").textContent = error.message;
  }
}

function showLogin(message) {
  $("report").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("key").focus();
}

function start() {
  if (!apiKey) { showLogin(""); return; }
  $("login").hidden = true;
  $("report").hidden = false;
  if (!$("week").value) $("week").value = isoWeek(new Date(Date.now() - 7 * 86400000)); // last week: complete
  load();
}

async function setLanguage(code) {
  await applyLanguage(code);
  render();
}

onLanguageChange(setLanguage);
onSignIn(start);
$("pick").addEventListener("submit", load);
(async () => {
  await loadCity();
  await applyLanguage(pickLanguage());
  start();
})();
