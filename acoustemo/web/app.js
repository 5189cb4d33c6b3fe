// The AcoustEmo demo page: upload with progress (POST /api/jobs), follow the job (GET /api/jobs/ID) with its
// progress, then render its answer: a clip's emotions and explanation, or a long recording's timeline.
"use strict";

const $ = (id) => document.getElementById(id);
let limits = { max_upload_bytes: null, media_extensions: null, subtitle_extensions: null };
const POLL_MS = 700;

function show(el, on) { el.hidden = !on; }

function setStatus(text, percent) {
  show($("status"), Boolean(text));
  $("status-text").textContent = text || "";
  const bar = $("progress");
  if (percent == null) { bar.removeAttribute("value"); } else { bar.value = percent; }
}

function showError(message) {
  $("error").textContent = message;
  show($("error"), Boolean(message));
}

function mb(bytes) { return (bytes / 1048576).toFixed(1).replace(/\.0$/, "") + " MB"; }

function extension(name) {
  const dot = name.lastIndexOf(".");
  return dot < 0 ? "" : name.slice(dot).toLowerCase();
}

// Catch the obvious mistakes before sending megabytes; the server checks all of it again.
function checkBeforeUpload(media, subtitles) {
  if (!media) return "Choose a video or audio file first.";
  if (limits.media_extensions && !limits.media_extensions.includes(extension(media.name))) {
    return `'${media.name}' is not a supported media file; upload one of: ${limits.media_extensions.join(" ")}`;
  }
  if (subtitles && limits.subtitle_extensions && !limits.subtitle_extensions.includes(extension(subtitles.name))) {
    return `'${subtitles.name}' is not a subtitle file; upload one of: ${limits.subtitle_extensions.join(" ")}`;
  }
  const total = media.size + (subtitles ? subtitles.size : 0);
  if (limits.max_upload_bytes && total > limits.max_upload_bytes) {
    return `The upload is ${mb(total)} but this server accepts at most ${mb(limits.max_upload_bytes)} ` +
      "(restart it with --max-upload-mb N to raise the limit).";
  }
  return "";
}

function fmtTime(s) {
  if (s >= 3600) {
    const t = Math.round(s), h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60);
    return `${h}:${String(m).padStart(2, "0")}:${String(t % 60).padStart(2, "0")}`;
  }
  const m = Math.floor(s / 60);
  return `${m}:${(s - m * 60).toFixed(2).padStart(5, "0")}`;
}

function fillList(list, items) {
  list.replaceChildren();
  for (const text of items || []) {
    const li = document.createElement("li");
    li.textContent = text;
    list.append(li);
  }
}

function fillTable(table, rows) {
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const cells of rows) {
    const row = body.insertRow();
    for (const v of cells) row.insertCell().textContent = v;
  }
}

function percent(x) { return `${Math.round(100 * x)}%`; }

// A long recording (the server's "kind": "timeline", acoustemo.timeline.Timeline.to_json): the per-speaker summary,
// the lanes plot and one row per window and speaker.
function renderTimeline(data) {
  const upload = data.upload || {};
  $("timeline-file").textContent = upload.media ? `— ${upload.media}` : "";
  const windows = data.windows || [], utterances = data.utterances || [];
  const meta = [`duration ${fmtTime(data.duration_s || 0)}`,
    `${utterances.length} utterances in ${windows.length} windows of at most ${data.config.max_span_s} s`,
    `utterance times from: ${data.timestamps_source}`];
  if (data.target_speaker) meta.push(`target speaker: ${data.target_speaker}`);
  if (data.model) meta.push(`model: ${data.model}`);
  $("timeline-meta").textContent = meta.join(" · ");
  fillList($("timeline-warnings"), data.warnings);
  const name = (s) => s || "(unnamed)";
  const summary = data.summary || {};
  // rows in the order speakers first speak ("speakers"): a JSON object's key order is not to be relied on
  const speakers = (data.speakers || Object.keys(summary)).filter((speaker) => summary[speaker]);
  fillTable($("timeline-summary"), speakers.map((speaker) => {
    const s = summary[speaker];
    const shares = s.emotions.map((e) => `${e.emotion} ${percent(e.share_time)} / ${percent(e.share_windows)}`);
    return [name(speaker), s.windows, `${Math.round(s.speaking_s)} s`, shares.join(", ") || "(none named)"];
  }));
  fillTable($("timeline-rows"), (data.timeline || []).map((e) => [
    fmtTime(e.start), fmtTime(e.end), name(e.speaker), e.emotions.join(", ") || "(none named)",
    e.explanation || "(no explanation given)",
  ]));
  if (data.plot) { $("timeline-plot").src = data.plot; }
  show($("timeline-plot-figure"), Boolean(data.plot));
  show($("result"), false);
  show($("timeline"), true);
  $("timeline").scrollIntoView({ behavior: "smooth", block: "start" });
}

function render(data) {
  if (data.kind === "timeline") { renderTimeline(data); } else { renderResult(data); }
}

function renderResult(data) {
  const emotions = $("emotions");
  emotions.replaceChildren();
  for (const e of data.emotions || []) {
    const li = document.createElement("li");
    li.textContent = e;
    emotions.append(li);
  }
  if (!emotions.children.length) {
    const li = document.createElement("li");
    li.className = "none";
    li.textContent = "no emotion named";
    emotions.append(li);
  }
  $("explanation").textContent = data.explanation || "(no explanation given)";
  const upload = data.upload || {};
  $("result-file").textContent = upload.media ? `— ${upload.media}` : "";
  const meta = [];
  if (data.timestamps_source) meta.push(`utterance times from: ${data.timestamps_source}`);
  if (data.target_speaker || upload.speaker) meta.push(`target speaker: ${data.target_speaker || upload.speaker}`);
  if (data.model) meta.push(`model: ${data.model}`);
  $("meta").textContent = meta.join(" · ");
  const warnings = $("warnings");
  warnings.replaceChildren();
  for (const w of data.warnings || []) {
    const li = document.createElement("li");
    li.textContent = w;
    warnings.append(li);
  }
  const body = $("utterances").tBodies[0];
  body.replaceChildren();
  (data.utterances || []).forEach((u, i) => {
    const row = body.insertRow();
    const start = u.start ?? u.start_s, end = u.end ?? u.end_s;
    for (const v of [i + 1, fmtTime(start), fmtTime(end), u.speaker || "", u.text || ""]) {
      row.insertCell().textContent = v;
    }
  });
  if (data.plot) { $("plot").src = data.plot; }
  show($("plot-figure"), Boolean(data.plot));
  show($("timeline"), false);
  show($("result"), true);
  $("result").scrollIntoView({ behavior: "smooth", block: "start" });
}

// What a job's state (GET /api/jobs/ID) means to the person waiting: [text, percent or null].
function jobStatus(job) {
  const name = (job.upload && job.upload.media) || "the file";
  if (job.state === "queued") {
    const ahead = job.ahead ? ` (${job.ahead} upload${job.ahead === 1 ? "" : "s"} ahead)` : "";
    return [`Waiting for the model${ahead}…`, null];
  }
  if (job.total > 0) {
    return [`Asking the model about ${name}: ${job.done} of ${job.total} window answers (windows × speakers)`,
      100 * job.done / job.total];
  }
  return [`Analysing ${name}: finding utterances, encoding the audio, asking the model…`, null];
}

function showJobError(message, status) {
  message = message.charAt(0).toUpperCase() + message.slice(1);
  showError(`${message} (HTTP ${status})`);
}

function finish() {
  $("submit").disabled = false;
  setStatus("");
}

// Poll the job until it is done or failed; its progress goes to the status line.
async function follow(url) {
  for (;;) {
    let job, status;
    try {
      const response = await fetch(url, { cache: "no-store" });
      status = response.status;
      job = await response.json();
    } catch (e) {
      finish();
      showError("Lost contact with the server while it was working (is it still running?).");
      return;
    }
    if (status !== 200) { finish(); showJobError(job.error || "the job could not be read", status); return; }
    if (job.state === "done") { finish(); render(job.result); return; }
    if (job.state === "error") { finish(); showJobError(job.error, job.status); return; }
    setStatus(...jobStatus(job));
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function submit(event) {
  event.preventDefault();
  showError("");
  const media = $("media").files[0], subtitles = $("subtitles").files[0];
  const problem = checkBeforeUpload(media, subtitles);
  if (problem) { showError(problem); return; }

  const form = new FormData();
  form.append("media", media, media.name);
  if (subtitles) form.append("subtitles", subtitles, subtitles.name);
  form.append("speaker", $("speaker").value.trim());

  // XMLHttpRequest rather than fetch: it reports upload progress.
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/jobs");
  xhr.responseType = "json";
  xhr.upload.onprogress = (e) => {
    if (e.lengthComputable) setStatus(`Uploading ${media.name}… ${Math.round(100 * e.loaded / e.total)}%`, 100 * e.loaded / e.total);
  };
  xhr.upload.onload = () => setStatus(`Checking ${media.name}…`, null);
  xhr.onload = () => {
    const data = xhr.response;
    if (xhr.status === 202 && data && data.url) { setStatus(...jobStatus(data)); follow(data.url); return; }
    finish();
    showJobError(data && data.error ? data.error : `the server answered HTTP ${xhr.status}.`, xhr.status);
  };
  xhr.onerror = () => {
    finish();
    showError("The upload failed: the server closed the connection (is it still running, and is the file within the size limit?).");
  };
  $("submit").disabled = true;
  setStatus(`Uploading ${media.name}…`, 0);
  xhr.send(form);
}

async function init() {
  $("upload").addEventListener("submit", submit);
  try {
    const health = await (await fetch("/healthz")).json();
    limits = health;
    if (health.model) { $("model").textContent = `model: ${health.model}`; show($("model"), true); }
    if (health.max_upload_bytes) { $("media-hint").textContent += ` — up to ${mb(health.max_upload_bytes)}`; }
  } catch (e) {
    showError("Cannot reach the AcoustEmo server; is `acoustemo serve` still running?");
  }
  document.body.dataset.ready = "1";
}

document.addEventListener("DOMContentLoaded", init);
