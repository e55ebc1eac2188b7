// Talking to this gateway: the API key (asked once, kept for the tab), JSON calls, uploads with
// progress, and errors a person can act on (a key without the scope an action needs says so).
"use strict";

const KEY_STORAGE = "mlbuffet-api-key";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function authHeaders() {
  const key = sessionStorage.getItem(KEY_STORAGE);
  return key ? { Authorization: "Bearer " + key } : {};
}

export function askForKey() {
  document.getElementById("auth").hidden = false;
}

export function setupKeyForm(onKey) {
  const form = document.getElementById("auth");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = document.getElementById("api-key").value.trim();
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    form.hidden = true;
    onKey();
  });
}

function describeFailure(status, body, scope) {
  const said = body && body.http_status ? body.http_status.description
    : body && body.error ? body.error : "HTTP " + status;
  if (status === 401) return `an API key is needed (one with the ${scope} scope): ${said}`;
  if (status === 403) return `this API key lacks the ${scope} scope this needs: ${said}`;
  return said;
}

async function parse(response) {
  const text = await response.text();
  try { return JSON.parse(text); } catch (error) { return { text }; }
}

// One JSON (or text) call; throws ApiError with a message for people on any non-2xx answer.
export async function call(method, path, { json, scope = "read" } = {}) {
  const headers = { ...authHeaders() };
  const init = { method, headers, cache: "no-store" };
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  const response = await fetch(path, init);
  const body = await parse(response);
  if (response.status === 401) askForKey();
  if (!response.ok) throw new ApiError(response.status, describeFailure(response.status, body, scope));
  return body;
}

// A multipart form sent with XMLHttpRequest, the one browser API that reports upload progress.
export function sendForm(method, path, form, { scope = "write", onProgress } = {}) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open(method, path);
    for (const [name, value] of Object.entries(authHeaders())) request.setRequestHeader(name, value);
    if (onProgress) {
      request.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) onProgress(event.loaded, event.total);
      });
    }
    request.addEventListener("load", () => {
      let body;
      try { body = JSON.parse(request.responseText); } catch (error) { body = { text: request.responseText }; }
      if (request.status === 401) askForKey();
      if (request.status >= 200 && request.status < 300) resolve(body);
      else reject(new ApiError(request.status, describeFailure(request.status, body, scope)));
    });
    request.addEventListener("error", () => reject(new ApiError(0, "the gateway could not be reached")));
    request.send(form);
  });
}

// The text of a streamed answer, piece by piece, until it ends or `signal` aborts it.
export async function follow(path, onText, signal, scope = "read") {
  const response = await fetch(path, { cache: "no-store", headers: authHeaders(), signal });
  if (response.status === 401) askForKey();
  if (!response.ok) {
    throw new ApiError(response.status, describeFailure(response.status, await parse(response), scope));
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    onText(value);
  }
}

export function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function bytes(n) {
  if (n >= 1 << 30) return (n / (1 << 30)).toFixed(1) + " GiB";
  if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + " MiB";
  return (n / 1024).toFixed(0) + " KiB";
}

// Shown in a result line: what happened, or what went wrong (red).
export function say(node, text, isError) {
  node.textContent = text;
  node.classList.toggle("error", Boolean(isError));
}
