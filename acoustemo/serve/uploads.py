"""What an upload must be before the model sees it: a form from this page only (scheme, host and port of its
Origin), a declared size under the limit, files with safe names in the request's own folder, media that ffmpeg
finds an audio track in, and subtitles that are UTF-8 text in the format their extension names. Every refusal is an
UploadError carrying the HTTP status and a message the page shows as it is."""

from __future__ import annotations

import json
import re
import shutil
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from acoustemo.errors import AcoustEmoError

MEDIA_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus", ".aac")
SUBTITLE_EXTENSIONS = (".srt", ".vtt", ".json", ".txt")
MAX_SUBTITLE_BYTES = 5 * 2**20
MAX_FIELD_BYTES = 4096  # the speaker name and any other text field
MAX_FILES = 2  # media and subtitles
MAX_FIELDS = 5
MULTIPART_SLACK_BYTES = 64 * 2**10  # part headers and boundaries on top of the files themselves
FILE_FIELDS = ("media", "subtitles")
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
_SAFE_FETCH_SITES = {"same-origin", "none"}  # "none": the user typed the address; everything else is another page
_DEFAULT_PORTS = {"http": 80, "https": 443}

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


def check_origin(headers, bound_host: str, url: str, scheme: str = "http") -> None:
    """Only this page may post here. A cross-site form post needs no CORS preflight, so the browser's own labels
    decide: `Sec-Fetch-Site` other than same-origin, an `Origin` of another site, and `Origin: null` (a sandboxed
    iframe, a data: or file: page — from any site) are refused; programs that send neither header are let through.
    An Origin is this page only when its scheme, host and port are the request's own (`scheme`, as the request
    arrived, and the Host header): a page on another port of this machine is another site, and so is `localhost`
    for a page opened as `127.0.0.1`. On a loopback-bound server a Host that is not this machine is DNS rebinding
    and refused too."""
    host = urlsplit("//" + (headers.get("host") or "")).hostname or ""
    if bound_host in ("127.0.0.1", "::1", "localhost") and host not in LOOPBACK_HOSTS:
        raise UploadError(403, f"Host '{host}' is not this machine; open the page at {url}")
    site = headers.get("sec-fetch-site")
    if site is not None and site.lower() not in _SAFE_FETCH_SITES:
        raise UploadError(403, f"uploads from another site (Sec-Fetch-Site: {site}) are not allowed; "
                               f"use the page at {url}")
    origin = headers.get("origin")
    if origin is not None and origin.strip().lower() == "null":
        raise UploadError(403, "uploads from a page without an origin (Origin: null: a sandboxed frame, a data: or "
                               f"file: page) are not allowed; use the page at {url}")
    if origin is not None:
        theirs = urlsplit(origin.strip())
        page = _origin(theirs.scheme, theirs.netloc)
        if page is None or not page[1] or page != _origin(scheme, headers.get("host") or ""):
            raise UploadError(403, f"uploads from {origin} are not allowed; use the page at {url}")


def _origin(scheme: str, netloc: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) as browsers compare origins: case-insensitive, the scheme's default port filled in;
    None when the port is not a number."""
    parts = urlsplit(f"{scheme}://{netloc}")
    try:
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    return scheme, parts.hostname or "", port if port is not None else _DEFAULT_PORTS.get(scheme)


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
        raise UploadError(415, hide_path(str(e), upload)) from None
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


def hide_path(message: str, *uploads: Upload | None) -> str:
    """Messages name the user's file, not the server's temporary path."""
    # the library may name a path as given or resolved (a symlinked temporary folder); every file before the folder
    # they share, so that one upload's folder is not cut out of another's path
    names = {path: u.filename for u in uploads if u is not None for path in (u.path, u.path.resolve())}
    for path, name in names.items():
        message = message.replace(str(path), name)
    for path in names:
        message = message.replace(str(path.parent.parent), "<upload>")
    return message

