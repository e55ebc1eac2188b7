// The mesh's events: live from the SSE stream, and, as soon as it is open, the last ones the mesh
// kept (/api/v1/events/history), so the list is full when the page opens. EventSource cannot send
// an API key, so the stream is read with fetch.
"use strict";

import { askForKey, authHeaders, call, el, sleep } from "./api.js";

const MAX_EVENTS = 50;
const RECONNECT_MS = 2000;

const shown = []; // newest first
const shownKeys = new Set();
const listeners = [];

export function onEvent(listener) {
  listeners.push(listener);
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

function keyOf(kind, event) {
  return [kind, event.subject, event.at, event.event, event.kind, (event.record || {}).state].join("|");
}

function add(kind, event, live) {
  if (live) for (const listener of listeners) listener(kind, event);
  // Training log lines belong to the job's log, not to the mesh's events.
  if (kind === "train" && event.kind !== "state") return;
  const key = keyOf(kind, event);
  if (shownKeys.has(key)) return;
  shownKeys.add(key);
  shown.push({ kind, event, key });
  shown.sort((a, b) => (b.event.at || 0) - (a.event.at || 0));
  while (shown.length > MAX_EVENTS) shownKeys.delete(shown.pop().key);
  document.getElementById("events").replaceChildren(
    ...shown.map((item) => el("li", describe(item.kind, item.event), item.kind)));
}

async function loadHistory() {
  try {
    const body = await call("GET", "/api/v1/events/history?limit=" + MAX_EVENTS);
    for (const event of body.events || []) add(event.kind, event, false);
  } catch (error) {
    // The live stream still shows what happens from now on.
  }
}

function parseBlock(block) {
  let kind = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) kind = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
  }
  if (!data.length || !["model", "node", "train"].includes(kind)) return;
  try { add(kind, JSON.parse(data.join("\n")), true); } catch (error) { /* not JSON: skipped */ }
}

export async function listen() {
  for (;;) {
    try {
      const response = await fetch("/api/v1/events", { cache: "no-store", headers: authHeaders() });
      if (response.status === 401 || response.status === 403) askForKey();
      if (response.ok && response.body) {
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        // Asked once the stream is open (its subscription exists), so nothing falls between.
        loadHistory();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n?/g, "\n");
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            parseBlock(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
        }
      }
    } catch (error) {
      // The gateway restarted or the network dropped: reconnect below.
    }
    await sleep(RECONNECT_MS);
  }
}
