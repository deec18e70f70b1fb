// The page of `podium serve`: submit a job, follow it (polling GET /api/jobs/{id}), play and
// download the result, list past jobs. Plain JS against the documented API; no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const FINISHED = new Set(["done", "failed", "cancelled"]);
const POLL_JOB_MS = 1000;
const POLL_LIST_MS = 3000;
let current = null;      // id of the job shown
let shownVideo = null;   // id whose video the player holds
let jobTimer = null;

function showError(message) {
  const line = $("error");
  if (!message) { line.hidden = true; line.textContent = ""; return; }
  line.textContent = String(message).replace(/\s+/g, " ").trim();
  line.title = line.textContent;
  line.hidden = false;
}

async function api(method, path, body) {
  const headers = {};  // who: the session cookie team.js signs in with (HttpOnly: not seen here)
  let payload = body;
  if (body && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload });
  } catch (err) {
    throw new Error(`the server cannot be reached (${err.message})`);
  }
  if (response.status === 401) document.dispatchEvent(new CustomEvent("podium:unauthorized"));
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!response.ok) {
    const detail = data && data.detail ? data.detail : text || response.statusText;
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return data;
}

async function loadChoices() {
  // presets and voices as the API's schema lists them (JobRequest.preset / .voice enums)
  try {
    const schema = await api("GET", "/openapi.json");
    const props = schema.components.schemas.JobRequest.properties;
    fill($("preset"), props.preset.enum || [], "auto");
    fill($("voice"), props.voice.enum || [], props.voice.default);
  } catch (err) {
    showError(`could not read the presets and voices: ${err.message}`);
  }
}

function fill(select, values, chosen) {
  if (!values.length) return;
  select.replaceChildren(...values.map((v) => new Option(v, v, v === chosen, v === chosen)));
}

function mode() { return document.querySelector("input[name=mode]:checked").value; }

function showMode() {
  for (const block of document.querySelectorAll("[data-mode]")) block.hidden = block.dataset.mode !== mode();
}

function showDeck() {
  // a deck brings its own narration (its notes): the script and the topic are not sent
  const deck = Boolean($("deck").files[0]);
  $("text").disabled = deck;
  $("topic").disabled = deck;
  $("deck-hint").hidden = !deck;
}

function layoutOptions(options, deck) {
  // the layout fields of RenderOptions: the corner box's only where there can be one
  const layout = $("layout").value;
  if (layout) options.layout = layout;
  if (layout === "pip" || (!layout && deck)) {
    options.pip_position = $("pip-position").value;
    options.pip_size = Number($("pip-size").value);
    options.pip_shape = $("pip-shape").value;
  }
}

function request() {
  const options = { size: $("size").value, subtitles: $("subtitles").value, fps: Number($("fps").value) };
  if ($("voice-ref-text").value.trim()) options.voice_ref_text = $("voice-ref-text").value.trim();
  const profile = $("profile").value;  // a profile brings the portrait (and its voice sample)
  const uploads = { image: profile ? undefined : $("image").files[0], voice_ref: $("voice-ref").files[0],
                    deck: $("deck").files[0], notes: $("notes").files[0] };
  layoutOptions(options, uploads.deck);
  const job = { mode: mode(), preset: $("preset").value, voice: $("voice").value, options };
  if (profile) job.profile = profile;
  if (job.mode === "direct" && !uploads.deck) job.text = $("text").value;
  else if (job.mode === "guided") {
    if (!uploads.deck) job.topic = $("topic").value;
    options.duration = Number($("duration").value);
  }
  if (!Object.values(uploads).some(Boolean)) return job;
  const form = new FormData();  // uploads: the same fields as form fields, options as JSON
  for (const [key, value] of Object.entries(job)) {
    form.append(key, key === "options" ? JSON.stringify(value) : value);
  }
  for (const [key, file] of Object.entries(uploads)) if (file) form.append(key, file);
  return form;
}

async function submit(event) {
  event.preventDefault();
  showError("");
  const button = $("submit");
  button.disabled = true;
  try {
    const job = await api("POST", "/api/jobs", request());
    follow(job.id, job);
    refreshList();
  } catch (err) {
    showError(err.message);
  } finally {
    button.disabled = false;
  }
}

function follow(id, job) {
  current = id;
  clearTimeout(jobTimer);
  $("job").hidden = false;
  if (job) render(job);
  poll();
}

async function poll() {
  const id = current;
  try {
    const job = await api("GET", `/api/jobs/${id}`);
    if (id !== current) return;
    render(job);
    if (FINISHED.has(job.state)) { refreshList(); return; }
  } catch (err) {
    showError(err.message);
  }
  if (id === current) jobTimer = setTimeout(poll, POLL_JOB_MS);
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.max(0, Math.round(seconds));
  return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
}

function render(job) {
  $("job-name").textContent = job.title || job.id;
  const state = $("job-state");
  state.textContent = job.state + (job.attempts > 1 ? ` (attempt ${job.attempts})` : "")
    + (job.worker && !FINISHED.has(job.state) ? ` on ${job.worker}` : "");
  state.className = `state ${job.state}`;
  $("progress").value = job.progress || 0;
  $("eta").textContent = job.state === "running" && job.eta_s != null
    ? `about ${duration(job.eta_s)} left` : job.state === "running" ? "estimating time left..." : "";
  const error = $("job-error");
  error.hidden = !job.error;
  error.textContent = job.error || "";
  // with a deck each segment is a slide: its count is known from the submission on
  const slides = job.slides || 0;
  $("slide-count").hidden = !slides;
  $("slide-count").textContent = slides ? `${slides} slide${slides === 1 ? "" : "s"}` : "";
  $("segments-title").textContent = slides ? "Slides" : "Segments";
  $("segments").replaceChildren(...(job.segments || []).map((s) => {
    const item = document.createElement("li");
    item.className = s.state;
    const within = s.state === "running" && s.stage ? ` - ${s.stage} ${Math.round(100 * s.progress)}%` : "";
    const title = slides ? (job.slide_titles || [])[s.index] : "";
    item.textContent = slides ? `Slide ${s.index + 1}${title ? ` (${title})` : ""}: ${s.state}${within}`
      : `${s.state}${within}`;
    return item;
  }));
  $("stages").tBodies[0].replaceChildren(...(job.stages || []).map((s) => {
    const row = document.createElement("tr");
    row.append(cell(s.name), cell(s.runs ? `${s.seconds.toFixed(1)} s (${s.runs}x)` : "-"));
    return row;
  }));
  const done = job.state === "done" && job.links && job.links.video;
  $("result").hidden = !done;
  $("cancel").hidden = FINISHED.has(job.state);
  if (done && shownVideo !== job.id) {
    shownVideo = job.id;
    $("player").src = job.links.video;
    $("download-video").href = job.links.video;
    $("download-video").download = `podium-${job.id}.mp4`;
    const subtitles = $("download-subtitles");
    subtitles.hidden = !job.links.subtitles;
    if (job.links.subtitles) subtitles.href = job.links.subtitles;
    const captions = $("download-captions");  // the .ass: words, karaoke and style, for a player or editor
    captions.hidden = !job.links.captions;
    if (job.links.captions) { captions.href = job.links.captions; captions.download = `podium-${job.id}.ass`; }
    const notes = $("download-notes");  // a guided lecture's narration, to fix and send again
    notes.hidden = !job.links.notes;
    if (job.links.notes) { notes.href = job.links.notes; notes.download = `podium-${job.id}.notes.md`; }
  }
  for (const row of $("jobs").tBodies[0].rows) row.classList.toggle("current", row.dataset.id === job.id);
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

async function refreshList() {
  try {
    const listing = await api("GET", "/api/jobs?limit=50");
    const rows = listing.jobs.map((job) => {
      const row = document.createElement("tr");
      row.dataset.id = job.id;
      row.classList.toggle("current", job.id === current);
      const state = cell(job.state);
      state.className = `state-cell ${job.state}`;
      const actions = document.createElement("td");
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "link";
      remove.textContent = FINISHED.has(job.state) ? "delete" : "cancel";
      remove.addEventListener("click", (event) => { event.stopPropagation(); drop(job.id); });
      actions.append(remove);
      row.append(cell(new Date(job.created * 1000).toLocaleString()), cell(job.title || job.id),
                 cell(job.preset || ""), state, actions);
      row.addEventListener("click", () => follow(job.id));
      return row;
    });
    $("jobs").tBodies[0].replaceChildren(...rows);
    $("no-jobs").hidden = rows.length > 0;
  } catch (err) {
    showError(err.message);
  }
}

async function drop(id) {
  showError("");
  try {
    await api("DELETE", `/api/jobs/${id}`);
    if (id === current) poll();
  } catch (err) {
    showError(err.message);
  }
  refreshList();
}

document.addEventListener("DOMContentLoaded", () => {
  document.addEventListener("podium:signed-in", () => { showError(""); refreshList(); });
  for (const radio of document.querySelectorAll("input[name=mode]")) radio.addEventListener("change", showMode);
  $("job-form").addEventListener("submit", submit);
  $("deck").addEventListener("change", showDeck);
  $("cancel").addEventListener("click", () => drop(current));
  showMode();
  showDeck();
  loadChoices();
  refreshList();
  setInterval(refreshList, POLL_LIST_MS);
});
