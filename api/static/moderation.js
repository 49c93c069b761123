// The moderation queue: complaints whose text, point and photo are not public until an operator
// approves them (GET /complaints?moderation=pending, POST /complaints/{id}/moderate). The key is the
// control room's (this browser's localStorage); texts of our own from the catalogues; a citizen's
// text goes in with textContent only. Keyboard: Tab to a complaint, then A approves and R rejects
// (or Tab to its buttons); the list is read again every REFRESH_MS and after every decision.
// The key, the language, t() and keyed API calls: staff.js.
"use strict";

const MODERATORS = ["operator", "admin"]; // the roles POST /complaints/{id}/moderate lets in (api/routes/complaints.py)
const REFRESH_MS = 10000;
const PAGE = 100;

let me = null; // {user, role} from the alert stream's hello
let pending = { data: [], count: 0 };
const thumbs = new Map(); // complaint id -> object URL of its photo (fetched with the key)

function localTime(ms) {
  return new Intl.DateTimeFormat(locale(), { timeZone: city.time_zone, day: "numeric", month: "short",
    hour: "2-digit", minute: "2-digit", timeZoneName: "short" }).format(new Date(ms));
}

async function setLanguage(code) {
  await applyLanguage(code);
  if (me) showWho();
  render();
}

onLanguageChange(setLanguage);

// ------------------------------------------------------------ API and sign-in

// The response; a 401 shows the sign-in form and throws (staff.js).
function api(path, options = {}) { return keyed(path, options, showLogin); }

// Who the key belongs to: the first event of the alert stream (the API has no other "who am I").
async function whoAmI() {
  const abort = new AbortController();
  const response = await api("/alerts/stream", { signal: abort.signal });
  if (!response.ok) throw new Error((await response.json()).message); // a hospital's key: no staff routes
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    while (!buffer.includes("\n\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
    }
  } finally { abort.abort(); }
  const data = buffer.split("\n").find((line) => line.startsWith("data:"));
  return JSON.parse(data.slice(5));
}

function showLogin(message) {
  me = null;
  $("queue").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("key").focus();
}

function showWho() { $("who").textContent = t("who", { user: me.user, role: me.role }); }

onSignIn(start);

// ------------------------------------------------------------ the queue

async function thumbnail(c, img) {
  if (!thumbs.has(c.id)) {
    const response = await api(`/complaints/${encodeURIComponent(c.id)}/photo`);
    if (!response.ok) return;
    thumbs.set(c.id, URL.createObjectURL(await response.blob()));
  }
  img.src = thumbs.get(c.id);
}

function item(c) {
  const li = el("li", "complaint");
  li.dataset.complaintId = c.id;
  li.tabIndex = 0;
  li.setAttribute("aria-label", t("moderation.item_aria", { code: c.id }));
  const body = el("div", "body");
  body.append(
    el("div", "meta", t("moderation.meta", { category: t("complaint.category." + c.service_code),
      district: districtName(c.district), when: localTime(c.requested_ms), code: c.id })),
    el("p", "text", c.description));
  li.append(body);
  if (c.has_photo) {
    const img = el("img", "thumb");
    img.alt = t("moderation.photo_alt");
    thumbnail(c, img).catch(() => {});
    li.append(img);
  }
  const actions = el("div", "actions");
  const approve = el("button", "approve", t("moderation.approve"));
  const reject = el("button", "reject", t("moderation.reject"));
  approve.addEventListener("click", () => decide(c.id, true));
  reject.addEventListener("click", () => decide(c.id, false));
  actions.append(approve, reject);
  li.append(actions);
  li.addEventListener("keydown", (event) => {
    if (event.target !== li || event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key.toLowerCase();
    if (key === "a" || key === "r") { event.preventDefault(); decide(c.id, key === "a"); }
  });
  return li;
}

function render() {
  if (!city || $("queue").hidden) return;
  const focused = document.activeElement.closest ? document.activeElement.closest("li.complaint") : null;
  $("pending").replaceChildren(...pending.data.map(item));
  $("mod-count").textContent = t("moderation.count", { n: pending.count });
  $("no-pending").hidden = pending.count > 0;
  // a refresh keeps the focus where the operator was
  const again = focused && [...$("pending").children].find((li) => li.dataset.complaintId === focused.dataset.complaintId);
  if (again) again.focus();
}

async function load() {
  const response = await api(`/complaints?moderation=pending&limit=${PAGE}`);
  const body = await response.json();
  if (!response.ok) { $("mod-error").textContent = t("moderation.failed", { error: body.message || response.status }); return; }
  $("mod-error").textContent = "";
  pending = body;
  for (const [id, url] of thumbs) {
    if (!pending.data.some((c) => c.id === id)) { URL.revokeObjectURL(url); thumbs.delete(id); }
  }
  render();
}

// One action decides; the next complaint takes the focus so a queue can be worked through by keyboard.
async function decide(id, approve) {
  const index = pending.data.findIndex((c) => c.id === id);
  const response = await api(`/complaints/${encodeURIComponent(id)}/moderate`,
    { method: "POST", body: JSON.stringify({ approve }) });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    $("mod-error").textContent = t("moderation.failed", { error: body.message || response.status });
    return;
  }
  $("mod-error").textContent = "";
  await load();
  const next = $("pending").children[Math.min(index, $("pending").children.length - 1)];
  if (next) next.focus();
}

// ------------------------------------------------------------ start

async function start() {
  if (!apiKey) { showLogin(); return; }
  try { me = await whoAmI(); } catch (error) {
    if (error.message !== "unauthorized") showLogin(t("moderation.failed", { error: error.message }));
    return; // 401: api() has shown the sign-in form
  }
  $("login").hidden = true;
  showWho();
  if (!MODERATORS.includes(me.role)) {
    $("queue").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = t("moderation.not_allowed", { role: me.role });
    return;
  }
  $("queue").hidden = false;
  await load();
}

async function boot() {
  await loadCity();
  await setLanguage(pickLanguage());
  await start();
  setInterval(() => { if (me && !$("queue").hidden) load().catch(() => {}); }, REFRESH_MS);
}

boot();
