// Try it: a prediction form built from a model's signature (JSON values, or an image file for a
// model whose one input is an image), its answer with the version, node and latency, and the
// same request as a curl line to copy.
"use strict";

import { authHeaders, call, el, say, sendForm } from "./api.js";

const CHANNELS = [1, 3, 4];

// One example row: zeros in the input's shape, open (-1) dimensions taken as 1.
function zeros(shape) {
  const dims = shape.map((d) => (d > 0 ? d : 1));
  const build = (level) => (level === dims.length ? 0 : Array.from({ length: dims[level] }, () => build(level + 1)));
  return build(0);
}

function example(inputs) {
  if (inputs.length === 1) return { values: zeros(inputs[0].shape) };
  return { values: Object.fromEntries(inputs.map((spec) => [spec.name, zeros(spec.shape)])) };
}

function takesImage(inputs) {
  if (inputs.length !== 1 || ![3, 4].includes(inputs[0].shape.length)) return false;
  const dims = inputs[0].shape.slice(-3);
  return CHANNELS.includes(dims[0]) || CHANNELS.includes(dims[2]);
}

function curlLine(name, body) {
  const key = Object.keys(authHeaders()).length ? ` -H "Authorization: Bearer $MLBUFFET_API_KEY"` : "";
  const quoted = JSON.stringify(body).replace(/'/g, "'\\''");
  return `curl -X POST -H "Content-Type: application/json"${key} --data '${quoted}' ` +
    `${location.origin}/api/v1/models/${name}/prediction`;
}

export function predictionForm(details) {
  const name = details.model;
  const box = el("details", null, "tryit");
  box.appendChild(el("summary", "try it"));
  const form = box.appendChild(el("form"));
  const values = form.appendChild(el("textarea"));
  values.rows = 3;
  values.setAttribute("aria-label", `prediction input for ${name} (JSON)`);
  values.value = JSON.stringify(example(details.inputs));
  let image = null;
  if (takesImage(details.inputs)) {
    const label = form.appendChild(el("label", "or an image "));
    image = label.appendChild(el("input"));
    image.type = "file";
    image.accept = "image/*";
  }
  form.appendChild(el("button", "predict")).type = "submit";
  const answer = box.appendChild(el("pre", null, "answer"));
  answer.setAttribute("role", "status");
  const curl = box.appendChild(el("pre", null, "curl"));
  const copy = box.appendChild(el("button", "copy curl"));
  copy.type = "button";
  copy.addEventListener("click", async () => {
    try { await navigator.clipboard.writeText(curl.textContent); copy.textContent = "copied"; } catch (error) {
      getSelection().selectAllChildren(curl); // no clipboard permission: selected to copy by hand
    }
  });

  const showCurl = () => {
    try { curl.textContent = curlLine(name, JSON.parse(values.value)); } catch (error) { curl.textContent = ""; }
  };
  values.addEventListener("input", showCurl);
  showCurl();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const started = performance.now();
    try {
      let body;
      if (image && image.files.length) {
        const data = new FormData();
        data.append("file", image.files[0]);
        body = await sendForm("POST", `/api/v1/models/${name}/prediction`, data, { scope: "predict" });
      } else {
        let json;
        try { json = JSON.parse(values.value); } catch (error) { throw new Error("the input is not JSON: " + error.message); }
        body = await call("POST", `/api/v1/models/${name}/prediction`, { json, scope: "predict" });
      }
      const ms = (performance.now() - started).toFixed(1);
      say(answer, `values: ${JSON.stringify(body.values)}\nversion ${body.version} on ${body.node}, ${ms} ms` +
        `\noutputs: ${JSON.stringify(body.outputs)}`);
      answer.dataset.values = JSON.stringify(body.values);
    } catch (error) {
      say(answer, error.message, true);
    }
  });
  return box;
}
