// A hospital's desk: with the hospital's own key (kept in this browser, sent as a bearer header) its
// staff set each ward's free beds now and upload the doctors-on-duty roster, one shift a line:
// "doctor; speciality; start; end" with local times "2026-12-05 07:00" in the city's time zone.
"use strict";

const DESK_KEY_STORE = "cityHospitalKey";
let deskKey = localStorage.getItem(DESK_KEY_STORE) || "";
let mine = null;

async function deskApi(path, options = {}) {
  const headers = { Authorization: "Bearer " + deskKey };
  if (options.body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, Object.assign({}, options, { headers }));
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const error = new Error(body && body.message ? body.message : String(response.status));
    error.status = response.status;
    throw error;
  }
  return body;
}

function drawWards() {
  if (!mine) return;
  $("hospital-name").textContent = mine.hospital.name;
  $("wards").replaceChildren(...mine.wards.map((w) => {
    const card = el("div", "card");
    card.dataset.ward = w.id;
    const input = el("input", "beds");
    input.type = "number";
    input.min = "0";
    input.max = String(w.capacity);
    input.value = w.beds_free === null ? "" : String(w.beds_free);
    input.setAttribute("aria-label", t("desk.free_label", { name: w.name }));
    const save = el("button", "save", t("desk.save"));
    save.type = "button";
    save.addEventListener("click", () => saveWard(w, input.value));
    const when = w.updated_ms ? t("desk.updated", { when: localTime(w.updated_ms), who: w.updated_by || "" }) : t("beds.unknown");
    card.append(el("h2", "", t("beds.ward", { class: t("bed_class." + w.bed_class), name: w.name })),
      el("div", "dim", t("desk.capacity", { capacity: number(w.capacity) })), input, save, el("div", "dim", when));
    return card;
  }));
}

async function saveWard(w, value) {
  try {
    await deskApi(`/hospitals/${encodeURIComponent(mine.hospital.id)}/wards/${encodeURIComponent(w.id)}/beds`,
      { method: "PUT", body: JSON.stringify({ beds_free: Number(value) }) });
    $("saved").textContent = t("desk.saved", { name: w.name });
    await loadMine();
  } catch (error) {
    $("saved").textContent = t("desk.refused", { reason: error.message });
  }
}

// a local time "2026-12-05 07:00" in the city's zone, as epoch ms
function cityTime(text) {
  const match = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2})[:.](\d{2})$/.exec(text.trim());
  if (!match) return NaN;
  const [y, mo, d, h, mi] = match.slice(1).map(Number);
  const guess = Date.UTC(y, mo - 1, d, h, mi);
  const shown = new Date(new Date(guess).toLocaleString("en-US", { timeZone: publicPage.city.time_zone }));
  const asUtc = new Date(new Date(guess).toLocaleString("en-US", { timeZone: "UTC" }));
  return guess - (shown - asUtc);
}

async function uploadRoster() {
  const shifts = [];
  const lines = $("roster").value.split("\n").filter((line) => line.trim());
  for (const [n, line] of lines.entries()) {
    const [doctor, speciality, start, end] = line.split(";").map((part) => (part || "").trim());
    const startMs = cityTime(start || "");
    const endMs = cityTime(end || "");
    if (!doctor || !speciality || Number.isNaN(startMs) || Number.isNaN(endMs)) {
      $("roster-result").textContent = t("desk.roster_bad_line", { n: n + 1 });
      return;
    }
    shifts.push({ doctor, speciality, start_ms: startMs, end_ms: endMs });
  }
  try {
    const saved = await deskApi(`/hospitals/${encodeURIComponent(mine.hospital.id)}/roster`,
      { method: "PUT", body: JSON.stringify({ shifts }) });
    $("roster-result").textContent = t("desk.roster_saved", { n: saved.shifts });
  } catch (error) {
    $("roster-result").textContent = t("desk.refused", { reason: error.message });
  }
}

async function loadMine() {
  mine = await deskApi("/hospitals/mine");
  $("login").hidden = true;
  $("desk").hidden = false;
  drawWards();
}

async function signIn(event) {
  if (event) event.preventDefault();
  deskKey = $("key").value.trim() || deskKey;
  try {
    await loadMine();
    localStorage.setItem(DESK_KEY_STORE, deskKey);
  } catch (error) {
    $("login-error").textContent = t("desk.key_refused");
  }
}

$("login").addEventListener("submit", signIn);
$("upload").addEventListener("click", uploadRoster);
publicPage.start(drawWards).then(() => { if (deskKey) signIn(); });
