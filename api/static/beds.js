// "Where is a free bed now": the public bed list (/public/hospitals/beds) by bed class, by district
// or nearest first (the phone's position, asked only when the citizen picks "nearest"), with the
// hospital's phone and the doctors on duty. A ward not updated for an hour shows when it was last
// told, never a free bed.
"use strict";

const BED_CLASSES = ["icu", "nicu", "picu", "isolation", "class_1", "class_2", "class_3", "vip"];
let position = null;
let last = null;

function classOptions() {
  const select = $("bed-class");
  const keep = select.value;
  const any = el("option", "", t("beds.any_class"));
  any.value = "";
  select.replaceChildren(any, ...BED_CLASSES.map((c) => {
    const option = el("option", "", t("bed_class." + c));
    option.value = c;
    return option;
  }));
  select.value = keep;
  const order = $("order");
  const sort = order.value || "district";
  order.replaceChildren(...["district", "near"].map((o) => {
    const option = el("option", "", t("beds.order_" + o));
    option.value = o;
    return option;
  }));
  order.value = sort;
}

function wardLine(w) {
  const line = el("div", "ward");
  line.dataset.bedClass = w.bed_class;
  const name = el("span", "", t("beds.ward", { class: t("bed_class." + w.bed_class), name: w.name }));
  let state;
  if (w.stale) {
    state = el("span", "stale", w.updated_ms ? t("beds.stale_since", { when: localTime(w.updated_ms) }) : t("beds.unknown"));
  } else if (w.beds_free > 0) {
    state = el("span", "free", t("beds.free_of", { free: number(w.beds_free), capacity: number(w.capacity) }));
  } else {
    state = el("span", "full", t("beds.full"));
  }
  line.append(name, state);
  return line;
}

function hospitalCard(h) {
  const card = el("article", "card");
  card.classList.add("hospital");
  card.dataset.hospital = h.id;
  const where = [t("hospital_type." + h.type), districtName(h.district)];
  if (h.distance_km !== null) where.push(t("beds.distance", { km: number(h.distance_km, 1) }));
  const phone = el("a", "phone", t("beds.call", { phone: h.phone }));
  phone.href = "tel:" + h.phone.replace(/[^0-9+]/g, "");
  card.append(el("h2", "", h.name), el("div", "dim", where.join(" · ")), el("div", "dim", h.address), phone);
  for (const w of h.wards) card.append(wardLine(w));
  const doctors = el("div", "doctors");
  doctors.append(el("div", "dim", t("beds.doctors")));
  if (!h.doctors_on_duty.length) doctors.append(el("div", "dim", t("beds.no_doctors")));
  for (const d of h.doctors_on_duty) {
    doctors.append(el("div", "doctor", t("beds.doctor", { doctor: d.doctor, speciality: d.speciality,
      until: localTime(d.until_ms) })));
  }
  card.append(doctors);
  return card;
}

function render() {
  if (!last) return;
  $("hospitals").replaceChildren(...last.data.map(hospitalCard));
  $("none").hidden = last.data.length > 0;
  $("as-of").textContent = t("beds.as_of", { when: localTime(last.as_of_ms) });
}

let asked = 0; // the latest load: the answer to filters changed since is not shown

async function load() {
  const ticket = ++asked;
  const params = new URLSearchParams();
  if ($("bed-class").value) params.set("bed_class", $("bed-class").value);
  if ($("only-free").checked) params.set("only_free", "true");
  if ($("order").value === "near" && position) {
    params.set("lat", position.lat.toFixed(5));
    params.set("lon", position.lon.toFixed(5));
  }
  try {
    const response = await fetch("/public/hospitals/beds?" + params);
    if (!response.ok) throw new Error(String(response.status));
    const body = await response.json();
    if (ticket !== asked) return;
    last = body;
    $("error").textContent = "";
    render();
  } catch (error) {
    if (ticket === asked) $("error").textContent = t("citizen.load_failed");
  }
}

function askPosition() {
  if (!navigator.geolocation) { $("where").textContent = t("beds.no_position"); return; }
  $("where").textContent = t("beds.finding_position");
  navigator.geolocation.getCurrentPosition((p) => {
    position = { lat: p.coords.latitude, lon: p.coords.longitude };
    $("where").textContent = "";
    load();
  }, () => { $("where").textContent = t("beds.no_position"); }, { timeout: 10000, maximumAge: 60000 });
}

$("bed-class").addEventListener("change", load);
$("only-free").addEventListener("change", load);
$("order").addEventListener("change", () => ($("order").value === "near" ? askPosition() : load()));
window.beds = { reload: load };

publicPage.start(() => { classOptions(); render(); }).then(load);
setInterval(load, 60000);
