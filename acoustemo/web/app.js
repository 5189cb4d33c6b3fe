// The AcoustEmo demo page: upload with progress, then render the JSON from POST /api/predict.
"use strict";

const $ = (id) => document.getElementById(id);
let limits = { max_upload_bytes: null, media_extensions: null, subtitle_extensions: null };

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
  const m = Math.floor(s / 60);
  return `${m}:${(s - m * 60).toFixed(2).padStart(5, "0")}`;
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
  show($("result"), true);
  $("result").scrollIntoView({ behavior: "smooth", block: "start" });
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
  xhr.open("POST", "/api/predict");
  xhr.responseType = "json";
  xhr.upload.onprogress = (e) => {
    if (e.lengthComputable) setStatus(`Uploading ${media.name}… ${Math.round(100 * e.loaded / e.total)}%`, 100 * e.loaded / e.total);
  };
  xhr.upload.onload = () => setStatus("Analysing: finding utterances, encoding the audio, asking the model…", null);
  xhr.onload = () => {
    $("submit").disabled = false;
    setStatus("");
    const data = xhr.response;
    if (xhr.status === 200 && data) { renderResult(data); return; }
    let message = data && data.error ? data.error : `The server answered HTTP ${xhr.status}.`;
    message = message.charAt(0).toUpperCase() + message.slice(1);
    showError(`${message} (HTTP ${xhr.status})`);
  };
  xhr.onerror = () => {
    $("submit").disabled = false;
    setStatus("");
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
