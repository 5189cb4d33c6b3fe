"""The local web demo: upload a video or audio file (and subtitles), see the emotions, the explanation, the
utterances and the timeline plot.

Standard library only: `ThreadingHTTPServer` and a streaming multipart parser with size caps (`cgi` is gone in
Python 3.13). The predictor is injected — `predictor(media_path, subtitles_path, speaker, plot_path) -> dict`
(the `predict --json` dict; it may write a PNG at `plot_path`) — and is called under one lock, so the model is
loaded once and never runs two requests at a time, while pages and health checks keep being served.
Uploads live only in a `tempfile.mkdtemp` folder that is deleted after the response.

    GET  /             the page (acoustemo/web/index.html)
    GET  /static/NAME  its script and style sheet
    GET  /healthz      {"status": "ok", "model": ..., "max_upload_bytes": ..., accepted extensions}
    POST /api/predict  multipart form: media (file), subtitles (file, optional), speaker (text, optional)
                       -> the prediction JSON + "plot": "data:image/png;base64,..." (null when none was drawn)
                       errors -> {"error": message} with 400 / 403 / 411 / 413 / 415 / 422 / 500 / 503
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import io
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from acoustemo.errors import AcoustEmoError, ConfigError

log = logging.getLogger(__name__)

Predictor = Callable[[Path, "Path | None", "str | None", Path], dict]

MEDIA_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus", ".aac")
SUBTITLE_EXTENSIONS = (".srt", ".vtt", ".json", ".txt")
MAX_SUBTITLE_BYTES = 5 * 2**20
MAX_FIELD_BYTES = 4096  # the speaker name and any other text field
MAX_PARTS = 8
MAX_HEADER_BYTES = 16 * 2**10
MULTIPART_SLACK_BYTES = 64 * 2**10  # part headers and boundaries on top of the files themselves
DRAIN_LIMIT_BYTES = 2 * 2**30  # read (and discard) a too-large body up to this so the browser sees the 413
_CHUNK = 256 * 2**10
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


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


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, Upload] = field(default_factory=dict)


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


def parse_multipart(rfile, length: int, boundary: bytes, folder: Path, max_file_bytes: int) -> Form:
    """Stream a multipart/form-data body of exactly `length` bytes from `rfile`: files go to `folder` (as
    `<field>/<sanitised name>`), text fields into memory. Never reads past `length`; raises UploadError(400/413)."""
    reader = _Bounded(rfile, length)
    try:
        return _parse(reader, b"--" + boundary, folder, max_file_bytes)
    except UploadError:
        reader.drain()  # so the client reads our answer instead of a reset connection
        raise


def _parse(reader: "_Bounded", delim: bytes, folder: Path, max_file_bytes: int) -> Form:
    buf = reader.read_until(b"", delim, max_keep=len(delim))  # skip the preamble
    form = Form()
    for _ in range(MAX_PARTS + 1):
        buf = reader.need(buf, 2)
        if buf[:2] == b"--":
            reader.drain()  # the epilogue
            return form
        if buf[:2] != b"\r\n":
            raise UploadError(400, "malformed multipart body: a boundary is not followed by a line break")
        head, _, buf = reader.take_until(buf[2:], b"\r\n\r\n", MAX_HEADER_BYTES, "part headers").partition(b"\r\n\r\n")
        name, filename = _disposition(head)
        if len(form.fields) + len(form.files) >= MAX_PARTS:
            raise UploadError(400, f"too many form fields (at most {MAX_PARTS - 1})")
        if name in form.fields or name in form.files:
            raise UploadError(400, f"the form has two '{name}' fields; send one")
        if filename is None:
            sink, cap = io.BytesIO(), MAX_FIELD_BYTES
        else:
            # one sub-folder per field keeps the user's (sanitised) name, so messages and plots can show it
            path = folder / safe_filename(name, "field") / safe_filename(filename)
            if path.resolve().parent.parent != folder.resolve():  # belt and braces: sanitising forbids this
                raise UploadError(400, f"refusing file name {filename!r}")
            path.parent.mkdir()
            sink, cap = open(path, "xb"), max_file_bytes
        try:
            size, buf = reader.copy_until(buf, b"\r\n" + delim, sink, cap, name)
        finally:
            if filename is not None:
                sink.close()
        if filename is None:
            form.fields[name] = sink.getvalue().decode("utf-8", errors="replace")
        elif size or filename:  # a browser sends an empty part with filename="" for an unused file input
            form.files[name] = Upload(name, safe_filename(filename), path, size)
    raise UploadError(400, f"too many form fields (at most {MAX_PARTS - 1})")


class _Bounded:
    """Reads at most `remaining` bytes from a socket file; a short read is a client that gave up."""

    def __init__(self, rfile, length: int):
        self.rfile, self.remaining = rfile, length

    def more(self) -> bytes:
        if self.remaining <= 0:
            raise UploadError(400, "the upload ended early: the multipart body is incomplete")
        chunk = self.rfile.read(min(_CHUNK, self.remaining))
        if not chunk:
            raise UploadError(400, "the connection closed before the whole upload arrived")
        self.remaining -= len(chunk)
        return chunk

    def need(self, buf: bytes, n: int) -> bytes:
        while len(buf) < n:
            buf += self.more()
        return buf

    def read_until(self, buf: bytes, marker: bytes, max_keep: int) -> bytes:
        """Discard everything up to and including `marker`; returns what follows it."""
        while (i := buf.find(marker)) < 0:
            buf = buf[-max_keep:] + self.more()
        return buf[i + len(marker) :]

    def take_until(self, buf: bytes, marker: bytes, cap: int, what: str) -> bytes:
        while marker not in buf:
            if len(buf) > cap:
                raise UploadError(400, f"malformed multipart body: {what} longer than {cap} bytes")
            buf += self.more()
        return buf

    def copy_until(self, buf: bytes, marker: bytes, sink, cap: int, name: str) -> tuple[int, bytes]:
        """Write bytes up to `marker` into `sink` (at most `cap`); returns (bytes written, what follows)."""
        size = 0
        while (i := buf.find(marker)) < 0:
            keep = len(marker) - 1  # the marker may straddle two chunks
            out, buf = buf[: max(0, len(buf) - keep)], buf[max(0, len(buf) - keep) :]
            size += len(out)
            if size > cap:
                raise UploadError(413, f"form field '{name}' is larger than {cap} bytes")
            sink.write(out)
            buf += self.more()
        size += i
        if size > cap:
            raise UploadError(413, f"form field '{name}' is larger than {cap} bytes")
        sink.write(buf[:i])
        return size, buf[i + len(marker) :]

    def drain(self) -> None:
        if self.remaining > DRAIN_LIMIT_BYTES:
            return
        while self.remaining > 0 and (chunk := self.rfile.read(min(_CHUNK, self.remaining))):
            self.remaining -= len(chunk)


def _disposition(head: bytes) -> tuple[str, str | None]:
    """(field name, file name or None) from a part's Content-Disposition header."""
    msg = email.parser.Parser(policy=email.policy.HTTP).parsestr(head.decode("utf-8", "replace") + "\r\n\r\n",
                                                                 headersonly=True)
    cd = msg.get("content-disposition")
    if cd is None or cd.content_disposition != "form-data" or "name" not in cd.params:
        raise UploadError(400, "malformed multipart body: a part has no 'Content-Disposition: form-data; name=...'")
    return str(cd.params["name"]), (str(cd.params["filename"]) if "filename" in cd.params else None)


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


def _hide_path(message: str, *uploads: Upload) -> str:
    """Messages name the user's file, not the server's temporary path."""
    for u in uploads:
        if u is not None:
            message = message.replace(str(u.path), u.filename).replace(str(u.path.parent.parent), "<upload>")
    return message


# ----------------------------------------------------------------------------------------------------- server


class DemoServer(ThreadingHTTPServer):
    """One thread per connection; `predictor` runs under `predict_lock`, one request at a time."""

    daemon_threads = True

    def __init__(self, address, predictor: Predictor, model_name: str = "", max_upload_bytes: int = 200 * 2**20,
                 max_pending: int = 4):
        super().__init__(address, DemoHandler)
        self.predictor, self.model_name, self.max_upload_bytes = predictor, model_name, max_upload_bytes
        self.predict_lock = threading.Lock()
        self.pending = threading.BoundedSemaphore(max_pending)  # uploads on disk at once: bounds temp-disk use
        self.max_pending = max_pending
        self.web_dir = resources.files("acoustemo") / "web"

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


class DemoHandler(BaseHTTPRequestHandler):
    server: DemoServer
    protocol_version = "HTTP/1.1"
    server_version = "acoustemo"

    def log_message(self, fmt, *args):  # through logging, not raw stderr
        log.info("%s %s", self.address_string(), fmt % args)

    # -- routing
    def do_GET(self):
        path = urlsplit(self.path).path
        if path == "/healthz":
            return self._json(200, self._health())
        if path in ("/", "/index.html"):
            return self._static("index.html")
        if path.startswith("/static/"):
            return self._static(path.removeprefix("/static/"))
        self._json(404, {"error": f"no page at {path}"})

    def do_POST(self):
        if urlsplit(self.path).path != "/api/predict":
            self.close_connection = True
            return self._json(404, {"error": "POST goes to /api/predict"})
        try:
            result = self._predict()
        except UploadError as e:
            self.close_connection = True
            return self._json(e.status, {"error": str(e)})
        except Exception:  # a bug or a full disk: answer in JSON rather than drop the connection
            log.exception("upload failed")
            self.close_connection = True
            return self._json(500, {"error": "the server failed while handling the upload (see its log)"})
        self._json(200, result)

    # -- handlers
    def _health(self) -> dict:
        return {"status": "ok", "model": self.server.model_name, "max_upload_bytes": self.server.max_upload_bytes,
                "media_extensions": list(MEDIA_EXTENSIONS), "subtitle_extensions": list(SUBTITLE_EXTENSIONS)}

    def _predict(self) -> dict:
        length = self._content_length()
        try:
            self._check_origin()
            boundary = self._boundary()
            if not self.server.pending.acquire(blocking=False):
                raise UploadError(503, f"the server is busy with {self.server.max_pending} uploads; try again shortly")
        except UploadError:
            self._drain(length)
            raise
        folder = None
        try:
            folder = Path(tempfile.mkdtemp(prefix="acoustemo-upload-"))
            form = parse_multipart(self.rfile, length, boundary, folder, self.server.max_upload_bytes)
            media, subtitles = form.files.get("media"), form.files.get("subtitles")
            if media is None:
                raise UploadError(400, "no media file in the form: choose a video or audio file to upload")
            check_media(media)
            if subtitles is not None:
                check_subtitles(subtitles)
            speaker = form.fields.get("speaker", "").strip() or None
            result = self._run_predictor(media, subtitles, speaker, folder / "timeline.png")
        finally:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            self.server.pending.release()
        return result

    def _run_predictor(self, media: Upload, subtitles: Upload | None, speaker: str | None, plot: Path) -> dict:
        try:
            with self.server.predict_lock:
                result = dict(self.server.predictor(media.path, subtitles.path if subtitles else None, speaker, plot))
        except AcoustEmoError as e:
            raise UploadError(422, _hide_path(str(e), media, subtitles)) from None
        except Exception:
            log.exception("prediction failed for %s", media.filename)
            raise UploadError(500, "the model failed on this file (an internal error; the server log has the "
                                   "traceback)") from None
        result["plot"] = ("data:image/png;base64," + base64.b64encode(plot.read_bytes()).decode()
                          if plot.is_file() else None)
        result["upload"] = {"media": media.filename, "subtitles": subtitles.filename if subtitles else None,
                            "speaker": speaker}
        return json.loads(_hide_path(json.dumps(result, ensure_ascii=False), media, subtitles))

    # -- request checks
    def _content_length(self) -> int:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise UploadError(411, "chunked uploads are not supported: send a Content-Length")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise UploadError(411, "the upload has no Content-Length") from None
        limit = self.server.max_upload_bytes
        if length > limit + MULTIPART_SLACK_BYTES:
            self._drain(length)
            raise UploadError(413, f"the upload is {length / 2**20:.1f} MB but this server accepts at most "
                                   f"{limit / 2**20:.3g} MB (restart it with --max-upload-mb N to raise the limit)")
        return length

    def _boundary(self) -> bytes:
        ctype = self.headers.get("Content-Type", "")
        msg = email.parser.Parser(policy=email.policy.HTTP).parsestr(f"Content-Type: {ctype}\r\n\r\n",
                                                                     headersonly=True)
        boundary = msg.get_boundary() if msg.get_content_type() == "multipart/form-data" else None
        if not boundary or len(boundary) > 200:
            raise UploadError(400, "send the upload as multipart/form-data (a form with a 'media' file field)")
        return boundary.encode("latin-1")

    def _check_origin(self) -> None:
        """A page on another site may not post here (cross-site form posts need no CORS preflight), and a name that
        resolves to 127.0.0.1 must not reach a loopback-bound server (DNS rebinding)."""
        host = urlsplit("//" + (self.headers.get("Host") or "")).hostname or ""
        bound = self.server.server_address[0]
        if bound in ("127.0.0.1", "::1") and host not in _LOOPBACK_HOSTS:
            raise UploadError(403, f"Host '{host}' is not this machine; open the page at {self.server.url}")
        origin = self.headers.get("Origin")
        if origin and origin != "null" and urlsplit(origin).netloc != self.headers.get("Host"):
            raise UploadError(403, f"uploads from {origin} are not allowed; use the page at {self.server.url}")

    def _drain(self, length: int) -> None:
        """Read a rejected body so the browser gets our answer instead of a connection reset (up to a bound)."""
        self.close_connection = True
        if length > DRAIN_LIMIT_BYTES:
            return
        while length > 0:
            chunk = self.rfile.read(min(_CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)

    # -- responses
    def _json(self, status: int, obj: dict) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _static(self, name: str) -> None:
        if "/" in name or "\\" in name or name.startswith(".") or not name:
            return self._json(404, {"error": "not found"})
        res = self.server.web_dir / name
        if not res.is_file():
            return self._json(404, {"error": f"no file {name}"})
        ctype = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}.get(Path(name).suffix,
                                                                                "application/octet-stream")
        self._send(200, res.read_bytes(), ctype)

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy",
                         "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                         "frame-ancestors 'none'")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


def make_server(predictor: Predictor, host: str = "127.0.0.1", port: int = 8000, max_upload_mb: float = 200,
                model_name: str = "", max_pending: int = 4) -> DemoServer:
    """A bound server (port 0 = any free port); call `serve_forever()` (or run it in a thread)."""
    if max_upload_mb <= 0:
        raise ValueError(f"max_upload_mb must be positive, got {max_upload_mb}")
    return DemoServer((host, port), predictor, model_name, int(max_upload_mb * 2**20), max_pending)


def model_predictor(predictor) -> Predictor:
    """The server's predictor for a loaded model (`acoustemo.infer.Predictor`): `predict_clip`, its JSON, and the
    timeline plot with the Q-Former's attention. A failed plot costs a warning, not the answer.

    Clips are named by content ("upload-<sha256 prefix>"), so features cached for one upload never overwrite a
    training clip's, and uploading the same file again (say, with other subtitles) reuses them."""
    from acoustemo.features.cache import media_sha256
    from acoustemo.infer import predict_clip
    from acoustemo.plot import plot_prediction

    def predict(media: Path, subtitles: Path | None, speaker: str | None, plot_path: Path) -> dict:
        clip_id = "upload-" + media_sha256(media)[:16]
        prediction = predict_clip(media, subtitles, speaker, model=predictor, clip_id=clip_id)
        result = prediction.to_json()
        try:
            plot_prediction(plot_path, media, prediction, predictor, speaker)
        except Exception as e:  # the answer is still worth showing
            log.exception("timeline plot failed for %s", media.name)
            result.setdefault("warnings", []).append(f"the timeline plot could not be drawn: {e}")
        return result

    return predict


def serve(model_dir: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000, max_upload_mb: float = 200,
          cache_dir: str | os.PathLike | None = None, device: str | None = None) -> None:
    """Load the model once, then serve until interrupted.

    Features of uploads are cached in a temporary folder deleted at exit (unless `cache_dir` is given), so nothing
    derived from an upload outlives the server."""
    from acoustemo.infer import load_predictor

    own_cache = cache_dir is None
    cache = Path(tempfile.mkdtemp(prefix="acoustemo-serve-cache-")) if own_cache else Path(cache_dir)
    try:
        log.info("loading the model from %s", model_dir)
        predictor = load_predictor(model_dir, cache, device)
        try:
            server = make_server(model_predictor(predictor), host, port, max_upload_mb,
                                 model_name=str(predictor.model_dir))
        except OSError as e:
            raise ConfigError(f"cannot listen on {host}:{port} ({e.strerror}); is another server using the port? "
                              "try --port 0 (any free port) or another one") from None
        if host not in _LOOPBACK_HOSTS:
            log.warning("serving on %s: anyone who can reach this address can upload files and run the model", host)
        print(f"AcoustEmo demo at {server.url} (Ctrl+C to stop)", flush=True)
        try:
            server.serve_forever()
        finally:
            server.server_close()
    finally:
        if own_cache:
            shutil.rmtree(cache, ignore_errors=True)

