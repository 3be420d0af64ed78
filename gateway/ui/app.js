// The hlsmux web page: a client of the gateway's own API, with the token
// the person types (kept for this tab only, in sessionStorage). Every name
// shown comes from submitters and is set as text, never as HTML.
"use strict";

const TOKEN_KEY = "hlsmux-token";
const JOBS_SHOWN = 50;
let token = sessionStorage.getItem(TOKEN_KEY) ?? "";
let refreshing = null;
let hls = null;

const $ = (id) => document.getElementById(id);

/// Calls the API; resolves to the JSON body, or throws its error
/// (message and code as the API gives them).
async function call(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) {
    const error = new Error(json?.error?.message ?? `the gateway answered ${response.status}`);
    error.code = json?.error?.code;
    throw error;
  }
  return json;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text ?? "";
  if (className) td.className = className;
  return td;
}

function progressCell(row, percent) {
  const td = row.insertCell();
  if (percent == null) return td;
  const bar = document.createElement("progress");
  bar.max = 100;
  bar.value = percent;
  bar.className = "job-progress";
  td.append(bar, ` ${Math.round(percent)}%`);
  return td;
}

function time(text) {
  const at = new Date(text);
  return Number.isNaN(at.getTime()) ? "" : at.toLocaleTimeString();
}

// ---- log in and out ----

async function logIn(candidate) {
  token = candidate;
  try {
    await call("GET", "/v1/jobs?state=queued");
  } catch (error) {
    token = "";
    $("login-error").textContent = error.message;
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("login-error").textContent = "";
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  await refresh();
  refreshing = setInterval(refresh, 1000);
}

function logOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  token = "";
  clearInterval(refreshing);
  stopPlayer();
  $("app").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
}

// ---- the pool and the jobs, refreshed every second ----

async function refresh() {
  try {
    const [jobs, pool] = await Promise.all([call("GET", "/v1/jobs"), call("GET", "/v1/workers")]);
    showJobs(jobs.jobs);
    showPool(pool);
    $("status").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    $("status").textContent = error.message;
    if (error.code === "bad_token" || error.code === "unauthorized") logOut();
  }
}

function showPool(pool) {
  const workers = $("workers").tBodies[0];
  workers.replaceChildren();
  for (const worker of pool.workers) {
    const row = workers.insertRow();
    if (worker.lost) row.className = "worker-lost";
    cell(row, worker.muxer_id);
    cell(row, worker.worker);
    cell(row, worker.lost ? "lost" : worker.state, "worker-state");
    const heat = worker.temperature_celsius == null ? "" : `${worker.temperature_celsius.toFixed(1)} °C`;
    const throttled = worker.throttled?.length ? ` (${worker.throttled.join(", ")})` : "";
    cell(row, heat + throttled);
    const job = worker.job ? `${worker.job.slice(0, 8)}${worker.chunk != null ? ` chunk ${worker.chunk}` : ""}` : "";
    cell(row, job);
    progressCell(row, worker.percent);
  }
  const queues = $("queues").tBodies[0];
  queues.replaceChildren();
  for (const queue of pool.queues) {
    const row = queues.insertRow();
    cell(row, `muxer ${queue.muxer_id}`);
    cell(row, queue.ready);
    cell(row, queue.consumers);
    cell(row, queue.in_hand);
  }
}

function showJobs(jobs) {
  const body = $("job-list").tBodies[0];
  body.replaceChildren();
  for (const job of jobs.slice(-JOBS_SHOWN).reverse()) {
    const row = body.insertRow();
    row.dataset.job = job.job_id;
    row.dataset.state = job.state;
    cell(row, job.input, "input");
    cell(row, job.state, `state state-${job.state}`);
    const percent = job.state === "done" ? 100 : job.percent;
    progressCell(row, percent);
    cell(row, job.muxer_id);
    cell(row, time(job.updated_at));
    const actions = row.insertCell();
    if (job.state === "done") {
      const play = document.createElement("button");
      play.textContent = "Play";
      play.className = "play";
      play.addEventListener("click", () => playJob(job.job_id, job.input));
      actions.append(play);
    } else if (job.state !== "failed") {
      const cancel = document.createElement("button");
      cancel.textContent = "Cancel";
      cancel.className = "cancel secondary";
      cancel.addEventListener("click", () => cancelJob(job.job_id));
      actions.append(cancel);
    } else if (job.message) {
      actions.textContent = job.message;
      actions.className = "error";
    }
  }
}

async function cancelJob(id) {
  try {
    await call("DELETE", `/v1/jobs/${id}`);
  } catch (error) {
    $("status").textContent = error.message;
  }
}

// ---- submit: the file itself, streamed as the request body ----

function submitFile(event) {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) return;
  const query = new URLSearchParams({ filename: file.name });
  if ($("ladder").value) query.set("ladder", $("ladder").value);
  if ($("segment-seconds").value) query.set("segment_seconds", $("segment-seconds").value);
  if ($("split").value) query.set("split", $("split").value);
  // XMLHttpRequest, not fetch: it reports the upload's progress.
  const request = new XMLHttpRequest();
  request.open("POST", `/v1/jobs?${query}`);
  request.setRequestHeader("Authorization", `Bearer ${token}`);
  request.setRequestHeader("Content-Type", file.type.startsWith("video/") ? file.type : "application/octet-stream");
  const bar = $("upload-progress");
  bar.hidden = false;
  bar.value = 0;
  $("submit-button").disabled = true;
  $("submit-message").textContent = `Uploading ${file.name}…`;
  request.upload.addEventListener("progress", (progress) => {
    if (progress.lengthComputable) bar.value = (100 * progress.loaded) / progress.total;
  });
  request.addEventListener("loadend", () => {
    $("submit-button").disabled = false;
    bar.hidden = true;
    let reply = null;
    try {
      reply = JSON.parse(request.responseText);
    } catch {
      reply = null;
    }
    if (request.status === 202) {
      $("submit-message").textContent = `Queued ${reply.input} as job ${reply.job_id}`;
      $("submit-form").reset();
      refresh();
    } else {
      const why = reply?.error?.message ?? `the upload failed (${request.status || "no answer"})`;
      $("submit-message").textContent = `Not queued: ${why}`;
    }
  });
  request.send(file);
}

// ---- the player: hls.js, with the token on every request ----

function stopPlayer() {
  hls?.destroy();
  hls = null;
  $("player").hidden = true;
}

async function playJob(id, input) {
  stopPlayer();
  let job;
  try {
    job = await call("GET", `/v1/jobs/${id}`);
  } catch (error) {
    $("status").textContent = error.message;
    return;
  }
  const done = job.events.findLast((event) => event.state === "done");
  if (!done?.master_playlist) return;
  const url = `/v1/outputs/${done.master_playlist.split("/").map(encodeURIComponent).join("/")}`;
  $("player").hidden = false;
  $("playing").textContent = input;
  $("player-message").textContent = "Loading…";
  const rung = $("rung");
  rung.replaceChildren(new Option("auto", "-1"));
  if (!window.Hls?.isSupported()) {
    $("player-message").textContent = "This browser cannot play HLS with hls.js.";
    return;
  }
  hls = new Hls({
    xhrSetup: (xhr) => xhr.setRequestHeader("Authorization", `Bearer ${token}`),
  });
  hls.on(Hls.Events.MANIFEST_PARSED, (_, data) => {
    data.levels.forEach((level, index) => {
      const label = `${level.height}p (${Math.round(level.bitrate / 1000)} kb/s)`;
      rung.append(new Option(label, String(index)));
    });
    $("video").play().catch(() => {});
  });
  hls.on(Hls.Events.LEVEL_SWITCHED, (_, data) => {
    const level = hls.levels[data.level];
    $("player-message").textContent = `Playing ${level.height}p (${Math.round(level.bitrate / 1000)} kb/s)`;
    $("player-message").dataset.level = String(data.level);
  });
  hls.on(Hls.Events.ERROR, (_, data) => {
    if (data.fatal) $("player-message").textContent = `Playback failed: ${data.details}`;
  });
  hls.loadSource(url);
  hls.attachMedia($("video"));
}

function pickRung() {
  if (!hls) return;
  // currentLevel switches now (flushing what is buffered); -1 is automatic.
  hls.currentLevel = Number($("rung").value);
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    logIn($("token").value.trim());
  });
  $("logout").addEventListener("click", logOut);
  $("submit-form").addEventListener("submit", submitFile);
  $("rung").addEventListener("change", pickRung);
  if (token) logIn(token);
});
