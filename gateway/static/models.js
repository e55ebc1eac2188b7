// Models: a card per model with its versions, default, signature, settings and where it is loaded;
// upload a version (drag and drop, progress), set the default, edit the description, delete a
// version (a second click confirms), and try it: a prediction form built from the signature.
"use strict";

import { ApiError, bytes, call, el, say, sendForm } from "./api.js";
import { predictionForm } from "./tryit.js";

let loadedOn = {}; // "<model>:<version>" -> [node...], from the cluster view

export function setLoaded(models) {
  loadedOn = {};
  for (const m of models || []) loadedOn[`${m.model}:${m.version}`] = m.nodes || [];
}

function list(items) {
  return items.length ? items.join(", ") : "-";
}

function tensors(specs) {
  const table = el("table");
  table.appendChild(el("thead")).appendChild(rowOf(["name", "type", "shape"], "th"));
  const body = table.appendChild(el("tbody"));
  for (const spec of specs) body.appendChild(rowOf([spec.name, spec.datatype, JSON.stringify(spec.shape)], "td"));
  return table;
}

function rowOf(cells, tag) {
  const tr = el("tr");
  for (const cell of cells) tr.appendChild(el(tag, cell));
  return tr;
}

// The upload of one file as a new version of `name`, showing progress; resolves to the answer.
export async function uploadVersion(name, file, description, progress, result) {
  const form = new FormData();
  form.append("path", file, file.name || name + ".onnx");
  if (description) form.append("model_description", description);
  progress.hidden = false;
  progress.value = 0;
  const started = performance.now();
  say(result, `uploading ${bytes(file.size)}...`);
  try {
    const body = await sendForm("PUT", `/api/v1/models/${encodeURIComponent(name)}`, form, {
      scope: "write",
      onProgress: (loaded, total) => {
        progress.value = loaded / total;
        const rate = loaded / Math.max(0.001, (performance.now() - started) / 1000);
        say(result, `uploading ${bytes(loaded)} of ${bytes(total)} (${bytes(rate)}/s)`);
      },
    });
    progress.value = 1;
    say(result, `${body.model} version ${body.version} uploaded; it is the default`);
    return body;
  } catch (error) {
    say(result, "upload failed: " + error.message, true);
    return null;
  }
}

export function dropZone(zone, input) {
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); input.click(); }
  });
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => { event.preventDefault(); zone.classList.add("over"); });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      input.dispatchEvent(new Event("change"));
    }
  });
}

function button(text, onClick, className) {
  const b = el("button", text, className);
  b.type = "button";
  b.addEventListener("click", onClick);
  return b;
}

// A delete that needs a second click: the first turns the button into the question.
function deleteButton(name, version, result, onDone) {
  const b = button(`delete v${version}`, async () => {
    if (!b.dataset.armed) {
      b.dataset.armed = "1";
      b.textContent = `really delete ${name}:${version}?`;
      setTimeout(() => { delete b.dataset.armed; b.textContent = `delete v${version}`; }, 5000);
      return;
    }
    try {
      const body = await call("DELETE", `/api/v1/models/${name}:${version}`, { scope: "write" });
      say(result, body.http_status.description);
      onDone();
    } catch (error) {
      say(result, error.message, true);
    }
  }, "danger");
  return b;
}

function card(details, onChange) {
  const name = details.model;
  const section = el("article", null, "card");
  section.id = "model-" + name;
  const title = section.appendChild(el("h3"));
  title.appendChild(el("span", name));
  title.appendChild(el("small", `default v${details.default_version}`));
  const result = el("p", null, "result");
  result.setAttribute("role", "status");

  const facts = section.appendChild(el("dl"));
  const fact = (term, value) => { facts.appendChild(el("dt", term)); facts.appendChild(el("dd", value)); };
  fact("description", details.description || "-");
  fact("versions", details.versions.map((v) => "v" + v).join(", "));
  fact("loaded on", list(loadedOn[`${name}:${details.default_version}`] || []));
  fact("file", `${details.file} (${bytes(details.size)}, ${details.library || "?"})`);
  fact("settings", JSON.stringify(details.settings));

  const signature = section.appendChild(el("details"));
  signature.appendChild(el("summary", "signature"));
  signature.appendChild(el("h4", "inputs"));
  signature.appendChild(tensors(details.inputs));
  signature.appendChild(el("h4", "outputs"));
  signature.appendChild(tensors(details.outputs));

  const versions = section.appendChild(el("div", null, "actions"));
  for (const version of details.versions) {
    if (version !== details.default_version) {
      versions.appendChild(button(`make v${version} default`, async () => {
        try {
          await call("POST", `/api/v1/models/${name}/default`, { json: { default: version }, scope: "write" });
          onChange();
        } catch (error) { say(result, error.message, true); }
      }));
    }
    versions.appendChild(deleteButton(name, version, result, onChange));
  }

  const describe = section.appendChild(el("form"));
  const text = describe.appendChild(el("input"));
  text.value = details.description || "";
  text.setAttribute("aria-label", `description of ${name}`);
  text.size = 30;
  describe.appendChild(el("button", "save description")).type = "submit";
  describe.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await call("POST", `/api/v1/models/${name}`, { json: { model_description: text.value }, scope: "write" });
      onChange();
    } catch (error) { say(result, error.message, true); }
  });

  const upload = section.appendChild(el("form"));
  const zone = upload.appendChild(el("label", "new version: drop an ONNX file here or choose ", "drop"));
  zone.tabIndex = 0;
  const file = zone.appendChild(el("input"));
  file.type = "file";
  file.accept = ".onnx";
  const progress = upload.appendChild(el("progress"));
  progress.max = 1;
  progress.hidden = true;
  dropZone(zone, file);
  file.addEventListener("change", async () => {
    if (file.files.length && await uploadVersion(name, file.files[0], "", progress, result)) onChange();
  });

  section.appendChild(predictionForm(details));
  section.appendChild(result);
  return section;
}

export async function renderModels(onChange) {
  const names = (await call("GET", "/api/v1/models")).model_list || [];
  const container = document.getElementById("model-cards");
  const shown = new Map([...container.children].map((c) => [c.id, c]));
  const cards = [];
  for (const name of names) {
    let details;
    try {
      details = await call("GET", `/api/v1/models/${name}`);
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 404) throw error; // deleted meanwhile
      continue;
    }
    // A card whose model did not change stays as it is: an open try-it keeps its answer.
    const key = JSON.stringify([details, loadedOn[`${name}:${details.default_version}`]]);
    const old = shown.get("model-" + name);
    if (old && old.dataset.key === key) {
      cards.push(old);
      continue;
    }
    const fresh = card(details, onChange);
    fresh.dataset.key = key;
    // The card the user is typing in stays until the next change after that.
    const typing = document.activeElement && document.activeElement.matches("textarea, input:not([type=file])");
    cards.push(old && typing && old.contains(document.activeElement) ? old : fresh);
  }
  container.replaceChildren(...cards);
}
