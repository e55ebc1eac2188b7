// Training: the jobs with their state (refreshed on every training event), submitting a job from
// files, cancelling one, and following a job's log as it is written.
"use strict";

import { ApiError, call, el, follow, say, sendForm } from "./api.js";

let following = null; // { job, controller }

function time(iso) {
  return iso ? new Date(iso).toLocaleTimeString() : "-";
}

function button(text, onClick, className) {
  const b = el("button", text, className);
  b.type = "button";
  b.addEventListener("click", onClick);
  return b;
}

export async function renderJobs() {
  const body = document.querySelector("#jobs tbody");
  let jobs;
  try {
    jobs = (await call("GET", "/api/v1/train", { scope: "train" })).jobs || [];
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403 || error.status === 503)) {
      const row = el("tr");
      const cell = row.appendChild(el("td", error.message, "error-text"));
      cell.colSpan = 8;
      body.replaceChildren(row);
      return;
    }
    throw error;
  }
  body.replaceChildren(...jobs.map((job) => {
    const row = el("tr");
    row.dataset.job = job.job;
    for (const [text, className] of [
      [job.job], [job.model], [job.state, job.state], [time(job.submitted_at)], [job.node || "-"],
      [job.version ?? "-", "num"], [job.reason || ""],
    ]) row.appendChild(el("td", text, className));
    const actions = row.appendChild(el("td"));
    actions.appendChild(button("log", () => showLog(job.job)));
    if (!["succeeded", "failed", "cancelled"].includes(job.state)) {
      actions.appendChild(button("cancel", async () => {
        try { await call("DELETE", `/api/v1/train/${job.job}`, { scope: "train" }); } catch (error) {
          say(document.querySelector("#train-form .result"), error.message, true);
        }
        renderJobs();
      }, "danger"));
    }
    return row;
  }));
}

// The job's log from its first line, then line by line until it ends (?follow=1).
export async function showLog(job) {
  if (following) following.controller.abort();
  const panel = document.getElementById("job-log");
  panel.hidden = false;
  panel.querySelector(".job").textContent = job;
  const state = panel.querySelector(".state");
  const log = panel.querySelector(".log");
  log.textContent = "";
  state.textContent = "following...";
  const controller = new AbortController();
  following = { job, controller };
  try {
    await follow(`/api/v1/train/${job}/logs?follow=1`, (text) => {
      log.textContent += text;
      log.scrollTop = log.scrollHeight;
    }, controller.signal, "train");
    state.textContent = "(ended)";
  } catch (error) {
    if (error.name !== "AbortError") say(state, error.message, true);
  }
}

export function setupTraining() {
  const form = document.getElementById("train-form");
  const result = form.querySelector(".result");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const model = form.elements.model.value.trim();
    const data = new FormData();
    for (const field of ["script", "requirements", "dataset"]) data.append(field, form.elements[field].files[0]);
    if (form.elements.description.value) data.append("description", form.elements.description.value);
    say(result, "submitting...");
    try {
      const body = await sendForm("POST", `/api/v1/train/${encodeURIComponent(model)}`, data, { scope: "train" });
      say(result, `job ${body.job} ${body.state}`);
      result.dataset.job = body.job;
      await renderJobs();
      showLog(body.job);
    } catch (error) {
      say(result, error.message, true);
    }
  });
}
