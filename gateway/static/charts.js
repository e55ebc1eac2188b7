// The charts: the metrics actor's samples (/api/v1/cluster/series) drawn with uPlot (vendored).
// On open the page gets the last 15 minutes the actor kept; then it asks for the newer samples
// every 2 s and keeps up to MAX_POINTS, so the window grows while the page stays open.
"use strict";

import { call } from "./api.js";

const MAX_POINTS = 3600; // two hours at one sample per 2 s
const PALETTE = ["#1a73e8", "#e8710a", "#188038", "#d93025", "#9334e6", "#12b5cb", "#f9ab00", "#b31412"];

// What each chart draws: [source, measure, scale] per line; labels say the unit.
const CHARTS = [
  { id: "chart-requests", unit: "req/s", lines: [["models", "requests_per_s", 1, ""]] },
  { id: "chart-latency", unit: "ms", lines: [["models", "p50_s", 1000, " p50"], ["models", "p99_s", 1000, " p99"]] },
  { id: "chart-failures", unit: "/s", lines: [["models", "failures_per_s", 1, " failures"], ["nodes", "refused_per_s", 1, " refused"]] },
  { id: "chart-cpu", unit: "%", lines: [["nodes", "cpu_percent", 1, ""]] },
  { id: "chart-memory", unit: "MiB", lines: [["nodes", "rss_bytes", 1 / (1 << 20), ""]] },
  { id: "chart-queue", unit: "requests", lines: [["nodes", "queued", 1, " queued"], ["nodes", "in_flight", 1, " in flight"]] },
];

const store = { times: [], nodes: {}, models: {}, last: 0 };
const drawn = {}; // chart id -> { plot, keys }

function append(series) {
  const offset = store.times.length;
  store.times.push(...series.times);
  for (const kind of ["nodes", "models"]) {
    const known = store[kind];
    for (const [key, measures] of Object.entries(series[kind] || {})) {
      if (!known[key]) known[key] = {};
      for (const [measure, values] of Object.entries(measures)) {
        if (!known[key][measure]) known[key][measure] = new Array(offset).fill(null);
        known[key][measure].push(...values);
      }
    }
    for (const measures of Object.values(known)) {
      for (const values of Object.values(measures)) {
        while (values.length < store.times.length) values.push(null);
      }
    }
  }
  const extra = store.times.length - MAX_POINTS;
  if (extra > 0) {
    store.times.splice(0, extra);
    for (const kind of ["nodes", "models"]) {
      for (const measures of Object.values(store[kind])) {
        for (const values of Object.values(measures)) values.splice(0, extra);
      }
    }
  }
  if (series.times.length) store.last = series.times[series.times.length - 1];
}

function colours() {
  const style = getComputedStyle(document.documentElement);
  return { fg: style.getPropertyValue("--fg").trim(), line: style.getPropertyValue("--line").trim() };
}

function format(value, unit) {
  if (value === null || value === undefined) return "-";
  const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  return value.toFixed(digits) + " " + unit;
}

function linesOf(chart) {
  const lines = [];
  for (const [kind, measure, scale, suffix] of chart.lines) {
    for (const [key, measures] of Object.entries(store[kind]).sort()) {
      const values = measures[measure];
      if (!values || !values.some((v) => v !== null)) continue;
      lines.push({ label: key + suffix, values: values.map((v) => (v === null ? null : v * scale)) });
    }
  }
  return lines;
}

function width(figure) {
  return Math.max(260, figure.clientWidth - 14);
}

const CLOCK = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });

/** A sample's time (Unix seconds) as the wall clock shows it. */
function clock(t) {
  return CLOCK.format(new Date(t * 1000));
}

function draw(chart) {
  const figure = document.getElementById(chart.id);
  const lines = linesOf(chart);
  const keys = lines.map((line) => line.label).join("|");
  const data = [store.times, ...lines.map((line) => line.values)];
  const current = drawn[chart.id];
  if (current && current.keys === keys) {
    current.plot.setData(data);
    return;
  }
  if (current) current.plot.destroy();
  figure.querySelectorAll(".empty").forEach((node) => node.remove());
  if (!lines.length) {
    delete drawn[chart.id];
    const empty = document.createElement("p");
    empty.className = "empty";
    empty.textContent = "no data yet";
    figure.appendChild(empty);
    return;
  }
  const { fg, line } = colours();
  const axis = { stroke: fg, grid: { stroke: line }, ticks: { stroke: line } };
  const options = {
    width: width(figure),
    height: 200,
    series: [
      { label: "time", value: (u, t) => (t == null ? "--" : clock(t)) },
      ...lines.map((l, i) => ({
        label: l.label,
        stroke: PALETTE[i % PALETTE.length],
        width: 1.5,
        spanGaps: false,
        value: (u, v) => format(v, chart.unit),
      })),
    ],
    // Clock times on the x axis: uPlot's default adds a date row that collides with itself
    // over the few minutes a console shows.
    axes: [{ ...axis, space: 70, values: (u, ticks) => ticks.map(clock) }, { ...axis, size: 60, values: (u, ticks) => ticks.map((t) => format(t, "").trim()) }],
    scales: { y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    legend: { live: true },
    cursor: { drag: { x: true, y: false } },
  };
  drawn[chart.id] = { plot: new uPlot(options, data, figure), keys };
}

function drawAll() {
  for (const chart of CHARTS) draw(chart);
  const minutes = store.times.length ? (store.last - store.times[0]) / 60 : 0;
  document.getElementById("charts-window").textContent =
    store.times.length ? `(${minutes.toFixed(1)} min, ${store.times.length} samples)` : "";
}

// Fetch the samples after the last one drawn; the caller repeats this.
export async function refreshCharts() {
  const path = "/api/v1/cluster/series" + (store.last ? "?since=" + store.last : "");
  const series = await call("GET", path);
  append(series);
  drawAll();
}

export function setupCharts() {
  window.addEventListener("resize", () => {
    for (const [id, current] of Object.entries(drawn)) {
      current.plot.setSize({ width: width(document.getElementById(id)), height: 200 });
    }
  });
  // A change of system theme redraws the axes in the new colours.
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
    for (const id of Object.keys(drawn)) { drawn[id].plot.destroy(); delete drawn[id]; }
    drawAll();
  });
}

// For tests and curious users: how many points each chart draws now.
export function chartPoints() {
  const counts = {};
  for (const [id, current] of Object.entries(drawn)) {
    counts[id] = current.plot.data.slice(1).reduce(
      (sum, values) => sum + values.filter((v) => v !== null).length, 0);
  }
  return counts;
}
