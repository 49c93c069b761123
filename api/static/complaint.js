// The complaint page (pengaduan): file a complaint through Open311 (/open311/v2/requests.json, a form
// post; the photo as `media`), get a tracking code, and follow it (/open311/v2/requests/<code>.json):
// status and the city's public answer. The place is a district, or a point tapped on the map (Leaflet,
// offline, the profile's district boundaries) or the phone's position. Contact details are optional.
"use strict";

const CATEGORIES = ["no_water", "low_pressure", "leak", "power_out", "street_light", "traffic_light", "flooding",
  "other"];
const MINE_STORE = "cityComplaints";
let point = null;
let marker = null;
let map = null;
let tracked = null;

function categoryOptions() {
  const select = $("category");
  const keep = select.value;
  select.replaceChildren(...CATEGORIES.map((code) => {
    const option = el("option", "", t("complaint.category." + code));
    option.value = code;
    return option;
  }));
  select.value = keep || CATEGORIES[0];
  $("category-help").textContent = t("complaint.category_help." + select.value);
}

function districtOptions() {
  const select = $("district");
  const keep = select.value;
  const none = el("option", "", t("complaint.pick_district"));
  none.value = "";
  select.replaceChildren(none, ...publicPage.city.districts.features.map((f) => {
    const option = el("option", "", districtName(f.properties.slug));
    option.value = f.properties.slug;
    return option;
  }));
  select.value = keep;
}

function setPoint(lat, lon) {
  point = { lat, lon };
  if (marker) marker.setLatLng([lat, lon]);
  else if (map) marker = L.circleMarker([lat, lon], { radius: 9 }).addTo(map);
  $("point").textContent = t("complaint.point_set", { lat: number(lat, 5), lon: number(lon, 5) });
}

function drawMap() {
  if (map || typeof L === "undefined") return;
  map = L.map("map", { attributionControl: false });
  const layer = L.geoJSON(publicPage.city.districts, { style: { weight: 1, fillOpacity: 0.1 } }).addTo(map);
  map.fitBounds(layer.getBounds());
  map.on("click", (event) => setPoint(event.latlng.lat, event.latlng.lng));
}

function render() {
  categoryOptions();
  districtOptions();
  drawMap();
  if (tracked) showTracked(tracked);
}

function problem(status, body) {
  const text = Array.isArray(body) && body[0] ? String(body[0].description || "") : "";
  if (status === 429) return t("complaint.error.too_many");
  if (status === 413) return t("complaint.error.photo_large");
  if (text.startsWith("photo_")) return t("complaint.error.photo_type");
  if (text.startsWith("lat")) return t("complaint.error.outside");
  if (text.startsWith("description")) return t("complaint.error.description");
  if (text.startsWith("give")) return t("complaint.error.place");
  return t("complaint.error.other");
}

async function send(event) {
  event.preventDefault();
  $("file-error").textContent = "";
  const form = new FormData();
  form.set("service_code", $("category").value);
  if (point) { form.set("lat", point.lat.toFixed(6)); form.set("long", point.lon.toFixed(6)); }
  if ($("district").value) form.set("district", $("district").value);
  form.set("description", $("description").value);
  if ($("address").value.trim()) form.set("address_string", $("address").value.trim());
  const [first, ...rest] = $("name").value.trim().split(/\s+/);
  if (first) form.set("first_name", first.slice(0, 60)); // the API refuses a longer name part
  if (rest.length) form.set("last_name", rest.join(" ").slice(0, 60));
  if ($("phone").value.trim()) form.set("phone", $("phone").value.trim());
  if ($("email").value.trim()) form.set("email", $("email").value.trim());
  if ($("photo").files[0]) form.set("media", $("photo").files[0]);
  $("send").disabled = true;
  try {
    const response = await fetch("/open311/v2/requests.json", { method: "POST", body: form });
    const body = await response.json().catch(() => null);
    if (!response.ok) { $("file-error").textContent = problem(response.status, body); return; }
    const code = body[0].service_request_id;
    const mine = JSON.parse(localStorage.getItem(MINE_STORE) || "[]");
    if (!mine.includes(code)) localStorage.setItem(MINE_STORE, JSON.stringify([code, ...mine].slice(0, 20)));
    $("filed-code").textContent = code;
    $("filed").hidden = false;
    $("file").hidden = true;
    $("code").value = code;
    track();
  } catch (error) {
    $("file-error").textContent = t("citizen.load_failed");
  } finally {
    $("send").disabled = false;
  }
}

function showTracked(r) {
  $("t-code").textContent = r.service_request_id;
  $("t-category").textContent = t("complaint.category." + r.service_code);
  $("t-where").textContent = r.address || "";
  $("t-when").textContent = t("complaint.filed_at", { when: localTime(Date.parse(r.requested_datetime)) });
  $("t-status").textContent = t("complaint.status." + r.status);
  $("t-description").textContent = r.description === null ? t("complaint.awaiting_moderation") : r.description;
  $("t-answer").textContent = r.status_notes || t("complaint.no_answer");
  $("tracked").hidden = false;
}

async function track() {
  const code = $("code").value.trim().toUpperCase();
  $("track-error").textContent = "";
  if (!code) return;
  try {
    const response = await fetch(`/open311/v2/requests/${encodeURIComponent(code)}.json`);
    if (response.status === 404) { $("track-error").textContent = t("complaint.not_found"); $("tracked").hidden = true; return; }
    if (!response.ok) throw new Error(String(response.status));
    tracked = (await response.json())[0];
    showTracked(tracked);
  } catch (error) {
    $("track-error").textContent = t("citizen.load_failed");
  }
}

$("file").addEventListener("submit", send);
$("track-button").addEventListener("click", track);
$("category").addEventListener("change", () => {
  $("category-help").textContent = t("complaint.category_help." + $("category").value);
});
$("locate").addEventListener("click", () => {
  if (!navigator.geolocation) return;
  navigator.geolocation.getCurrentPosition((p) => setPoint(p.coords.latitude, p.coords.longitude),
    () => { $("point").textContent = t("beds.no_position"); }, { timeout: 10000 });
});

publicPage.start(render).then(() => {
  const asked = new URLSearchParams(location.search).get("code");
  const mine = JSON.parse(localStorage.getItem(MINE_STORE) || "[]");
  if (asked || mine.length) { $("code").value = asked || mine[0]; track(); }
});
