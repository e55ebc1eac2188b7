// MLBuffet dashboard: the cluster view every 2 s, events live from the SSE stream.
// No framework, no build step; DOM built with textContent only (no HTML injection).
"use strict";

const REFRESH_MS = 2000;
const MAX_EVENTS = 50;

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
    const response = await fetch("/api/v1/cluster", { cache: "no-store" });
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
  if (kind === "node") return `${when} node ${event.node} (${event.role}) ${event.event}`;
  if (kind === "model") {
    const version = event.version === null || event.version === undefined ? "" : ":" + event.version;
    return `${when} model ${event.model}${version} ${event.event} on ${event.node}`;
  }
  return `${when} ${kind} ${JSON.stringify(event)}`;
}

function listen() {
  if (!window.EventSource) return;
  const source = new EventSource("/api/v1/events");
  const list = document.getElementById("events");
  for (const kind of ["model", "node", "train"]) {
    source.addEventListener(kind, (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch (error) { return; }
      list.insertBefore(el("li", describe(kind, event)), list.firstChild);
      while (list.children.length > MAX_EVENTS) list.removeChild(list.lastChild);
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  refresh();
  listen();
});
