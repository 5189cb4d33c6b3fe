"""The local web demo: upload a video or audio file (and subtitles), see the emotions, the explanation, the
utterances and the timeline plot; a recording longer than one context window comes back as an emotion timeline
per speaker (acoustemo.timeline), with its progress while it works.

HTTP, multipart parsing and concurrency are FastAPI / Starlette's, parsing python-multipart's, the server uvicorn's;
what stays ours is the upload rules (size caps, type checks, same-origin only), the per-request temporary folder and
the page. The predictor is injected — `predictor(media_path, subtitles_path, speaker, plot_path, progress) -> dict`
(the `predict --json` dict, a clip's or a timeline's; it may write a PNG at `plot_path` and calls
`progress(done, total)` as a long recording's windows are answered) — and runs in a worker thread under one lock,
so the model is loaded once and never runs two requests at a time, while pages and health checks keep being
answered. Uploads live only in a `tempfile.mkdtemp` folder that is deleted once they are answered.

Two ways in, one pipeline:
- POST /api/jobs answers at once with a job id; the upload waits for the model in the background and
  GET /api/jobs/ID tells its state and progress, then holds the answer for `job_ttl_s` (the page uses this).
  At most `max_jobs` jobs are unfinished at once (uploads on disk); more are refused with 503.
- POST /api/predict holds the connection until the answer (for curl and scripts). At most `max_pending` of these
  uploads are on disk at once; the others wait before their body is read.

    GET  /              the page (acoustemo/web/index.html)
    GET  /static/NAME   its script and style sheet
    GET  /healthz       {"status": "ok", "model": ..., "max_upload_bytes": ..., accepted extensions}
    POST /api/predict   multipart form: media (file), subtitles (file, optional), speaker (text, optional)
                        -> the prediction JSON + "plot": "data:image/png;base64,..." (null when none was drawn)
                        errors -> {"error": message} with 400 / 403 / 404 / 411 / 413 / 415 / 422 / 500 / 503
    POST /api/jobs      the same form -> 202 {"job": ID, "url": "/api/jobs/ID", "state": "queued", ...};
                        errors found in the upload itself answer at once, as for /api/predict
    GET  /api/jobs/ID   {"state": "queued" | "running" | "done" | "error", "done", "total" (answers of a long
                        recording's windows x speakers; 0 until it is split), "ahead" (jobs before it),
                        "result" (when done: /api/predict's answer), "error" and "status" (when it failed)}
    GET  /openapi.json  the API for other programs; GET /docs shows it as a page (offline, no CDN)
"""

from __future__ import annotations

import asyncio
import base64
import ctypes
import html
import json
import logging
import os
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from acoustemo.errors import AcoustEmoError, ConfigError

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
Predictor = Callable[[Path, "Path | None", "str | None", Path, "Progress | None"], dict]

MEDIA_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus", ".aac")
SUBTITLE_EXTENSIONS = (".srt", ".vtt", ".json", ".txt")
MAX_SUBTITLE_BYTES = 5 * 2**20
MAX_FIELD_BYTES = 4096  # the speaker name and any other text field
MAX_FILES = 2  # media and subtitles
MAX_FIELDS = 5
MULTIPART_SLACK_BYTES = 64 * 2**10  # part headers and boundaries on top of the files themselves
DRAIN_LIMIT_BYTES = 2 * 2**30  # read (and discard) a refused body up to this so the browser sees our answer
FILE_FIELDS = ("media", "subtitles")
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
_SAFE_FETCH_SITES = {"same-origin", "none"}  # "none": the user typed the address; everything else is another page
_SECURITY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                                 b"frame-ancestors 'none'"),
]
_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                  ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


class UploadError(Exception):
    """A request the user can fix; `status` is the HTTP code, the message is shown on the page."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Upload:
    field: str
    filename: str  # the client's name, sanitised (shown back to the user)
    path: Path  # inside the request's temporary folder
    size: int


# ---------------------------------------------------------------------------------------------------------- uploads


def safe_filename(name: str, default: str = "upload") -> str:
    """A client-supplied file name reduced to one harmless path component: the last component of either kind of
    separator, word characters, '.', '-', ' ' only, no leading dots, at most 100 characters (extension kept)."""
    name = unicodedata.normalize("NFKC", name or "").replace("\\", "/").split("/")[-1]
    name = re.sub(r"[^\w.\- ]", "_", name).strip().lstrip(".")
    name = re.sub(r"\.{2,}", ".", name)
    if not name:
        return default
    stem, dot, ext = name.rpartition(".")
    if dot and len(ext) <= 10:
        return stem[: 100 - len(ext) - 1] + "." + ext if stem else default + "." + ext
    return name[:100]


def save_upload(field: str, upload, folder: Path, max_file_bytes: int) -> Upload | None:
    """Copy one parsed file part (a Starlette `UploadFile`) to `folder/<field>/<sanitised name>`; None for the empty
    part a browser sends for an unused file input. UploadError(413) when it is larger than `max_file_bytes`."""
    if not upload.filename and not upload.size:
        return None
    if upload.size > max_file_bytes:
        raise UploadError(413, f"form field '{field}' is larger than {max_file_bytes} bytes")
    # one sub-folder per field keeps the user's (sanitised) name, so messages and plots can show it
    path = folder / safe_filename(field, "field") / safe_filename(upload.filename)
    if path.resolve().parent.parent != folder.resolve():  # belt and braces: sanitising forbids this
        raise UploadError(400, f"refusing file name {upload.filename!r}")
    path.parent.mkdir()
    upload.file.seek(0)
    with open(path, "xb") as out:
        shutil.copyfileobj(upload.file, out, 2**20)
    return Upload(field, safe_filename(upload.filename), path, path.stat().st_size)


# ------------------------------------------------------------------------------------------------ request checks


def check_origin(headers, bound_host: str, url: str) -> None:
    """Only this page may post here. A cross-site form post needs no CORS preflight, so the browser's own labels
    decide: `Sec-Fetch-Site` other than same-origin, an `Origin` of another site, and `Origin: null` (a sandboxed
    iframe, a data: or file: page — from any site) are refused; programs that send neither header are let through.
    On a loopback-bound server a Host that is not this machine is DNS rebinding and refused too."""
    host = urlsplit("//" + (headers.get("host") or "")).hostname or ""
    if bound_host in ("127.0.0.1", "::1", "localhost") and host not in _LOOPBACK_HOSTS:
        raise UploadError(403, f"Host '{host}' is not this machine; open the page at {url}")
    site = headers.get("sec-fetch-site")
    if site is not None and site.lower() not in _SAFE_FETCH_SITES:
        raise UploadError(403, f"uploads from another site (Sec-Fetch-Site: {site}) are not allowed; "
                               f"use the page at {url}")
    origin = headers.get("origin")
    if origin is not None and origin.strip().lower() == "null":
        raise UploadError(403, "uploads from a page without an origin (Origin: null: a sandboxed frame, a data: or "
                               f"file: page) are not allowed; use the page at {url}")
    if origin is not None and urlsplit(origin).netloc != headers.get("host"):
        raise UploadError(403, f"uploads from {origin} are not allowed; use the page at {url}")


def content_length(headers, max_upload_bytes: int) -> int:
    """The declared body size; 411 for chunked or unsized bodies, 413 for one that cannot fit the limit."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise UploadError(411, "chunked uploads are not supported: send a Content-Length")
    try:
        length = int(headers.get("content-length", ""))
    except ValueError:
        raise UploadError(411, "the upload has no Content-Length") from None
    if length > max_upload_bytes + MULTIPART_SLACK_BYTES:
        raise UploadError(413, f"the upload is {length / 2**20:.1f} MB but this server accepts at most "
                               f"{max_upload_bytes / 2**20:.3g} MB (restart it with --max-upload-mb N to raise "
                               "the limit)")
    return length


def check_form_type(headers) -> None:
    kind, _, params = headers.get("content-type", "").partition(";")
    if kind.strip().lower() != "multipart/form-data" or "boundary=" not in params:
        raise UploadError(400, "send the upload as multipart/form-data (a form with a 'media' file field)")


# ------------------------------------------------------------------------------------------------ type checks


def sniff_media(head: bytes) -> str | None:
    """The container family from a file's first bytes, or None when it is no audio/video format we know."""
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] in (b"WAVE", b"AVI "):
        return "avi" if head[8:12] == b"AVI " else "wav"
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "mp4/mov"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska/webm"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3/aac"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    return None


def check_media(upload: Upload) -> None:
    """Extension, magic bytes and a real ffmpeg probe that finds an audio track; UploadError(415) otherwise."""
    ext = Path(upload.filename).suffix.lower()
    if ext not in MEDIA_EXTENSIONS:
        raise UploadError(415, f"'{upload.filename}' is not a supported media file (extension '{ext or 'none'}'); "
                               f"upload one of: {' '.join(MEDIA_EXTENSIONS)}")
    if upload.size == 0:
        raise UploadError(415, f"'{upload.filename}' is empty (0 bytes)")
    with open(upload.path, "rb") as f:
        kind = sniff_media(f.read(64))
    if kind is None:
        raise UploadError(415, f"'{upload.filename}' is named {ext} but its content is not audio or video "
                               f"({_describe(upload.path)}); upload the real media file")
    from acoustemo.data.media import probe

    try:
        info = probe(upload.path)
    except AcoustEmoError as e:
        raise UploadError(415, _hide_path(str(e), upload)) from None
    if not info.has_audio:
        raise UploadError(415, f"'{upload.filename}' has no audio track; AcoustEmo listens to speech")


def check_subtitles(upload: Upload) -> None:
    """Extension, UTF-8 text and the format's signature (WEBVTT header, SRT arrows, JSON syntax)."""
    ext = Path(upload.filename).suffix.lower()
    if ext not in SUBTITLE_EXTENSIONS:
        raise UploadError(415, f"'{upload.filename}' is not a subtitle file (extension '{ext or 'none'}'); "
                               f"upload one of: {' '.join(SUBTITLE_EXTENSIONS)}")
    if upload.size > MAX_SUBTITLE_BYTES:
        raise UploadError(413, f"subtitles '{upload.filename}' are {upload.size / 2**20:.1f} MB; "
                               f"at most {MAX_SUBTITLE_BYTES // 2**20} MB")
    data = upload.path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UploadError(415, f"'{upload.filename}' is not UTF-8 text ({_describe(upload.path)}); "
                               "save the subtitles as UTF-8") from None
    problem = None
    if "\x00" in text:
        problem = "it contains NUL bytes, so it is not a text file"
    elif ext == ".vtt" and not text.lstrip().startswith("WEBVTT"):
        problem = "a WebVTT file must start with 'WEBVTT'"
    elif ext == ".srt" and "-->" not in text:
        problem = "it has no 'start --> end' timing lines"
    elif ext == ".json":
        try:
            json.loads(text)
        except json.JSONDecodeError as e:
            problem = f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}"
    if problem:
        raise UploadError(415, f"'{upload.filename}' is not valid {ext} subtitles: {problem}")


def _describe(path: Path) -> str:
    head = path.read_bytes()[:16]
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "it is a PNG image"
    if head[:3] == b"\xff\xd8\xff":
        return "it is a JPEG image"
    if head[:4] == b"%PDF":
        return "it is a PDF document"
    if head[:4] == b"PK\x03\x04":
        return "it is a ZIP archive"
    try:
        head.decode("utf-8")
        return "it looks like text"
    except UnicodeDecodeError:
        return f"it starts with bytes {head[:8].hex(' ')}"


def _hide_path(message: str, *uploads: Upload | None) -> str:
    """Messages name the user's file, not the server's temporary path."""
    # the library may name a path as given or resolved (a symlinked temporary folder); every file before the folder
    # they share, so that one upload's folder is not cut out of another's path
    names = {path: u.filename for u in uploads if u is not None for path in (u.path, u.path.resolve())}
    for path, name in names.items():
        message = message.replace(str(path), name)
    for path in names:
        message = message.replace(str(path.parent.parent), "<upload>")
    return message


def run_predictor(predictor: Predictor, media: Upload, subtitles: Upload | None, speaker: str | None,
                  plot: Path, progress: Progress | None = None) -> dict:
    """The predictor's answer plus the plot as a data: URL and the upload's names, with no server path in it."""
    try:
        result = dict(predictor(media.path, subtitles.path if subtitles else None, speaker, plot, progress))
    except AcoustEmoError as e:
        _release_memory()
        raise UploadError(422, _hide_path(str(e), media, subtitles)) from None
    except Exception:
        _release_memory()
        log.exception("prediction failed for %s", media.filename)
        raise UploadError(500, "the model failed on this file (an internal error; the server log has the "
                               "traceback)") from None
    _release_memory()
    result["plot"] = ("data:image/png;base64," + base64.b64encode(plot.read_bytes()).decode()
                      if plot.is_file() else None)
    result["upload"] = upload_names(media, subtitles, speaker)
    return json.loads(_hide_path(json.dumps(result, ensure_ascii=False), media, subtitles))


def upload_names(media: Upload, subtitles: Upload | None, speaker: str | None) -> dict:
    return {"media": media.filename, "subtitles": subtitles.filename if subtitles else None, "speaker": speaker}


def _release_memory() -> None:
    """Hand the freed heap of a prediction back to the OS (glibc keeps it in per-thread arenas otherwise, so the
    server's memory would stay at its peak after a burst of uploads; benchmarks/serve_concurrency.py measures it)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
        pass


# ------------------------------------------------------------------------------------------------------ jobs


@dataclass
class Job:
    """One upload answered in the background (POST /api/jobs); its state is read with GET /api/jobs/ID."""

    id: str
    upload: dict = field(default_factory=dict)  # the names received (set once the form is read), as in "upload"
    state: str = "queued"  # queued -> running -> done | error
    done: int = 0  # answers given so far (a long recording's windows x speakers)
    total: int = 0  # 0 until the recording is split into windows (a short clip stays at 0)
    result: dict | None = None
    error: str | None = None
    status: int = 200  # what POST /api/predict would have answered with
    finished_at: float | None = None  # time.monotonic()
    task: asyncio.Task | None = field(default=None, repr=False)  # held so the event loop does not drop it

    def progress(self, done: int, total: int) -> None:
        """Called from the model's worker thread: plain int stores, read by the event loop."""
        self.total, self.done = total, done

    def to_json(self, ahead: int) -> dict:
        out = {"job": self.id, "url": f"/api/jobs/{self.id}", "state": self.state, "done": self.done,
               "total": self.total, "ahead": ahead, "upload": self.upload}
        if self.state == "done":
            out["result"] = self.result
        if self.state == "error":
            out["error"], out["status"] = self.error, self.status
        return out


class JobBoard:
    """The jobs of one server, oldest first. At most `max_jobs` unfinished (each holds an upload on disk); a
    finished one is kept `ttl_s` seconds for its page to read, and at most `max_kept` of them, so memory does not
    grow with the number of uploads."""

    def __init__(self, max_jobs: int = 4, ttl_s: float = 600.0, max_kept: int = 16):
        if max_jobs < 1 or ttl_s <= 0 or max_kept < 1:
            raise ValueError(f"need max_jobs >= 1, ttl_s > 0, max_kept >= 1; got {max_jobs}, {ttl_s}, {max_kept}")
        self.max_jobs, self.ttl_s, self.max_kept = max_jobs, ttl_s, max_kept
        self.jobs: dict[str, Job] = {}

    def unfinished(self) -> list[Job]:
        return [j for j in self.jobs.values() if j.finished_at is None]

    def open(self) -> Job:
        """A new queued job, before its upload is read (so the limit bounds the disk too); UploadError(503) when
        `max_jobs` are already unfinished."""
        self.sweep()
        busy = self.unfinished()
        if len(busy) >= self.max_jobs:
            raise UploadError(503, f"the server is already working on {len(busy)} uploads (its limit); try again "
                                   "when one has finished")
        job = Job(secrets.token_urlsafe(16))
        self.jobs[job.id] = job
        return job

    def finish(self, job: Job) -> None:
        job.finished_at = time.monotonic()

    def drop(self, job: Job) -> None:
        self.jobs.pop(job.id, None)

    def ahead(self, job: Job) -> int:
        """Unfinished jobs posted before this one (the model answers them in order)."""
        if job.finished_at is not None:
            return 0
        ids = list(self.jobs)
        return sum(1 for i in ids[: ids.index(job.id)] if self.jobs[i].finished_at is None)

    def sweep(self) -> None:
        """Forget finished jobs older than ttl_s, then the oldest finished beyond max_kept."""
        now = time.monotonic()
        finished = [j for j in self.jobs.values() if j.finished_at is not None]
        for j in finished:
            if now - j.finished_at > self.ttl_s:
                self.drop(j)
        finished = [j for j in finished if j.id in self.jobs]
        for j in sorted(finished, key=lambda j: j.finished_at)[: max(0, len(finished) - self.max_kept)]:
            self.drop(j)


# ------------------------------------------------------------------------------------------------------ the app

_FORM_SCHEMA = {
    "type": "object", "required": ["media"],
    "properties": {
        "media": {"type": "string", "format": "binary",
                  "description": "the video or audio file (" + " ".join(MEDIA_EXTENSIONS) + ")"},
        "subtitles": {"type": "string", "format": "binary",
                      "description": "optional timed subtitles (" + " ".join(SUBTITLE_EXTENSIONS) + ")"},
        "speaker": {"type": "string", "maxLength": MAX_FIELD_BYTES,
                    "description": "optional target speaker, as named in the subtitles"},
    },
}
_ERROR_SCHEMA = {"content": {"application/json": {"schema": {
    "type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}}}}
_ERRORS = {400: "malformed form or no media file", 403: "posted from another site or host",
           411: "no Content-Length", 413: "larger than the upload limit", 415: "not audio/video or not subtitles",
           422: "the pipeline refused the file (for example subtitles that end before they start)",
           500: "an internal error", 503: "too many uploads waiting"}


def create_app(predictor: Predictor, model_name: str = "", max_upload_bytes: int = 200 * 2**20,
               max_pending: int = 4, max_queued: int = 64, bound_host: str = "127.0.0.1", url: str = "",
               max_jobs: int = 4, job_ttl_s: float = 600.0):
    """The ASGI app. POST /api/predict: at most `max_pending` uploads are read to disk at once (bounding temporary
    disk use); up to `max_queued` more wait, unread, for their turn; past that the answer is 503. POST /api/jobs: at
    most `max_jobs` unfinished jobs, each answer kept `job_ttl_s` seconds after it is ready."""
    app = FastAPI(title="AcoustEmo demo", version="1", docs_url=None, redoc_url=None,
                  description="Upload a clip or a long recording, get the emotions the model hears and its "
                              "explanation (a timeline per speaker for a recording longer than one context window).")
    app.add_middleware(SecurityHeaders)
    web_dir = resources.files("acoustemo") / "web"
    state = {"waiting": 0}
    disk_slots, predict_lock = asyncio.Semaphore(max_pending), asyncio.Lock()
    board = JobBoard(max_jobs, job_ttl_s)

    @app.exception_handler(UploadError)
    async def upload_error(request, exc: UploadError):
        return JSONResponse({"error": str(exc)}, exc.status, headers={"Connection": "close"})

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        message = f"no page at {request.url.path}" if exc.status_code == 404 else str(exc.detail)
        return JSONResponse({"error": message}, exc.status_code)

    @app.exception_handler(Exception)
    async def internal_error(request, exc):  # a bug or a full disk: answer in JSON rather than drop the connection
        log.error("request failed", exc_info=exc)
        return JSONResponse({"error": "the server failed while handling the request (see its log)"}, 500)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc):
        return JSONResponse({"error": str(exc)}, 400)

    @app.get("/healthz", summary="Liveness and the upload limits")
    async def health() -> dict:
        return {"status": "ok", "model": model_name, "max_upload_bytes": max_upload_bytes,
                "media_extensions": list(MEDIA_EXTENSIONS), "subtitle_extensions": list(SUBTITLE_EXTENSIONS)}

    @app.get("/", include_in_schema=False)
    @app.get("/index.html", include_in_schema=False)
    async def page():
        return await static("index.html")

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str):
        res = web_dir / name
        if not name or name.startswith(".") or "\\" in name or not res.is_file():
            return JSONResponse({"error": f"no file {name}"}, 404)
        return Response(res.read_bytes(), media_type=_CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream"))

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return HTMLResponse(api_page(app.openapi()))

    answer_doc = ("the `acoustemo predict --json` answer (a clip's, or with \"kind\": \"timeline\" a long "
                  "recording's), plus `plot` (a PNG data: URL or null) and `upload` (the names received)")
    form_body = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": _FORM_SCHEMA}}}}
    error_docs = {code: {"description": what, **_ERROR_SCHEMA} for code, what in _ERRORS.items()}

    @app.post("/api/predict", summary="Predict the emotions in one clip or recording (waits for the answer)",
              response_model=None, openapi_extra=form_body,
              responses={200: {"description": answer_doc}, **error_docs})
    async def predict(request: Request):
        def admit() -> None:
            if state["waiting"] >= max_pending + max_queued:
                raise UploadError(503, f"the server has {state['waiting']} uploads waiting; try again shortly")

        length, _ = await _accept(request, admit)
        state["waiting"] += 1
        try:
            async with disk_slots:
                return await _handle_upload(request, length)
        finally:
            state["waiting"] -= 1

    async def _handle_upload(request, length: int):
        folder = Path(tempfile.mkdtemp(prefix="acoustemo-upload-"))
        try:
            media, subtitles, speaker = await _receive(request, length, folder)
            async with predict_lock:
                result = await run_in_threadpool(run_predictor, predictor, media, subtitles, speaker,
                                                 folder / "timeline.png")
            return JSONResponse(result)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @app.post("/api/jobs", summary="Start answering one clip or recording; follow it at the returned url",
              response_model=None, status_code=202, openapi_extra=form_body,
              responses={202: {"description": "{job, url, state: queued, done, total, ahead, upload}"},
                         **error_docs})
    async def create_job(request: Request):
        length, job = await _accept(request, board.open)
        folder = Path(tempfile.mkdtemp(prefix="acoustemo-upload-"))
        try:
            media, subtitles, speaker = await _receive(request, length, folder)
        except BaseException:
            board.drop(job)
            shutil.rmtree(folder, ignore_errors=True)
            raise
        job.upload = upload_names(media, subtitles, speaker)
        job.task = asyncio.create_task(_run_job(job, folder, media, subtitles, speaker))
        return JSONResponse(job.to_json(board.ahead(job)), 202)

    async def _run_job(job: Job, folder: Path, media: Upload, subtitles: Upload | None, speaker: str | None):
        try:
            async with predict_lock:
                job.state = "running"
                job.result = await run_in_threadpool(run_predictor, predictor, media, subtitles, speaker,
                                                     folder / "timeline.png", job.progress)
            job.state = "done"
        except UploadError as e:
            job.error, job.status, job.state = str(e), e.status, "error"
        except Exception:  # a bug or a full disk: the page gets a message, the log the traceback
            log.exception("job %s failed", job.id)
            job.error, job.status, job.state = "the server failed while answering (see its log)", 500, "error"
        finally:
            board.finish(job)
            shutil.rmtree(folder, ignore_errors=True)

    @app.get("/api/jobs/{job_id}", summary="A job's state, progress and, once done, its answer",
             responses={200: {"description": "{job, url, state, done, total, ahead, upload, result | error, status}"},
                        404: {"description": "no such job (or its answer has expired)", **_ERROR_SCHEMA}})
    async def job_state(job_id: str, request: Request) -> dict:
        check_origin(request.headers, bound_host, url)
        board.sweep()
        job = board.jobs.get(job_id)
        if job is None:
            raise UploadError(404, f"no job {job_id!r}: it never existed, or its answer has expired (answers are "
                                   f"kept {job_ttl_s / 60:g} minutes after they are ready); upload the file again")
        return job.to_json(board.ahead(job))

    async def _accept(request, admit: Callable):
        """The checks made before the body is read, then `admit()` (a queue's); a refused body is drained so the
        browser sees the answer. Returns (declared length, what admit returned)."""
        length = -1  # unknown: nothing is drained
        try:
            length = content_length(request.headers, max_upload_bytes)
            check_origin(request.headers, bound_host, url)
            check_form_type(request.headers)
            return length, admit()
        except UploadError:
            await _drain(request.stream(), length)
            raise

    async def _receive(request, length: int, folder: Path) -> tuple[Upload, Upload | None, str | None]:
        """The form saved into `folder`, its files checked to be media and subtitles."""
        media, subtitles, speaker = await _read_form(request, length, folder)
        await run_in_threadpool(check_media, media)
        if subtitles is not None:
            await run_in_threadpool(check_subtitles, subtitles)
        return media, subtitles, speaker

    async def _read_form(request, length: int, folder: Path) -> tuple[Upload, Upload | None, str | None]:
        body = request.stream()
        parser = MultiPartParser(request.headers, body, max_files=MAX_FILES, max_fields=MAX_FIELDS,
                                 max_part_size=MAX_FIELD_BYTES)
        try:
            form = await parser.parse()
        except MultiPartException as e:
            await _drain(body, length)
            raise UploadError(400, f"malformed or oversized form: {e}") from None
        try:
            for name in {*FILE_FIELDS, "speaker"}:
                if len(form.getlist(name)) > 1:
                    raise UploadError(400, f"the form has two '{name}' fields; send one")
            files = {}
            for name in FILE_FIELDS:
                part = form.get(name)
                if part is not None and not isinstance(part, str):
                    files[name] = await run_in_threadpool(save_upload, name, part, folder, max_upload_bytes)
        finally:
            await form.close()
        if files.get("media") is None:
            raise UploadError(400, "no media file in the form: choose a video or audio file to upload")
        speaker = form.get("speaker")
        speaker = speaker.strip() if isinstance(speaker, str) else ""
        return files["media"], files.get("subtitles"), speaker or None

    return app


async def _drain(body, length: int) -> None:
    """Read a refused body so the browser gets our answer instead of a connection reset (up to a bound)."""
    if not 0 < length <= DRAIN_LIMIT_BYTES:
        return
    try:
        async for _ in body:
            pass
    except Exception:  # the client went away: nothing to answer
        pass


class SecurityHeaders:
    """Pure ASGI middleware: every answer is uncached, unsniffable and runs only this site's own scripts."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def api_page(spec: dict) -> str:
    """/docs: the OpenAPI document as a plain page (the usual Swagger UI loads from a CDN; this server is offline)."""
    rows = []
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            form = (op.get("requestBody", {}).get("content", {}).get("multipart/form-data", {}).get("schema", {}))
            fields = "".join(f"<li><code>{html.escape(k)}</code> ({html.escape(v.get('format', v['type']))}"
                             f"{', required' if k in form.get('required', []) else ''}): "
                             f"{html.escape(v.get('description', ''))}</li>"
                             for k, v in form.get("properties", {}).items())
            codes = ", ".join(f"{c} {html.escape(r.get('description', ''))}" for c, r in op.get("responses", {}).items())
            rows.append(f"<section><h2><code>{method.upper()} {html.escape(path)}</code></h2>"
                        f"<p>{html.escape(op.get('summary', ''))}</p>{'<ul>' + fields + '</ul>' if fields else ''}"
                        f"<p>Responses: {codes}</p></section>")
    example = "curl -F media=@clip.mp4 -F subtitles=@clip.srt -F speaker=Anna http://127.0.0.1:8000/api/predict"
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(spec['info']['title'])} "
            "API</title><link rel=stylesheet href=/static/style.css></head><body><main>"
            f"<h1>{html.escape(spec['info']['title'])} API</h1><p>Machine-readable: <a href=/openapi.json>"
            f"/openapi.json</a> (OpenAPI {html.escape(spec['openapi'])}). Example: <code>{example}</code></p>"
            + "".join(rows) + "</main></body></html>")


# ----------------------------------------------------------------------------------------------------- server


class DemoServer:
    """uvicorn on a socket bound up front (so port 0 has a real number before serving starts)."""

    def __init__(self, sock: socket.socket, predictor: Predictor, model_name: str, max_upload_bytes: int,
                 max_pending: int, max_queued: int, max_jobs: int = 4, job_ttl_s: float = 600.0):
        import uvicorn

        self.socket, self.server_address = sock, sock.getsockname()[:2]
        self.max_upload_bytes = max_upload_bytes
        self.app = create_app(predictor, model_name, max_upload_bytes, max_pending, max_queued,
                              bound_host=self.server_address[0], url=self.url, max_jobs=max_jobs,
                              job_ttl_s=job_ttl_s)
        config = uvicorn.Config(self.app, http="h11", loop="asyncio", lifespan="off", log_config=None,
                                access_log=False, timeout_graceful_shutdown=10)
        self._uvicorn = uvicorn.Server(config)
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"

    def serve_forever(self) -> None:
        """Serve until `shutdown()` (or, in the main thread, Ctrl+C, which uvicorn re-raises once it has stopped)."""
        try:
            self._uvicorn.run(sockets=[self.socket])
        finally:
            self._stopped.set()

    def shutdown(self, timeout_s: float = 30) -> None:
        self._uvicorn.should_exit = True
        self._stopped.wait(timeout_s)

    def server_close(self) -> None:
        self.socket.close()


def make_server(predictor: Predictor, host: str = "127.0.0.1", port: int = 8000, max_upload_mb: float = 200,
                model_name: str = "", max_pending: int = 4, max_queued: int = 64, max_jobs: int = 4,
                job_ttl_s: float = 600.0) -> DemoServer:
    """A bound server (port 0 = any free port); call `serve_forever()` (or run it in a thread)."""
    if max_upload_mb <= 0:
        raise ValueError(f"max_upload_mb must be positive, got {max_upload_mb}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family)
    return DemoServer(sock, predictor, model_name, int(max_upload_mb * 2**20), max_pending, max_queued, max_jobs,
                      job_ttl_s)


def model_predictor(predictor, config=None) -> Predictor:
    """The server's predictor for a loaded model (`acoustemo.predictor.Predictor`): `predict_media`, as the CLI's
    `predict` runs it, so the library's own splitting decides: a dialogue that fits one context window gets the
    clip's answer and its plot (with the Q-Former's attention), a longer one the timeline (`config`, an
    `acoustemo.timeline.TimelineConfig`) and the one-lane-per-speaker plot. A failed plot costs a warning, not the
    answer.

    Clips are named by content ("upload-<sha256 prefix>"), so features cached for one upload never overwrite a
    training clip's, and uploading the same file again (say, with other subtitles) reuses them."""
    from acoustemo.data.media import media_sha256
    from acoustemo.plot import plot_prediction, plot_recording_timeline
    from acoustemo.timeline import Timeline, TimelineConfig, predict_media

    config = config or TimelineConfig()

    def predict(media: Path, subtitles: Path | None, speaker: str | None, plot_path: Path,
                progress: Progress | None = None) -> dict:
        clip_id = "upload-" + media_sha256(media)[:16]
        answer = predict_media(media, subtitles, speaker, model=predictor, config=config, progress=progress,
                               clip_id=clip_id)
        result = answer.to_json()
        try:
            if isinstance(answer, Timeline):
                result["media"] = media.name  # the upload's name, not the server's temporary path
                plot_recording_timeline(plot_path, answer)
            else:
                plot_prediction(plot_path, media, answer, predictor, speaker)
        except Exception as e:  # the answer is still worth showing
            log.exception("timeline plot failed for %s", media.name)
            result.setdefault("warnings", []).append(f"the timeline plot could not be drawn: {e}")
        return result

    return predict


def serve(model_dir: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000, max_upload_mb: float = 200,
          cache_dir: str | os.PathLike | None = None, device: str | None = None, timeline=None) -> None:
    """Load the model once, then serve until interrupted. `timeline` (an acoustemo.timeline.TimelineConfig)
    splits recordings longer than one context window, as `predict --max-span/--context` does.

    Features of uploads are cached in a temporary folder deleted at exit (unless `cache_dir` is given), so nothing
    derived from an upload outlives the server."""
    from acoustemo.predictor import load_predictor

    own_cache = cache_dir is None
    cache = Path(tempfile.mkdtemp(prefix="acoustemo-serve-cache-")) if own_cache else Path(cache_dir)
    try:
        log.info("loading the model from %s", model_dir)
        predictor = load_predictor(model_dir, cache, device)
        try:
            server = make_server(model_predictor(predictor, timeline), host, port, max_upload_mb,
                                 model_name=str(predictor.model_dir))
        except OSError as e:
            raise ConfigError(f"cannot listen on {host}:{port} ({e.strerror}); is another server using the port? "
                              "try --port 0 (any free port) or another one") from None
        if host not in _LOOPBACK_HOSTS:
            log.warning("serving on %s: anyone who can reach this address can upload files and run the model", host)
        print(f"AcoustEmo demo at {server.url} (Ctrl+C to stop; the API is described at {server.url}docs)",
              flush=True)
        try:
            server.serve_forever()
        finally:
            server.server_close()
    finally:
        if own_cache:
            shutil.rmtree(cache, ignore_errors=True)
