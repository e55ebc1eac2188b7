// The MLBuffet console: the cluster view and charts every 2 s, events live, models and training
// refreshed when their events say something changed. ES modules from this gateway, no framework,
// no build step; DOM built with textContent only (no HTML injection).
"use strict";

import { bytes, call, el, setupKeyForm } from "./api.js";
import { chartPoints, refreshCharts, setupCharts } from "./charts.js";
import { listen, onEvent } from "./events.js";
import { dropZone, renderModels, setLoaded, uploadVersion } from "./models.js";
import { renderJobs, setupTraining } from "./training.js";

const REFRESH_MS = 2000;
const RESYNC_MS = 15000;

function row(cells) {
  const tr = document.createElement("tr");
  for (const [text, className] of cells) tr.appendChild(el("td", text, className));
  return tr;
}

function ms(seconds) {
  return seconds === null || seconds === undefined ? "-" : (seconds * 1000).toFixed(2) + " ms";
}

function fill(tableId, rows) {
  document.querySelector("#" + tableId + " tbody").replaceChildren(...rows);
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
  setLoaded(models);
}

function setStatus(text, isError) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = isError ? "status error" : "status";
}

async function refresh() {
  try {
    render(await call("GET", "/api/v1/cluster"));
    await refreshCharts();
    setStatus("updated " + new Date().toLocaleTimeString());
  } catch (error) {
    setStatus("cluster view unavailable: " + error.message, true);
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

// Models and jobs are read again when an event says they changed (at most once a second).
function debounced(work) {
  let timer = null;
  return () => {
    if (timer) return;
    timer = setTimeout(async () => {
      timer = null;
      try { await work(); } catch (error) { setStatus(error.message, true); }
    }, 1000);
  };
}

const refreshModels = debounced(() => renderModels(refreshModels));
const refreshJobs = debounced(renderJobs);

function setupNewModel() {
  const form = document.getElementById("new-model");
  const progress = form.querySelector("progress");
  const result = form.querySelector(".result");
  dropZone(form.querySelector(".drop"), form.elements.file);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const answer = await uploadVersion(form.elements.name.value.trim(), form.elements.file.files[0],
      form.elements.description.value, progress, result);
    if (answer) refreshModels();
  });
}

// What the charts hold, for a test (or a person at the browser console) to read.
window.mlbuffetConsole = { chartPoints, ready: false };

document.addEventListener("DOMContentLoaded", () => {
  setupKeyForm(() => { refreshModels(); refreshJobs(); });
  setupCharts();
  setupNewModel();
  setupTraining();
  onEvent((kind) => {
    if (kind === "model") refreshModels();
    if (kind === "train") refreshJobs();
  });
  refresh();
  listen();
  refreshModels();
  refreshJobs();
  // Events bring changes at once; this catches any the stream missed (a reconnect).
  setInterval(() => { refreshModels(); refreshJobs(); }, RESYNC_MS);
  window.mlbuffetConsole.ready = true; // the forms have their handlers from here on
});
