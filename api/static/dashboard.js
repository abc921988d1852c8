"use strict";
// The token stays in this tab (sessionStorage) and travels only in the Authorization header.
const KEY = "agentq.token";
const $ = (selector) => document.querySelector(selector);

function token() { return sessionStorage.getItem(KEY) || ""; }

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: "Bearer " + token() } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error((body.error && body.error.message) || ("HTTP " + response.status));
  }
  return body;
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function when(epoch) { return epoch ? new Date(epoch * 1000).toLocaleString() : ""; }
// Dollars as the CLI and reports show them (agentq.prices.usd); null is "cost unknown".
function usd(amount) {
  if (amount == null) return "cost unknown";
  if (amount === 0) return "$0.00";
  if (Math.abs(amount) >= 1) return "$" + amount.toFixed(2);
  if (Math.abs(amount) >= 0.01) return "$" + amount.toFixed(4);
  return "$" + amount.toFixed(6);
}
function outcome(item) {
  if (item.error) return item.error.code + ": " + item.error.message;
  return item.answer || "";
}

async function loadBatches() {
  const body = await api("/v1/batches");
  const tbody = $("#batches tbody");
  tbody.replaceChildren();
  for (const batch of body.batches) {
    const row = document.createElement("tr");
    row.className = "clickable";
    row.dataset.id = batch.id;
    cell(row, batch.id.slice(0, 13));
    cell(row, batch.name);
    cell(row, batch.status, "status " + batch.status);
    const c = batch.counts;
    cell(row, (c.succeeded + c.failed + c.cancelled) + "/" + batch.total);
    cell(row, c.succeeded);
    cell(row, c.failed);
    cell(row, usd(batch.cost_usd) + (batch.max_cost_usd != null ? " of " + usd(batch.max_cost_usd) : ""));
    cell(row, when(batch.created_at));
    row.addEventListener("click", () => showBatch(batch.id));
    tbody.appendChild(row);
  }
}

async function showBatch(id) {
  const report = await api("/v1/batches/" + encodeURIComponent(id) + "/report");
  $("#batch-detail").hidden = false;
  $("#batch-title").textContent = "Batch " + (report.name || id) + " (" + report.status + "), " +
    usd(report.totals.cost_usd) +
    (report.max_cost_usd != null ? " of a budget of " + usd(report.max_cost_usd) : "");
  const tbody = $("#batch-rows tbody");
  tbody.replaceChildren();
  for (const r of report.rows) {
    const row = document.createElement("tr");
    row.className = "clickable";
    cell(row, r.index);
    cell(row, r.question);
    cell(row, r.status, "status " + r.status);
    cell(row, r.error_code ? r.error_code + ": " + r.error_message : r.answer, "answer");
    cell(row, r.attempts);
    cell(row, r.tool_calls);
    cell(row, r.service_tier);
    cell(row, r.shared_with != null ? "shared with #" + r.shared_with : usd(r.cost_usd));
    row.addEventListener("click", () => showTrace(r.job_id));
    tbody.appendChild(row);
  }
}

async function loadReports() {
  const body = await api("/v1/reports");
  const tbody = $("#reports tbody");
  tbody.replaceChildren();
  for (const report of body.reports) {
    const row = document.createElement("tr");
    row.className = "clickable";
    row.dataset.name = report.name;
    cell(row, report.name);
    cell(row, report.cron ? report.cron + " " + report.timezone : "every " + report.interval_seconds + " s");
    cell(row, report.runs.length);
    cell(row, report.latest ? report.latest.id.slice(0, 13) : "");
    const status = report.latest ? report.latest.status : "";
    cell(row, status, "status " + status);
    cell(row, report.latest ? usd(report.latest.cost_usd) : "");
    row.addEventListener("click", () => showReport(report));
    tbody.appendChild(row);
  }
}

// A piece of a change: added (green) or removed (red, struck through); text only, never HTML.
function mark(kind, text) {
  const node = document.createElement(kind === "added" ? "ins" : "del");
  node.className = kind;
  node.textContent = text;
  return node;
}

function changeBlock(q) {
  const block = document.createElement("div");
  block.className = "change " + q.kind;
  const head = document.createElement("div");
  head.className = "change-head";
  head.textContent = q.kind.replace("_", " ") + ": " + q.question;
  block.appendChild(head);
  const body = document.createElement("div");
  if (q.item_key) {
    body.className = "items";
    for (const item of q.items_removed) body.appendChild(mark("removed", "- " + item[q.item_key]));
    for (const item of q.items_added) body.appendChild(mark("added", "+ " + item[q.item_key]));
    for (const item of q.items_changed) {
      const line = document.createElement("div");
      line.textContent = "~ " + item.key + ": ";
      for (const f of item.fields) {
        line.append(f.field + " ", mark("removed", String(f.before)), " ", mark("added", String(f.after)), " ");
      }
      body.appendChild(line);
    }
  } else if (q.segments.length) {
    body.className = "answer";
    for (const s of q.segments) body.append(s.op === "same" ? s.text : mark(s.op, s.text));
  } else {
    if (q.before != null) body.appendChild(mark("removed", q.before));
    if (q.after != null) body.appendChild(mark("added", q.after));
  }
  block.appendChild(body);
  return block;
}

async function showReport(report) {
  $("#report-detail").hidden = false;
  $("#report-title").textContent = "Report " + report.name;
  const runs = $("#report-runs");
  runs.replaceChildren();
  for (const id of report.runs) {
    const link = document.createElement("button");
    link.className = "run";
    link.textContent = id.slice(0, 13);
    link.addEventListener("click", () => showBatch(id));
    runs.appendChild(link);
  }
  const changes = $("#report-changes");
  changes.replaceChildren();
  $("#report-counts").textContent = "";
  let diff;
  try {
    diff = await api("/v1/reports/" + encodeURIComponent(report.name) + "/diff");
  } catch (error) {
    $("#report-counts").textContent = error.message;
    return;
  }
  if (!diff.previous_run) {
    $("#report-counts").textContent = "No earlier finished run to compare with.";
    return;
  }
  $("#report-counts").textContent = Object.entries(diff.counts)
    .map(([kind, n]) => n + " " + kind.replace("_", " ")).join(", ");
  for (const q of diff.questions) {
    if (q.kind !== "unchanged") changes.appendChild(changeBlock(q));
  }
}

async function loadJobs() {
  const body = await api("/v1/jobs?limit=100");
  const tbody = $("#jobs tbody");
  tbody.replaceChildren();
  for (const job of body.jobs) {
    const row = document.createElement("tr");
    row.className = "clickable job";
    row.dataset.id = job.id;
    cell(row, job.id.slice(0, 12));
    cell(row, job.question);
    cell(row, job.status, "status " + job.status);
    cell(row, outcome(job), "answer");
    cell(row, job.attempts);
    cell(row, usd(job.cost_usd));
    cell(row, when(job.created_at));
    row.addEventListener("click", () => showTrace(job.id));
    tbody.appendChild(row);
  }
}

async function showTrace(id) {
  const trace = await api("/v1/jobs/" + encodeURIComponent(id) + "/trace");
  $("#trace").hidden = false;
  $("#trace-title").textContent = "Trace of job " + id.slice(0, 12);
  const timeline = $("#timeline");
  timeline.replaceChildren();
  for (const attempt of trace.attempts || []) {
    const head = document.createElement("div");
    head.className = "muted";
    head.textContent = "attempt " + attempt.attempt + ": " + attempt.outcome +
      (attempt.error_code ? " (" + attempt.error_code + ")" : "");
    timeline.appendChild(head);
    const start = attempt.started_at;
    const span = Math.max(0.001, attempt.finished_at - start);
    for (const step of attempt.steps) {
      const line = document.createElement("div");
      line.className = "step";
      const label = document.createElement("span");
      label.textContent = step.kind + (step.name ? " " + step.name : "") +
        (step.kind === "model_call" ? " " + (step.model || "") + " " + usd(step.cost_usd) : "");
      const track = document.createElement("div");
      track.className = "bar-track";
      const bar = document.createElement("div");
      bar.className = "bar " + step.kind + (step.is_error ? " error" : "");
      const offset = ((step.started_at || start) - start) / span;
      const width = ((step.duration_ms || 0) / 1000) / span;
      bar.style.left = (100 * Math.min(1, Math.max(0, offset))) + "%";
      bar.style.width = (100 * Math.min(1, width)) + "%";
      track.appendChild(bar);
      const ms = document.createElement("span");
      ms.className = "muted";
      ms.textContent = step.duration_ms != null ? Math.round(step.duration_ms) + " ms" : "";
      line.append(label, track, ms);
      timeline.appendChild(line);
    }
  }
}

async function refresh() {
  $("#message").textContent = "";
  if (!token()) return;
  $("#who").textContent = "signed in (token kept in this tab only)";
  try {
    await Promise.all([loadBatches(), loadReports(), loadJobs()]);
  } catch (error) {
    $("#message").textContent = error.message;
  }
}

$("#login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, $("#token").value.trim());
  $("#token").value = "";
  refresh();
});
refresh();
setInterval(refresh, 5000);
