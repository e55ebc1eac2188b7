// MLBuffet dashboard: the cluster view every 2 s, events live from the SSE stream.
// No framework, no build step; DOM built with textContent only (no HTML injection).
// When the gateway asks for API keys, the page asks for one (read scope) and sends it as
// a bearer header: EventSource cannot send headers, so the event stream is read with fetch.
"use strict";

const REFRESH_MS = 2000;
const MAX_EVENTS = 50;
const KEY_STORAGE = "mlbuffet-api-key";

function authHeaders() {
  const key = sessionStorage.getItem(KEY_STORAGE);
  return key ? { Authorization: "Bearer " + key } : {};
}

function askForKey() {
  document.getElementById("auth").hidden = false;
}

function setupKeyForm() {
  const form = document.getElementById("auth");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = document.getElementById("api-key").value.trim();
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    form.hidden = true;
  });
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const [text, className] of cells) tr.appendChild(el("td", text, className));
  return tr;
}

function bytes(n) {
  if (n >= 1 << 30) return (n / (1 << 30)).toFixed(1) + " GiB";
  if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + " MiB";
  return (n / 1024).toFixed(0) + " KiB";
}

function ms(seconds) {
  return seconds === null || seconds === undefined ? "-" : (seconds * 1000).toFixed(2) + " ms";
}

function fill(tableId, rows) {
  const body = document.querySelector("#" + tableId + " tbody");
  body.replaceChildren(...rows);
}

function render(cluster) {
  const nodes = cluster.nodes || [];
  const models = cluster.models || [];
  fill("nodes", nodes.map((n) => row([
    [n.node], [n.role], [n.state, n.state],
    [Number(n.cpu_percent).toFixed(1), "num"], [bytes(n.rss_bytes), "num"],
    [n.in_flight, "num"], [n.requests, "num"], [Number(n.requests_per_s).toFixed(2), "num"],
    [(n.models || []).join(", ")],
  ])));
  fill("models", models.map((m) => row([
    [m.model], [m.version, "num"], [(m.nodes || []).join(", ")],
    [m.success + m.failure, "num"], [m.failure, "num"],
    [Number(m.requests_per_s).toFixed(2), "num"], [ms(m.p50_s), "num"], [ms(m.p99_s), "num"],
  ])));
  const up = nodes.filter((n) => n.state === "up").length;
  document.getElementById("nodes-up").textContent = up;
  document.getElementById("nodes-down").textContent = nodes.length - up;
  document.getElementById("models-count").textContent = models.length;
  document.getElementById("requests-total").textContent =
    models.reduce((sum, m) => sum + m.success + m.failure, 0);
  document.getElementById("requests-rate").textContent =
    models.reduce((sum, m) => sum + m.requests_per_s, 0).toFixed(2);
}

function setStatus(text, isError) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = isError ? "status error" : "status";
}

async function refresh() {
  try {
    const response = await fetch("/api/v1/cluster", { cache: "no-store", headers: authHeaders() });
    if (response.status === 401 || response.status === 403) askForKey();
    const body = await response.json();
    if (!response.ok) throw new Error(body.http_status ? body.http_status.description : response.statusText);
    render(body);
    setStatus("updated " + new Date().toLocaleTimeString());
  } catch (error) {
    setStatus("cluster view unavailable: " + error.message, true);
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

function describe(kind, event) {
  const when = new Date((event.at || Date.now() / 1000) * 1000).toLocaleTimeString();
  if (kind === "train") {
    const record = event.record || {};
    return `${when} training ${event.job} ${record.state || event.kind} (${(record.spec || {}).model || "?"})`;
  }
  if (kind === "node") return `${when} node ${event.node} (${event.role}) ${event.event}`;
  if (kind === "model") {
    const version = event.version === null || event.version === undefined ? "" : ":" + event.version;
    return `${when} model ${event.model}${version} ${event.event} on ${event.node}`;
  }
  return `${when} ${kind} ${JSON.stringify(event)}`;
}

// Events shown, newest first; the history and the live stream may both bring one event.
const shownEvents = [];
const shownKeys = new Set();

function eventKey(kind, event) {
  return [kind, event.subject, event.at, event.event, event.kind, (event.record || {}).state].join("|");
}

function addEvent(kind, event) {
  // Training log lines belong to the job's log, not to the mesh's events.
  if (kind === "train" && event.kind !== "state") return;
  const key = eventKey(kind, event);
  if (shownKeys.has(key)) return;
  shownKeys.add(key);
  shownEvents.push({ kind, event, key });
  shownEvents.sort((a, b) => (b.event.at || 0) - (a.event.at || 0));
  while (shownEvents.length > MAX_EVENTS) shownKeys.delete(shownEvents.pop().key);
  document.getElementById("events").replaceChildren(
    ...shownEvents.map((item) => el("li", describe(item.kind, item.event), item.kind)));
}

async function loadHistory() {
  // Asked once the live stream is open, so nothing falls between the two.
  try {
    const response = await fetch("/api/v1/events/history?limit=" + MAX_EVENTS,
      { cache: "no-store", headers: authHeaders() });
    if (!response.ok) return;
    for (const event of (await response.json()).events || []) addEvent(event.kind, event);
  } catch (error) {
    // The live stream still shows what happens from now on.
  }
}

function showEvent(block) {
  let kind = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) kind = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
  }
  if (!data.length || !["model", "node", "train"].includes(kind)) return;
  let event;
  try { event = JSON.parse(data.join("\n")); } catch (error) { return; }
  addEvent(kind, event);
}

async function listen() {
  for (;;) {
    try {
      const response = await fetch("/api/v1/events", { cache: "no-store", headers: authHeaders() });
      if (response.status === 401 || response.status === 403) askForKey();
      if (response.ok && response.body) {
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        loadHistory();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n?/g, "\n");
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            showEvent(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
        }
      }
    } catch (error) {
      // The gateway restarted or the network dropped: reconnect below.
    }
    await sleep(REFRESH_MS);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  setupKeyForm();
  refresh();
  listen();
});
