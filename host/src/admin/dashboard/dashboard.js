// The dashboard's script. It shows what /api/* returns and follows /api/stream,
// which says what changed (not the new contents): each change makes the page fetch
// that list again, coalesced so that a burst of webhooks costs one fetch.
//
// Event payloads, kinds, subjects and error messages are attacker-controlled.
// They are only ever written with textContent (or as attribute values through
// properties); nothing here parses a string as HTML.
"use strict";

const EVENTS_PAGE = 50;
const EVENTS_MAX = 500; // the API's largest page
const DELIVERIES_LIMIT = 100;

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// A cell whose full text is also its tooltip, for values cut off by the layout.
function cell(tag, className, text) {
  const node = el(tag, className, text);
  if (text !== undefined && text !== null) node.title = String(text);
  return node;
}

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const response = await fetch(path, {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
    ...options,
  });
  if (response.status === 401) {
    // The session ended (expired, logged out elsewhere, host restarted): the page
    // at / is the login form again.
    location.reload();
    throw new Unauthorized("not logged in");
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw new Error(body && body.message ? body.message : `${response.status} ${response.statusText}`);
  }
  return body;
}

function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return date.toDateString() === new Date().toDateString()
    ? date.toLocaleTimeString()
    : date.toLocaleString();
}

// ---- problems -----------------------------------------------------------------

const problems = new Map();

function showProblem(key, message) {
  problems.set(key, message);
  renderProblems();
}

function clearProblem(key) {
  if (problems.delete(key)) renderProblems();
}

function renderProblems() {
  const box = $("problem");
  box.textContent = [...problems.values()].join(" · ");
  box.hidden = problems.size === 0;
}

// ---- plugins ------------------------------------------------------------------

async function refreshPlugins() {
  const { plugins } = await api("/api/plugins");
  const body = $("plugins");
  body.replaceChildren(...plugins.map(pluginRow));
  $("plugins-empty").hidden = plugins.length > 0;
  const failed = plugins.filter((p) => p.status !== "ok").length;
  $("plugins-count").textContent = failed
    ? `${plugins.length} · ${failed} failed`
    : String(plugins.length);
  updatePluginFilter(plugins.map((p) => p.id));
}

function pluginRow(plugin) {
  const row = el("tr");
  row.dataset.id = plugin.id;
  const name = el("td");
  name.append(el("div", "mono", plugin.id));
  if (plugin.name) name.append(el("div", "muted", plugin.name));
  const status = el("td");
  status.append(el("span", `badge ${plugin.status === "ok" ? "ok" : "failed"}`, plugin.status));
  const roles = el("td");
  // The host refuses events outside `emits`, and a handler with `sources` gets
  // events only from those plugins: both say whose events go where.
  if (plugin.emits && plugin.emits.length) roles.append(el("div", "mono emits", `emits ${plugin.emits.join(", ")}`));
  if (plugin.subscriptions && plugin.subscriptions.length) {
    roles.append(el("div", "mono subscribes", `subscribes ${plugin.subscriptions.join(", ")}`));
  }
  if (Array.isArray(plugin.sources)) {
    const from = plugin.sources.length ? plugin.sources.join(", ") : "no plugin";
    roles.append(el("div", "mono sources", `from ${from}`));
  }
  const error = el("td", "error");
  if (plugin.error) {
    error.textContent = plugin.error.message;
    error.title = `failed at ${when(plugin.error.at)}`;
  }
  row.append(
    name,
    status,
    el("td", "mono", plugin.version ?? "—"),
    roles,
    el("td", "muted", when(plugin.loaded_at)),
    error,
  );
  return row;
}

function updatePluginFilter(ids) {
  const select = $("event-plugin");
  const chosen = select.value;
  const options = [el("option", null, "all")];
  options[0].value = "";
  for (const id of ids) {
    const option = el("option", null, id);
    option.value = id;
    options.push(option);
  }
  if (chosen && !ids.includes(chosen)) {
    const option = el("option", null, chosen);
    option.value = chosen;
    options.push(option);
  }
  select.replaceChildren(...options);
  select.value = chosen;
}

// ---- events -------------------------------------------------------------------

const eventElements = new Map(); // host id -> <details>, reused so open ones stay open
let eventsShown = EVENTS_PAGE;
let eventsLoadedOnce = false;

async function refreshEvents() {
  const plugin = $("event-plugin").value;
  const query = new URLSearchParams({ limit: String(eventsShown) });
  if (plugin) query.set("plugin", plugin);
  const { events, next } = await api(`/api/events?${query}`);
  const seen = new Set();
  const nodes = events.map((event) => {
    seen.add(event.id);
    let node = eventElements.get(event.id);
    if (!node) {
      node = eventElement(event);
      if (eventsLoadedOnce) node.classList.add("fresh");
      eventElements.set(event.id, node);
    }
    return node;
  });
  for (const id of [...eventElements.keys()]) {
    if (!seen.has(id)) eventElements.delete(id);
  }
  $("events").replaceChildren(...nodes);
  $("events-empty").hidden = events.length > 0;
  $("events-more").hidden = !next || eventsShown >= EVENTS_MAX;
  eventsLoadedOnce = true;
}

function eventElement(event) {
  const details = el("details", "event");
  details.dataset.id = event.id;
  const summary = el("summary");
  summary.append(
    cell("span", "mono", event.id),
    cell("span", "muted", when(event.received_at)),
    cell("span", null, event.plugin),
    cell("span", "mono", event.kind),
    cell("span", event.subject ? null : "muted", event.subject ?? "—"),
    cell("span", "mono event-id", event.event_id),
  );
  details.append(summary, el("pre", "payload", JSON.stringify(event.payload, null, 2)));
  return details;
}

// ---- deliveries ---------------------------------------------------------------

const deliveryRows = new Map(); // delivery id -> <tr>
let deliveryFilter = "";

async function refreshDeliveries() {
  const query = new URLSearchParams({ limit: String(DELIVERIES_LIMIT) });
  if (deliveryFilter) query.set("state", deliveryFilter);
  const [{ deliveries }, dead] = await Promise.all([
    api(`/api/deliveries?${query}`),
    api("/api/deliveries?state=dead&limit=500"),
  ]);
  const seen = new Set();
  const rows = deliveries.map((delivery) => {
    seen.add(delivery.id);
    return deliveryRow(delivery);
  });
  for (const id of [...deliveryRows.keys()]) {
    if (!seen.has(id)) deliveryRows.delete(id);
  }
  $("deliveries").replaceChildren(...rows);
  $("deliveries-empty").hidden = deliveries.length > 0;
  const deadCount = dead.deliveries.length;
  $("dead-count").textContent = deadCount
    ? `${deadCount}${dead.next ? "+" : ""} dead`
    : "";
}

// The row of `delivery`, created or brought up to date in place.
function deliveryRow(delivery) {
  let row = deliveryRows.get(delivery.id);
  if (!row) {
    row = el("tr");
    row.dataset.id = delivery.id;
    for (let i = 0; i < 8; i++) row.append(el("td"));
    deliveryRows.set(delivery.id, row);
  }
  const [id, event, plugin, state, attempts, updated, error, action] = row.children;
  row.className = delivery.state;
  row.dataset.state = delivery.state;
  id.className = "mono";
  id.textContent = delivery.id;
  event.className = "mono";
  event.textContent = `event ${delivery.event}`;
  plugin.textContent = delivery.plugin;
  state.replaceChildren(el("span", `badge state ${delivery.state}`, delivery.state));
  attempts.textContent = String(delivery.attempts);
  updated.className = "muted";
  updated.replaceChildren(el("div", null, when(delivery.updated_at)));
  if (delivery.next_attempt_at) {
    updated.append(el("div", null, `next ${when(delivery.next_attempt_at)}`));
  }
  error.className = "error";
  error.textContent = delivery.last_error ?? "";
  if (delivery.state === "dead") {
    if (!action.querySelector("button")) {
      const button = el("button", "retry", "Retry");
      button.type = "button";
      button.title = "Put this delivery back in the queue with a fresh attempt count";
      button.addEventListener("click", () => retry(delivery.id, button));
      const discardButton = el("button", "discard", "Discard");
      discardButton.type = "button";
      discardButton.title = "Delete this dead letter for good: the handler will never get this event";
      discardButton.addEventListener("click", () => discard(delivery.id, discardButton));
      action.replaceChildren(button, discardButton);
    }
  } else {
    action.replaceChildren();
  }
  return row;
}

async function retry(id, button) {
  button.disabled = true;
  button.textContent = "Retrying…";
  try {
    const delivery = await api(`/api/deliveries/${encodeURIComponent(id)}/retry`, { method: "POST" });
    clearProblem(`retry ${id}`);
    deliveryRow(delivery);
  } catch (error) {
    if (error instanceof Unauthorized) return;
    showProblem(`retry ${id}`, `Retrying delivery ${id} failed: ${error.message}`);
    button.disabled = false;
    button.textContent = "Retry";
  }
}

async function discard(id, button) {
  if (!confirm(`Discard dead delivery ${id}? The handler will never get this event.`)) return;
  button.disabled = true;
  try {
    await api(`/api/deliveries/${encodeURIComponent(id)}`, { method: "DELETE" });
    clearProblem(`discard ${id}`);
    deliveryRows.get(id)?.remove();
    deliveryRows.delete(id);
    schedule("deliveries");
  } catch (error) {
    if (error instanceof Unauthorized) return;
    showProblem(`discard ${id}`, `Discarding delivery ${id} failed: ${error.message}`);
    button.disabled = false;
  }
}

// ---- refreshing ---------------------------------------------------------------

const refreshers = { plugins: refreshPlugins, deliveries: refreshDeliveries, events: refreshEvents };
const running = {};
const runAgain = {};
const timers = {};

// Refreshes `kind` soon; changes arriving meanwhile ride along.
function schedule(kind) {
  if (timers[kind]) return;
  timers[kind] = setTimeout(() => {
    timers[kind] = null;
    refresh(kind);
  }, 100);
}

// Refreshes `kind` now, or right after the refresh already running.
async function refresh(kind) {
  if (running[kind]) {
    runAgain[kind] = true;
    return;
  }
  running[kind] = true;
  try {
    await refreshers[kind]();
    clearProblem(kind);
  } catch (error) {
    if (!(error instanceof Unauthorized)) showProblem(kind, `Loading ${kind} failed: ${error.message}`);
  } finally {
    running[kind] = false;
    if (runAgain[kind]) {
      runAgain[kind] = false;
      refresh(kind);
    }
  }
}

function refreshAll() {
  for (const kind of Object.keys(refreshers)) refresh(kind);
}

// ---- live updates -------------------------------------------------------------

function setConnection(state, text) {
  const pill = $("connection");
  pill.dataset.state = state;
  pill.textContent = text;
}

function connect() {
  const source = new EventSource("/api/stream");
  setConnection("connecting", "connecting…");
  // `ready` comes first on every (re)connection: fetch everything once, so that
  // nothing that changed while the stream was down is missed.
  source.addEventListener("ready", () => {
    setConnection("live", "live");
    refreshAll();
  });
  source.addEventListener("events", (message) => {
    schedule("events");
    try {
      if (JSON.parse(message.data).deliveries_queued) schedule("deliveries");
    } catch {
      schedule("deliveries");
    }
  });
  source.addEventListener("delivery", () => schedule("deliveries"));
  source.addEventListener("plugin", () => schedule("plugins"));
  source.addEventListener("resync", refreshAll);
  source.addEventListener("error", () => {
    if (source.readyState !== EventSource.CLOSED) {
      // The browser reconnects by itself.
      setConnection("connecting", "reconnecting…");
      return;
    }
    // The stream was refused (a 401 when the session ended) or the host is gone:
    // api() shows the login form on a 401; otherwise try again a little later.
    setConnection("offline", "offline");
    source.close();
    api("/api/plugins")
      .then(() => setTimeout(connect, 1000))
      .catch((error) => {
        if (!(error instanceof Unauthorized)) setTimeout(connect, 5000);
      });
  });
}

// ---- start --------------------------------------------------------------------

function start() {
  $("logout").hidden = document.body.dataset.login !== "required";
  for (const chip of document.querySelectorAll("[data-state-filter]")) {
    chip.addEventListener("click", () => {
      deliveryFilter = chip.dataset.stateFilter;
      for (const other of document.querySelectorAll("[data-state-filter]")) {
        other.setAttribute("aria-pressed", String(other === chip));
      }
      refresh("deliveries");
    });
  }
  $("event-plugin").addEventListener("change", () => {
    eventsShown = EVENTS_PAGE;
    eventElements.clear();
    eventsLoadedOnce = false;
    refresh("events");
  });
  $("events-more").addEventListener("click", () => {
    eventsShown = Math.min(eventsShown + EVENTS_PAGE, EVENTS_MAX);
    refresh("events");
  });
  refreshAll();
  connect();
}

start();
