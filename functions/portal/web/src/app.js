// The developer portal page. It exchanges the link's token (from the URL
// fragment, removed from the address bar at once) for a session cookie the
// script cannot read, then calls the portal's JSON API with the session's
// CSRF token. Nothing is kept in localStorage or sessionStorage; a new key
// lives only in its dialog until the dialog closes.
import { gauge, requestsChart, routeBars } from "./charts.js";

const $ = (id) => document.getElementById(id);
const state = { csrf: null, session: null, keys: [], series: new Map(), audit: null };

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && state.csrf) headers["x-csrf-token"] = state.csrf;
  let r;
  try {
    r = await fetch("api/" + path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, "network", "The portal could not be reached. Check your connection and try again.");
  }
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    const err = data.error || {};
    const e = new ApiError(r.status, err.code || "error", err.message || `Request failed (${r.status})`);
    if (r.status === 401 && path !== "session") showError(e);
    throw e;
  }
  return data;
}

// ---- views ----

const VIEWS = ["loading", "error", "keys", "usage", "audit"];

function show(view) {
  for (const v of VIEWS) $("view-" + v).hidden = v !== view;
  for (const a of document.querySelectorAll("#nav a[data-view]")) {
    if (a.dataset.view === view) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const title = document.querySelector(`#view-${view} h1`);
  if (title) title.focus();
}

const HINTS = {
  link_invalid: "Portal links work once. Go back to the app and open the portal again.",
  link_expired: "Portal links are valid for a few minutes. Go back to the app and open the portal again.",
  session_required: "Open the portal from the app to start a session.",
  session_expired: "For your security, portal sessions end after a while. Open the portal from the app again.",
  unavailable: "The service is busy. Wait a moment and reload the page.",
};

const TITLES = {
  link_invalid: "This portal link is not valid",
  link_expired: "This portal link has expired",
  session_required: "You are not signed in",
  session_expired: "Your session has expired",
  unavailable: "The portal is unavailable",
};

function showError(e) {
  $("error-title").textContent = TITLES[e.code] || "Something went wrong";
  $("error-message").textContent = e.message;
  $("error-hint").textContent = HINTS[e.code] || "";
  $("nav").hidden = !state.session || ["session_expired", "session_required"].includes(e.code);
  show("error");
}

// ---- formatting ----

const date = (ts) => (ts ? new Date(ts * 1000).toISOString().slice(0, 10) : "—");
function limitsText(l) {
  const parts = [];
  if (l && l.quota) parts.push(`${l.quota.limit} / ${l.quota.period}`);
  if (l && l.rate) parts.push(`${l.rate.limit} per ${l.rate.window} s`);
  return parts.join(", ") || "none";
}
function nextRotation(k) {
  if (k.status !== "active" || !k.rotation_days) return "—";
  return date((k.rotated_at || k.created_at) + k.rotation_days * 86400);
}
function cell(row, label, content) {
  const td = document.createElement("td");
  td.dataset.label = label;
  if (content instanceof Node) td.append(content);
  else td.textContent = content;
  row.append(td);
  return td;
}
function button(text, label, onClick, cls = "small") {
  const b = document.createElement("button");
  b.type = "button";
  b.className = cls;
  b.textContent = text;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

// ---- keys ----

async function loadKeys() {
  $("keys-status").textContent = "Loading keys…";
  const keys = [];
  let cursor = null;
  do {
    const page = await api("GET", "keys" + (cursor ? "?cursor=" + encodeURIComponent(cursor) : ""));
    keys.push(...page.keys);
    cursor = page.next_cursor;
  } while (cursor && keys.length < 500);
  state.keys = keys;
  renderKeys();
  fillKeySelect();
  loadLastUsed();
}

function renderKeys() {
  const n = state.keys.length;
  $("keys-status").textContent = n ? `${n} key${n === 1 ? "" : "s"}.` : "You have no keys yet. Create one to call the API.";
  const body = $("keys-table").querySelector("tbody");
  body.replaceChildren();
  for (const k of state.keys) {
    const tr = document.createElement("tr");
    tr.dataset.keyId = k.key_id;
    cell(tr, "Name", k.name);
    const code = document.createElement("code");
    code.textContent = k.hint;
    cell(tr, "Key", code);
    const st = document.createElement("span");
    st.className = "status-" + k.status;
    st.textContent = k.status;
    cell(tr, "Status", st);
    cell(tr, "Scopes", k.scopes.join(", "));
    cell(tr, "Limits", limitsText(k.limits));
    cell(tr, "Expires", date(k.expires_at));
    cell(tr, "Next rotation", nextRotation(k));
    cell(tr, "Last used", "…").dataset.lastUsed = k.key_id;
    const actions = document.createElement("div");
    actions.className = "row-actions";
    actions.append(
      button("Usage", `Usage of ${k.name}`, () => { location.hash = "#usage/" + k.key_id; }),
      button("Audit", `Audit trail of ${k.name}`, () => { location.hash = "#audit/" + k.key_id; }),
    );
    if (k.status === "active") {
      actions.append(
        button("Roll", `Roll ${k.name}`, (e) => openRotate(k, e.currentTarget)),
        button("Revoke", `Revoke ${k.name}`, (e) => openRevoke(k, e.currentTarget)),
      );
    }
    cell(tr, "Actions", actions);
    body.append(tr);
  }
}

/** Put the key views an answer returned into the list (the listing reads an
 * index that may lag a just-made change by a moment). Never keeps a key. */
function upsert(...views) {
  for (const v of views) {
    const { key, secret_name, ...view } = v;
    const i = state.keys.findIndex((k) => k.key_id === view.key_id);
    if (i >= 0) state.keys[i] = view;
    else state.keys.push(view);
  }
  renderKeys();
  fillKeySelect();
  loadLastUsed();
}

async function seriesOf(keyId, days = 31) {
  const cacheKey = keyId + "/" + days;
  if (!state.series.has(cacheKey)) {
    const from = new Date(Date.now() - (days - 1) * 86400000).toISOString().slice(0, 10);
    state.series.set(cacheKey, api("GET", `usage/keys/${keyId}?from=${from}`));
  }
  return state.series.get(cacheKey);
}

async function loadLastUsed() {
  for (const k of state.keys) {
    const td = document.querySelector(`[data-last-used="${k.key_id}"]`);
    try {
      const s = await seriesOf(k.key_id);
      const used = s.days.filter((d) => d.allowed + d.denied > 0).pop();
      const recent = Date.now() / 1000 - k.created_at < 31 * 86400;
      if (td) td.textContent = used ? used.day : recent ? "never" : "not in 31 days";
    } catch (e) {
      if (td) td.textContent = "—";
    }
  }
}

// ---- dialogs ----

let returnFocus = null;

function openDialog(dialog, opener) {
  returnFocus = opener || document.activeElement;
  dialog.querySelectorAll(".error").forEach((e) => { e.textContent = ""; });
  dialog.showModal();
  const first = dialog.querySelector("input:not([readonly]), select, button.primary, button");
  if (first) first.focus();
}

function closeDialog(dialog) {
  if (dialog.open) dialog.close();
}

for (const dialog of document.querySelectorAll("dialog")) {
  dialog.addEventListener("close", () => {
    if (dialog.id === "secret-dialog") {
      $("secret-value").value = "";
      $("secret-copied").textContent = "";
    }
    if (returnFocus && document.contains(returnFocus)) returnFocus.focus();
    else $("main").focus();
  });
  for (const b of dialog.querySelectorAll("[data-close]")) b.addEventListener("click", () => closeDialog(dialog));
}

function showSecret(key, title) {
  $("secret-title").textContent = title;
  $("secret-value").value = key;
  $("secret-dialog").showModal();
  $("secret-value").focus();
  $("secret-value").select();
}

$("secret-copy").addEventListener("click", async () => {
  const value = $("secret-value").value;
  try {
    await navigator.clipboard.writeText(value);
    $("secret-copied").textContent = "Copied to the clipboard.";
  } catch (e) {
    $("secret-value").select();
    $("secret-copied").textContent = "Select the key and copy it (Ctrl+C or ⌘C).";
  }
});

function fillScopes() {
  const box = $("create-scopes");
  box.replaceChildren();
  state.session.grants.scopes.forEach((scope, i) => {
    const label = document.createElement("label");
    label.className = "check";
    const input = document.createElement("input");
    input.type = "checkbox";
    input.name = "scope";
    input.value = scope;
    input.id = "scope-" + i;
    label.htmlFor = input.id;
    label.append(input, " ", scope);
    box.append(label);
  });
}

$("create-open").addEventListener("click", (e) => {
  $("create-form").reset();
  openDialog($("create-dialog"), e.currentTarget);
});

$("create-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const err = $("create-error");
  const name = $("create-name").value.trim();
  const scopes = [...document.querySelectorAll("#create-scopes input:checked")].map((i) => i.value);
  const extra = $("create-extra").value.trim();
  if (extra) scopes.push(extra);
  if (!name) { err.textContent = "Give the key a name."; $("create-name").focus(); return; }
  if (!scopes.length) { err.textContent = "Choose at least one scope."; return; }
  const body = { name, scopes };
  const quota = $("create-quota").value;
  if (quota) body.limits = { quota: { limit: Number(quota), period: $("create-period").value } };
  const expiry = $("create-expiry").value;
  if (expiry) body.expires_at = Math.floor(Date.parse(expiry + "T23:59:59Z") / 1000);
  try {
    const issued = await api("POST", "keys", body);
    returnFocus = $("create-open");
    closeDialog($("create-dialog"));
    showSecret(issued.key, `Your new key "${issued.name}"`);
    upsert(issued);
  } catch (ex) {
    err.textContent = ex.message;
  }
});

let target = null;

function openRotate(k, opener) {
  target = k;
  $("rotate-name").textContent = k.name;
  openDialog($("rotate-dialog"), opener);
}

$("rotate-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const r = await api("POST", `keys/${target.key_id}/rotate`, { grace_seconds: Number($("rotate-grace").value) });
    returnFocus = $("create-open");
    closeDialog($("rotate-dialog"));
    showSecret(r.successor.key, `The new key for "${target.name}"`);
    upsert(r.rotated, r.successor);
  } catch (ex) {
    $("rotate-error").textContent = ex.message;
  }
});

function openRevoke(k, opener) {
  target = k;
  $("revoke-name").textContent = k.name;
  openDialog($("revoke-dialog"), opener);
  // The safe choice has the focus: Enter does not revoke by accident.
  $("revoke-dialog").querySelector("[data-close]").focus();
}

$("revoke-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const revoked = await api("POST", `keys/${target.key_id}/revoke`, {});
    returnFocus = $("create-open");
    closeDialog($("revoke-dialog"));
    upsert(revoked);
    $("keys-status").textContent = `Key "${target.name}" revoked.`;
  } catch (ex) {
    $("revoke-error").textContent = ex.message;
  }
});

// ---- usage ----

function fillKeySelect() {
  const select = $("usage-key");
  const current = select.value;
  select.replaceChildren(new Option("All keys", ""));
  for (const k of state.keys) select.append(new Option(`${k.name} (${k.hint})`, k.key_id));
  select.value = current;
}

async function loadUsage(keyId) {
  if (keyId !== undefined) $("usage-key").value = keyId;
  const days = Number($("usage-range").value);
  const chosen = $("usage-key").value;
  const keys = chosen ? state.keys.filter((k) => k.key_id === chosen) : state.keys;
  $("usage-status").textContent = "Loading usage…";
  state.series.clear();
  const all = await Promise.all(keys.map((k) => seriesOf(k.key_id, days)));
  // Sum the keys' days (every series covers the same range).
  const sum = new Map();
  const routes = new Map();
  for (const s of all) {
    for (const d of s.days) {
      const t = sum.get(d.day) || { day: d.day, allowed: 0, denied: 0, denied_by_reason: {} };
      t.allowed += d.allowed;
      t.denied += d.denied;
      for (const [r, n] of Object.entries(d.denied_by_reason)) t.denied_by_reason[r] = (t.denied_by_reason[r] || 0) + n;
      sum.set(d.day, t);
      for (const r of d.top_routes) routes.set(r.route, (routes.get(r.route) || 0) + r.count);
    }
  }
  const series = [...sum.values()].sort((a, b) => a.day.localeCompare(b.day));
  const allowed = series.reduce((n, d) => n + d.allowed, 0);
  const denied = series.reduce((n, d) => n + d.denied, 0);
  requestsChart($("chart"), series.length ? series : [{ day: new Date().toISOString().slice(0, 10), allowed: 0, denied: 0, denied_by_reason: {} }]);
  $("chart-summary").textContent = `${allowed} allowed and ${denied} denied requests over ${days} days.`;
  routeBars($("top-routes"), [...routes].map(([route, count]) => ({ route, count })).sort((a, b) => b.count - a.count).slice(0, 10));
  await gauges(keys);
  $("usage-status").textContent = "Usage loaded.";
}

async function gauges(keys) {
  const box = $("gauges");
  box.replaceChildren();
  const today = new Date().toISOString().slice(0, 10);
  const month = today.slice(0, 7);
  for (const k of keys.filter((k) => k.limits && k.limits.quota && k.status !== "revoked")) {
    const s = await seriesOf(k.key_id, 31);
    const q = k.limits.quota;
    const used = s.days
      .filter((d) => (q.period === "day" ? d.day === today : d.day.startsWith(month)))
      .reduce((n, d) => n + d.allowed, 0);
    box.append(gauge(k.name, used, q.limit, q.period));
  }
  if (!box.children.length) {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = "No key here has a quota.";
    box.append(p);
  }
}

$("usage-form").addEventListener("submit", (e) => {
  e.preventDefault();
  loadUsage().catch(reportFailure);
});

// ---- audit ----

async function loadAudit(keyId, more) {
  const k = state.keys.find((x) => x.key_id === keyId);
  $("audit-title").textContent = `Audit trail of ${k ? k.name : keyId}`;
  const body = $("audit-table").querySelector("tbody");
  if (!more) { body.replaceChildren(); state.audit = { keyId, cursor: null }; }
  const q = state.audit.cursor ? "?cursor=" + encodeURIComponent(state.audit.cursor) : "";
  const page = await api("GET", `keys/${keyId}/events${q}`);
  for (const ev of page.events) {
    const tr = document.createElement("tr");
    cell(tr, "When", new Date(ev.at * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC");
    cell(tr, "What", ev.action);
    cell(tr, "By", ev.actor);
    cell(tr, "Version", String(ev.version));
    body.append(tr);
  }
  state.audit.cursor = page.next_cursor;
  $("audit-more").hidden = !page.next_cursor;
}

$("audit-more").addEventListener("click", () => loadAudit(state.audit.keyId, true).catch(reportFailure));

// ---- routing and start ----

function reportFailure(e) {
  if (e.status === 401) return; // already shown
  const status = document.querySelector(".view:not([hidden]) [role=status]");
  if (status) status.textContent = e.message;
  else showError(e);
}

async function route() {
  const [view, arg] = location.hash.replace(/^#/, "").split("/");
  try {
    // The usage and audit views name keys: list them first.
    if (view !== "keys" && !state.keys.length) await loadKeys();
    if (view === "usage") {
      show("usage");
      await loadUsage(arg || "");
    } else if (view === "audit" && arg) {
      show("audit");
      await loadAudit(arg);
    } else {
      show("keys");
      await loadKeys();
    }
  } catch (e) {
    reportFailure(e);
  }
}

async function start() {
  const match = location.hash.match(/^#t=([A-Za-z0-9_-]+)/);
  // The token leaves the address bar and the history before anything else.
  if (match) history.replaceState(null, "", location.pathname + "#keys");
  try {
    state.session = match ? await api("POST", "session", { token: match[1] }) : await api("GET", "session");
  } catch (e) {
    showError(e);
    return;
  }
  state.csrf = state.session.csrf_token;
  fillScopes();
  $("who").textContent = "Signed in as " + state.session.owner;
  $("who").hidden = false;
  $("nav").hidden = false;
  if (state.session.return_url) {
    $("back").href = state.session.return_url;
    $("back-item").hidden = false;
  }
  window.addEventListener("hashchange", route);
  await route();
}

$("sign-out").addEventListener("click", async () => {
  try {
    await api("DELETE", "session");
  } catch (e) {
    // Signed out either way.
  }
  state.session = null;
  state.csrf = null;
  showError(new ApiError(401, "session_required", "You have signed out."));
});

start();
