// Alarm management on the control-room board (ISA-18.2, EEMUA 191): priority badges, shelving,
// devices under maintenance, groups under a root alarm, the flood banner (and grouping by
// district and utility while it lasts), and the lists of shelved, chattering and stale alarms.
// Loaded before control-room.js, whose helpers (t, el, $, api, alerts, ...) it uses when called.
// Every control is a button, select or input: Tab, Enter and Space work as well as the mouse.
"use strict";

const PRIORITY_ORDER = { high: 0, medium: 1, low: 2 };
const SHELVE_MINUTES = [15, 60, 240, 480];
const SHELVERS = ["operator", "admin"];
const ALARM_STATE_REFRESH_MS = 15000;

let alarmState = null; // GET /alarms/state
let myRole = "";
const expandedGroups = new Set(); // "district|kind" groups opened during a flood, root ids opened

// An alarm the board shows on its own (the API's `board=true`).
function alarmOnBoard(a) {
  return !a.resolved && !a.shelved_until_ms && !a.suppressed && !a.chattering && !a.group_id
    && a.priority !== "advisory";
}

function byPriority(a, b) {
  return (PRIORITY_ORDER[a.priority] ?? 2) - (PRIORITY_ORDER[b.priority] ?? 2);
}

function duration(minutes) {
  if (minutes < 1) return t("duration.s", { n: numberFormat(0).format(minutes * 60) });
  if (minutes < 90) return t("duration.min", { n: numberFormat(0).format(minutes) });
  return t("duration.h", { n: numberFormat(minutes % 60 ? 1 : 0).format(minutes / 60) });
}

// The shelving times offered: the usual ones up to the configured maximum, and the maximum itself.
function shelveChoices() {
  const max = (alarmState ? alarmState.shelve_max_s : 28800) / 60;
  const choices = SHELVE_MINUTES.filter((m) => m < max);
  choices.push(max);
  return choices;
}

// Called by alertCard: the priority badge, and the shelve controls for those who may shelve.
function decorateCard(card, a, note) {
  const badge = el("span", "prio " + (a.priority || "low"), t("priority." + (a.priority || "low")));
  card.querySelector(".title").prepend(badge);
  card.classList.add("prio-" + (a.priority || "low"));
  const cause = el("select", "cause");
  cause.setAttribute("aria-label", t("cause.aria", { id: a.id }));
  for (const value of ["", "fault", "false_alarm", "planned_work"]) {
    const option = el("option", "", t("cause." + (value || "unsaid")));
    option.value = value;
    cause.append(option);
  }
  card.querySelector("button.resolve").before(cause);
  const group = el("div", "group");
  group.hidden = true;
  card.querySelector(".status").after(group);
  if (!SHELVERS.includes(myRole)) return;
  const select = el("select", "shelve-for");
  select.setAttribute("aria-label", t("shelve.for_aria", { id: a.id }));
  for (const minutes of shelveChoices()) {
    const option = el("option", "", duration(minutes));
    option.value = String(minutes);
    select.append(option);
  }
  const shelve = el("button", "shelve", t("button.shelve"));
  shelve.addEventListener("click", () => {
    if (!note.value.trim()) { note.focus(); note.placeholder = t("shelve.reason_required"); return; }
    act(a.id, "shelve", { minutes: Number(select.value), reason: note.value }, card);
  });
  card.querySelector(".actions").append(select, shelve);
}

// What the operator said the alarm was, sent with the resolution (false alarms teach the tuning).
function resolveCause(card) {
  const select = card.querySelector("select.cause");
  return select && select.value ? { cause: select.value } : {};
}

// ------------------------------------------------------------ groups and flood

// Open children by root id, in one pass over the alerts (a board of hundreds redraws in a frame).
function childrenByRoot() {
  const children = new Map();
  for (const a of alerts.values()) {
    if (!a.group_id || a.resolved) continue;
    if (!children.has(a.group_id)) children.set(a.group_id, []);
    children.get(a.group_id).push(a);
  }
  return children;
}

function childLine(a) {
  const rule = "rule." + a.rule in catalogue ? t("rule." + a.rule) : a.rule;
  return el("li", "child", t("group.child", { rule, device: a.device, kind: t("kind." + a.kind) }));
}

// The "+N" line of a card: the children of a root (listed when opened), or in a flood the other alarms of
// its district and utility (their cards shown when opened).
function groupLine(card, members, key, list) {
  const box = card.querySelector(".group");
  if (!members.length) { box.hidden = true; box.replaceChildren(); return; }
  const open = expandedGroups.has(key);
  const toggle = el("button", "group-toggle", t(open ? "group.hide" : "group.show", { n: members.length }));
  toggle.setAttribute("aria-expanded", String(open));
  toggle.addEventListener("click", () => {
    if (expandedGroups.has(key)) expandedGroups.delete(key); else expandedGroups.add(key);
    renderAlerts();
    const again = cards.get(card.dataset.alertId);
    if (again) again.card.querySelector(".group-toggle").focus();
  });
  box.replaceChildren(toggle);
  if (open && list) box.append(el("ul", "children", undefined));
  if (open && list) box.querySelector("ul").append(...members.map(childLine));
  box.hidden = false;
}

// Called by renderAlerts with the cards in board order: groups, and the flood's grouping.
function afterRender(open) {
  const flood = Boolean(alarmState && alarmState.flood.active);
  const firstOf = new Map(); // district|kind -> the first (highest) card's alert
  const children = childrenByRoot();
  const peersOf = new Map(); // district|kind -> the board's alarms of it (only in a flood)
  if (flood) {
    for (const a of open) {
      const key = a.district + "|" + a.kind;
      if (!peersOf.has(key)) peersOf.set(key, []);
      peersOf.get(key).push(a);
    }
  }
  for (const a of open) {
    const entry = cards.get(a.id);
    if (!entry) continue;
    const key = a.district + "|" + a.kind;
    let hidden = false;
    if (flood && firstOf.has(key)) hidden = !expandedGroups.has(key);
    else if (flood) firstOf.set(key, a);
    entry.card.hidden = hidden;
    entry.card.classList.toggle("in-flood-group", flood && firstOf.get(key) !== a);
    const peers = flood && firstOf.get(key) === a ? peersOf.get(key).filter((o) => o !== a) : [];
    if (peers.length) groupLine(entry.card, peers, key, false);
    else groupLine(entry.card, children.get(a.id) || [], a.id, true);
  }
  renderFlood();
}

function renderFlood() {
  const banner = $("flood");
  const flood = alarmState && alarmState.flood;
  banner.hidden = !(flood && flood.active);
  if (flood) {
    banner.textContent = t("flood.banner", { n: flood.new_alarms, minutes: numberFormat(0).format(flood.window_s / 60) });
  }
}

// ------------------------------------------------------------ the alarm-management panel

function renderAlarmLists() {
  if (!alarmState) return;
  const s = alarmState;
  $("n-shelved").textContent = s.shelved.length;
  $("n-maintenance").textContent = s.maintenance.length;
  $("shelved").replaceChildren(...s.shelved.map(shelvedItem));
  $("maintenance").replaceChildren(...s.maintenance.map((m) => el("li", "", t("maintenance.item", {
    device: m.device, until: localTime(m.until_ms, true), who: m.started_by, note: m.note }))));
  $("n-advisories").textContent = s.advisories.length;
  $("advisories").replaceChildren(...s.advisories.map((a) => el("li", "", t("chattering.item", {
    device: a.device, rule: "rule." + a.rule in catalogue ? t("rule." + a.rule) : a.rule }))));
  $("chattering").replaceChildren(...s.chattering.map((a) => el("li", "", t("chattering.item", {
    device: a.device, rule: "rule." + a.rule in catalogue ? t("rule." + a.rule) : a.rule }))));
  $("stale").replaceChildren(...s.stale.map((a) => el("li", "", t("stale.item", {
    device: a.device, rule: "rule." + a.rule in catalogue ? t("rule." + a.rule) : a.rule, since: ago(a.started_ms) }))));
  for (const id of ["shelved", "maintenance", "advisories", "chattering", "stale"]) $("no-" + id).hidden = $(id).children.length > 0;
}

function shelvedItem(a) {
  const item = el("li", "shelved-item");
  item.dataset.alertId = a.id;
  const rule = "rule." + a.rule in catalogue ? t("rule." + a.rule) : a.rule;
  item.append(el("span", "", t("shelved.item", { rule, device: a.device, until: localTime(a.shelved_until_ms, false),
    who: a.shelved_by, reason: a.shelved_reason })));
  if (SHELVERS.includes(myRole)) {
    const back = el("button", "unshelve", t("button.unshelve"));
    back.addEventListener("click", () => act(a.id, "unshelve", {}, item).then(loadAlarmState));
    item.append(back);
  }
  return item;
}

async function loadAlarmState() {
  const before = alarmState ? alarmState.shelve_max_s : null;
  try {
    alarmState = await api("/alarms/state");
  } catch (error) { return; } // shown as it was; tried again shortly
  if (alarmState.shelve_max_s !== before) for (const entry of cards.values()) entry.signature = ""; // its choices
  renderAlarmLists();
  scheduleRender();
}

let stateTimer = null;
function scheduleAlarmState() { // a burst of stream events costs one request
  if (stateTimer) return;
  stateTimer = setTimeout(() => { stateTimer = null; loadAlarmState(); }, 300);
}

function alarmHello(role) {
  myRole = role;
  for (const entry of cards.values()) entry.signature = ""; // shelve controls follow the role
  loadAlarmState();
}

setInterval(() => { if (apiKey) loadAlarmState(); }, ALARM_STATE_REFRESH_MS);
