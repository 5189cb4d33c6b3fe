"""The ASGI app: its routes, their limits and the page.

HTTP, multipart parsing and concurrency are FastAPI / Starlette's, parsing python-multipart's; what stays ours is
the upload rules (acoustemo.serve.uploads), the per-request temporary folder and the page. The predictor runs in a
worker thread under one lock, so the model never runs two requests at a time while pages and health checks keep
being answered. Uploads live only in a `tempfile.mkdtemp` folder that is deleted once they are answered.

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
import html
import logging
import shutil
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from acoustemo.serve.jobs import Job, JobBoard, Predictor, run_predictor, upload_names
from acoustemo.serve.uploads import (FILE_FIELDS, MAX_FIELD_BYTES, MAX_FIELDS, MAX_FILES, MEDIA_EXTENSIONS,
                                     SUBTITLE_EXTENSIONS, Upload, UploadError, check_form_type, check_media,
                                     check_origin, check_subtitles, content_length, save_upload)

log = logging.getLogger(__name__)

DRAIN_LIMIT_BYTES = 2 * 2**30  # read (and discard) a refused body up to this so the browser sees our answer
_SECURITY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                                 b"frame-ancestors 'none'"),
]
_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                  ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


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

_ANSWER_DOC = ("the `acoustemo predict --json` answer (a clip's, or with \"kind\": \"timeline\" a long recording's), "
               "plus `plot` (a PNG data: URL or null) and `upload` (the names received)")
_FORM_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": _FORM_SCHEMA}}}}
_ERROR_DOCS = {code: {"description": what, **_ERROR_SCHEMA} for code, what in _ERRORS.items()}


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
    app.add_exception_handler(UploadError, upload_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, internal_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    demo = DemoApp(app, predictor, model_name, max_upload_bytes, max_pending, max_queued, bound_host, url,
                   max_jobs, job_ttl_s)
    app.get("/healthz", summary="Liveness and the upload limits")(demo.health)
    app.get("/index.html", include_in_schema=False)(demo.page)
    app.get("/", include_in_schema=False)(demo.page)
    app.get("/static/{name}", include_in_schema=False)(demo.static)
    app.get("/docs", include_in_schema=False)(demo.docs)
    app.post("/api/predict", summary="Predict the emotions in one clip or recording (waits for the answer)",
             response_model=None, openapi_extra=_FORM_BODY,
             responses={200: {"description": _ANSWER_DOC}, **_ERROR_DOCS})(demo.predict)
    app.post("/api/jobs", summary="Start answering one clip or recording; follow it at the returned url",
             response_model=None, status_code=202, openapi_extra=_FORM_BODY,
             responses={202: {"description": "{job, url, state: queued, done, total, ahead, upload}"},
                        **_ERROR_DOCS})(demo.create_job)
    app.get("/api/jobs/{job_id}", summary="A job's state, progress and, once done, its answer",
            responses={200: {"description": "{job, url, state, done, total, ahead, upload, result | error, status}"},
                       404: {"description": "no such job (or its answer has expired)", **_ERROR_SCHEMA}})(
        demo.job_state)
    return app


# ------------------------------------------------------------------------------------------------ error answers


async def upload_error(request, exc: UploadError):
    return JSONResponse({"error": str(exc)}, exc.status, headers={"Connection": "close"})


async def http_error(request, exc: HTTPException):
    message = f"no page at {request.url.path}" if exc.status_code == 404 else str(exc.detail)
    return JSONResponse({"error": message}, exc.status_code)


async def internal_error(request, exc):  # a bug or a full disk: answer in JSON rather than drop the connection
    log.error("request failed", exc_info=exc)
    return JSONResponse({"error": "the server failed while handling the request (see its log)"}, 500)


async def validation_error(request, exc):
    return JSONResponse({"error": str(exc)}, 400)


# ------------------------------------------------------------------------------------------------------ routes


class DemoApp:
    """The routes' handlers and what they share: the predictor, the limits, the count of /api/predict uploads
    waiting, the disk slots they take turns for, the one lock the model runs under and the job board."""

    def __init__(self, app: FastAPI, predictor: Predictor, model_name: str, max_upload_bytes: int, max_pending: int,
                 max_queued: int, bound_host: str, url: str, max_jobs: int, job_ttl_s: float):
        self.app, self.predictor, self.model_name = app, predictor, model_name
        self.max_upload_bytes, self.max_pending, self.max_queued = max_upload_bytes, max_pending, max_queued
        self.bound_host, self.url, self.job_ttl_s = bound_host, url, job_ttl_s
        self.web_dir = resources.files("acoustemo") / "web"
        self.waiting = 0
        self.disk_slots, self.predict_lock = asyncio.Semaphore(max_pending), asyncio.Lock()
        self.board = JobBoard(max_jobs, job_ttl_s)

    async def health(self) -> dict:
        return {"status": "ok", "model": self.model_name, "max_upload_bytes": self.max_upload_bytes,
                "media_extensions": list(MEDIA_EXTENSIONS), "subtitle_extensions": list(SUBTITLE_EXTENSIONS)}

    async def page(self):
        return await self.static("index.html")

    async def static(self, name: str):
        res = self.web_dir / name
        if not name or name.startswith(".") or "\\" in name or not res.is_file():
            return JSONResponse({"error": f"no file {name}"}, 404)
        return Response(res.read_bytes(), media_type=_CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream"))

    async def docs(self):
        return HTMLResponse(api_page(self.app.openapi()))

    async def predict(self, request: Request):
        length, _ = await self._accept(request, self._admit)
        self.waiting += 1
        try:
            async with self.disk_slots:
                return await self._answer(request, length)
        finally:
            self.waiting -= 1

    def _admit(self) -> None:
        if self.waiting >= self.max_pending + self.max_queued:
            raise UploadError(503, f"the server has {self.waiting} uploads waiting; try again shortly")

    async def _answer(self, request: Request, length: int):
        folder = Path(tempfile.mkdtemp(prefix="acoustemo-upload-"))
        try:
            media, subtitles, speaker = await self._receive(request, length, folder)
            async with self.predict_lock:
                result = await run_in_threadpool(run_predictor, self.predictor, media, subtitles, speaker,
                                                 folder / "timeline.png")
            return JSONResponse(result)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    async def create_job(self, request: Request):
        length, job = await self._accept(request, self.board.open)
        folder = Path(tempfile.mkdtemp(prefix="acoustemo-upload-"))
        try:
            media, subtitles, speaker = await self._receive(request, length, folder)
        except BaseException:
            self.board.drop(job)
            shutil.rmtree(folder, ignore_errors=True)
            raise
        job.upload = upload_names(media, subtitles, speaker)
        job.task = asyncio.create_task(self._run_job(job, folder, media, subtitles, speaker))
        return JSONResponse(job.to_json(self.board.ahead(job)), 202)

    async def _run_job(self, job: Job, folder: Path, media: Upload, subtitles: Upload | None, speaker: str | None):
        try:
            async with self.predict_lock:
                job.state = "running"
                job.result = await run_in_threadpool(run_predictor, self.predictor, media, subtitles, speaker,
                                                     folder / "timeline.png", job.progress)
            job.state = "done"
        except UploadError as e:
            job.error, job.status, job.state = str(e), e.status, "error"
        except Exception:  # a bug or a full disk: the page gets a message, the log the traceback
            log.exception("job %s failed", job.id)
            job.error, job.status, job.state = "the server failed while answering (see its log)", 500, "error"
        finally:
            self.board.finish(job)
            shutil.rmtree(folder, ignore_errors=True)

    async def job_state(self, job_id: str, request: Request) -> dict:
        check_origin(request.headers, self.bound_host, self.url, request.scope.get("scheme", "http"))
        self.board.sweep()
        job = self.board.jobs.get(job_id)
        if job is None:
            raise UploadError(404, f"no job {job_id!r}: it never existed, or its answer has expired (answers are "
                                   f"kept {self.job_ttl_s / 60:g} minutes after they are ready); upload the file "
                                   "again")
        return job.to_json(self.board.ahead(job))

    async def _accept(self, request: Request, admit: Callable):
        """The checks made before the body is read, then `admit()` (a queue's); a refused body is drained so the
        browser sees the answer. Returns (declared length, what admit returned)."""
        length = -1  # unknown: nothing is drained
        try:
            length = content_length(request.headers, self.max_upload_bytes)
            check_origin(request.headers, self.bound_host, self.url, request.scope.get("scheme", "http"))
            check_form_type(request.headers)
            return length, admit()
        except UploadError:
            await _drain(request.stream(), length)
            raise

    async def _receive(self, request: Request, length: int,
                       folder: Path) -> tuple[Upload, Upload | None, str | None]:
        """The form saved into `folder`, its files checked to be media and subtitles."""
        media, subtitles, speaker = await read_form(request, length, folder, self.max_upload_bytes)
        await run_in_threadpool(check_media, media)
        if subtitles is not None:
            await run_in_threadpool(check_subtitles, subtitles)
        return media, subtitles, speaker


async def read_form(request: Request, length: int, folder: Path,
                    max_upload_bytes: int) -> tuple[Upload, Upload | None, str | None]:
    """The multipart form's files saved into `folder` (media, subtitles) and its speaker name."""
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

