"""The web demo's server: limits, type checks, same-origin uploads, temp-folder hygiene, queueing, the API page.

The server (uvicorn + FastAPI) runs for real on 127.0.0.1 (port 0) in a thread with the real predictor
(predict_clip + the timeline) on an untrained debug model; requests are raw HTTP so that filenames and headers can
be hostile.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acoustemo.serve import make_server, model_predictor, safe_filename


# ------------------------------------------------------------------------------------------------- helpers


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str | None = None) -> tuple[bytes, str]:
    """(field, filename or None, content) -> (body, content type), with filenames sent verbatim."""
    boundary = boundary or f"----acoustemo{uuid.uuid4().hex}"
    out = io.BytesIO()
    for name, filename, content in parts:
        out.write(f"--{boundary}\r\n".encode())
        disp = f'Content-Disposition: form-data; name="{name}"'
        if filename is not None:
            disp += f'; filename="{filename}"'
        out.write(disp.encode() + b"\r\n")
        if filename is not None:
            out.write(b"Content-Type: application/octet-stream\r\n")
        out.write(b"\r\n" + content + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def post(server, parts, headers=None, timeout=120, path="/api/predict") -> tuple[int, dict]:
    body, ctype = multipart(parts)
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": ctype, **(headers or {})})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def get(server, path) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type"), resp.read()
    finally:
        conn.close()


def get_json(server, path) -> tuple[int, dict]:
    status, _, body = get(server, path)
    return status, json.loads(body)


def follow_job(server, url, timeout_s=300) -> list[dict]:
    """Poll GET url until the job is done or failed; returns every state read (the last one is final)."""
    seen, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status, job = get_json(server, url)
        assert status == 200, job
        seen.append(job)
        if job["state"] in ("done", "error"):
            return seen
        time.sleep(0.2)
    raise AssertionError(f"job {url} still {seen[-1]['state']} after {timeout_s} s")


class Recorder:
    """Wraps the real predictor to record what it was given, the progress it reported and whether two calls ever
    overlapped. With `hold`, each call waits for `gate` before running, so a test can look at the server while a
    model call is under way; with `pause_mid`, the first progress report between 0 and the total sets `mid` and
    waits for `resume`, so a test can read a long recording's progress half-way."""

    def __init__(self, predictor, hold=False, pause_mid=False):
        self.predictor, self.calls, self.active, self.max_active = predictor, [], 0, 0
        self.entered, self.gate = threading.Event(), threading.Event()
        self.mid, self.resume = threading.Event(), threading.Event()
        self.progress: list[tuple[int, int]] = []
        if not hold:
            self.gate.set()
        if not pause_mid:
            self.resume.set()
        self._lock = threading.Lock()

    def __call__(self, media, subtitles, speaker, plot, progress=None):
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.calls.append({"media": media, "subtitles": subtitles, "speaker": speaker, "plot": plot,
                               "media_exists": media.is_file(), "progress": progress is not None,
                               "media_sha256": hashlib.sha256(media.read_bytes()).hexdigest()})
        self.entered.set()

        def report(done, total):
            self.progress.append((done, total))
            progress(done, total)
            if 0 < done < total and not self.mid.is_set():
                self.mid.set()
                assert self.resume.wait(120)

        try:
            assert self.gate.wait(120)
            return self.predictor(media, subtitles, speaker, plot, report if progress is not None else None)
        finally:
            with self._lock:
                self.active -= 1


@pytest.fixture(scope="module")
def demo_predictor(debug_model):
    return model_predictor(debug_model)


@pytest.fixture()
def temp_root(tmp_path, monkeypatch):
    """Point tempfile at an empty folder so the test can see every file the server creates (and that it's gone)."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.fixture()
def running(demo_predictor, temp_root):
    """Start a server on a free loopback port; yields a function making one (several allowed per test)."""
    servers = []

    def start(max_upload_mb=200, predictor=None, hold=False, pause_mid=False, **kwargs):
        recorder = Recorder(predictor or demo_predictor, hold, pause_mid)
        server = make_server(recorder, "127.0.0.1", 0, max_upload_mb=max_upload_mb, model_name="debug", **kwargs)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server, recorder

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


# ---------------------------------------------------------------------------------------------------- tests


def test_page_static_and_health(running):
    server, _ = running()
    assert server.server_address[0] == "127.0.0.1"
    status, ctype, body = get(server, "/")
    assert status == 200 and ctype.startswith("text/html") and b'id="upload"' in body
    status, ctype, body = get(server, "/static/app.js")
    assert status == 200 and "javascript" in ctype and b"/api/jobs" in body
    status, _, body = get(server, "/healthz")
    health = json.loads(body)
    assert status == 200 and health["status"] == "ok" and health["max_upload_bytes"] == 200 * 2**20
    for path in ("/static/../serve.py", "/static/%2e%2e/serve.py", "/static/.hidden", "/nope"):
        assert get(server, path)[0] == 404


def test_prediction_end_to_end_and_upload_deleted(running, dialogue, temp_root, tmp_path, write_json):
    server, rec = running()
    wav, utts = dialogue
    subs = write_json(tmp_path / "subs.json", utts)
    status, data = post(server, [("media", "dialogue.wav", wav.read_bytes()),
                                 ("subtitles", "subs.json", subs.read_bytes()), ("speaker", None, b"Anna")])
    assert status == 200, data
    assert isinstance(data["emotions"], list) and isinstance(data["explanation"], str)
    assert [u["text"] for u in data["utterances"]] == [u["text"] for u in utts]
    assert data["plot"].startswith("data:image/png;base64,")
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(data["plot"].split(",", 1)[1]))) as im:
        assert im.height > 850  # the three-panel figure: waveform, pitch and the attention strip
    assert data["upload"] == {"media": "dialogue.wav", "subtitles": "subs.json", "speaker": "Anna"}
    call = rec.calls[0]
    assert call["speaker"] == "Anna" and call["media_exists"]
    assert call["media"].name == "dialogue.wav" and call["media"].parent.name == "media"
    assert call["media"].parents[1].parent == temp_root and call["media"].parents[1].name.startswith("acoustemo-upload-")
    assert str(temp_root) not in json.dumps(data)  # no server paths leak into the answer
    assert list(temp_root.iterdir()) == []  # the upload folder is deleted after the response


def test_too_big_upload_gets_413_with_a_clear_message(running, dialogue, temp_root):
    server, rec = running(max_upload_mb=0.1)
    wav, _ = dialogue
    assert wav.stat().st_size > 0.2 * 2**20
    status, data = post(server, [("media", "dialogue.wav", wav.read_bytes())])
    assert status == 413
    assert "accepts at most 0.1 MB" in data["error"] and "--max-upload-mb" in data["error"]
    # a body just inside the multipart slack but with a file over the limit is cut off while streaming
    status, data = post(server, [("media", "big.wav", b"RIFF" + bytes(int(0.1 * 2**20) + 1000))])
    assert status == 413 and "larger than" in data["error"]
    assert rec.calls == [] and list(temp_root.iterdir()) == []


@pytest.mark.parametrize(
    "parts, status, message",
    [
        ([("media", "photo.png", b"\x89PNG\r\n\x1a\n" + bytes(100))], 415, "not a supported media file"),
        ([("media", "clip.wav", b"hello, I am a text file\n" * 20)], 415, "content is not audio or video (it looks like text)"),
        ([("media", "clip.mp4", b"\x89PNG\r\n\x1a\n" + bytes(100))], 415, "it is a PNG image"),
        ([("media", "clip.wav", b"RIFF\x00\x00\x00\x00WAVEjunkjunk" + bytes(64))], 415, "clip.wav"),
        ([("media", "clip.wav", b"")], 415, "empty"),
        ([("speaker", None, b"Anna")], 400, "no media file"),
    ],
    ids=["png-extension", "text-named-wav", "png-named-mp4", "corrupt-wav", "empty", "no-media"],
)
def test_wrong_media_is_rejected_with_a_clear_message(running, temp_root, parts, status, message):
    server, rec = running()
    got, data = post(server, parts)
    assert got == status and message in data["error"], data
    assert str(temp_root) not in data["error"]
    assert rec.calls == [] and list(temp_root.iterdir()) == []


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("subs.docx", b"PK\x03\x04", "not a subtitle file"),
        ("subs.srt", b"\xff\xfe\x00\x00binary", "not UTF-8 text"),
        ("subs.vtt", b"1\n00:00:01.000 --> 00:00:02.000\nhi\n", "must start with 'WEBVTT'"),
        ("subs.json", b"[{\"start\": 1,", "invalid JSON"),
    ],
)
def test_wrong_subtitles_are_rejected(running, dialogue, name, content, message):
    server, rec = running()
    wav, _ = dialogue
    status, data = post(server, [("media", "dialogue.wav", wav.read_bytes()), ("subtitles", name, content)])
    assert status == 415 and message in data["error"], data
    assert rec.calls == []


def test_subtitle_errors_from_the_pipeline_come_back_as_422_naming_the_file(running, dialogue):
    server, _ = running()
    wav, _ = dialogue
    bad = b"1\n00:00:02,000 --> 00:00:01,000\nAnna: ends before it starts\n"
    status, data = post(server, [("media", "dialogue.wav", wav.read_bytes()), ("subtitles", "broken.srt", bad)])
    assert status == 422 and data["error"].startswith("broken.srt"), data
    assert "acoustemo-upload-" not in data["error"] and "<upload>" not in data["error"]


HOSTILE = ["../../evil.wav", "..\\..\\evil.wav", "/etc/evil.wav", "....//evil.wav", "%2e%2e%2fevil.wav", ".evil.wav",
           "ev\x00il.wav"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_filenames_are_saved_inside_the_request_folder(tmp_path, name):
    """`save_upload` with Starlette's own UploadFile: whatever the name, the file lands in <folder>/<field>/."""
    from starlette.datastructures import UploadFile

    from acoustemo.serve import save_upload

    folder = tmp_path / "request"
    folder.mkdir()
    saved = save_upload("media", UploadFile(io.BytesIO(b"RIFF1234WAVE"), size=12, filename=name), folder, 2**20)
    assert saved.path.parent == folder / "media" and saved.path.read_bytes() == b"RIFF1234WAVE"
    assert saved.path.name.endswith(".wav") and saved.filename == saved.path.name
    assert not any(p.name.endswith("evil.wav") for p in tmp_path.rglob("*") if folder not in p.parents)


def test_hostile_filenames_end_to_end(running, dialogue, temp_root, tmp_path):
    server, rec = running()
    wav, utts = dialogue
    subs = json.dumps(utts).encode()
    status, data = post(server, [("media", HOSTILE[0], wav.read_bytes()), ("subtitles", "../" + HOSTILE[1] + ".json", subs)])
    assert status == 200, data
    assert rec.calls[0]["subtitles"].parents[2] == temp_root
    media = rec.calls[0]["media"]
    assert media.parents[2] == temp_root and ".." not in media.parts and media.name == "evil.wav"
    assert list(temp_root.iterdir()) == []
    assert not any(p.name.endswith("evil.wav") for p in tmp_path.rglob("*"))
    assert data["upload"]["media"] == "evil.wav"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_safe_filename_is_one_harmless_component(name):
    safe = safe_filename(name)
    assert safe and "/" not in safe and "\\" not in safe and "\x00" not in safe
    assert not safe.startswith(".") and len(safe) <= 101
    folder = Path("/srv/uploads")
    assert os.path.normpath(folder / safe).startswith("/srv/uploads/")


def test_uploads_queue_one_model_call_at_a_time_while_pages_still_answer(running, dialogue, temp_root):
    """More uploads than the server reads at once (max_pending=2): all are answered, each with its own result."""
    server, rec = running(hold=True, max_pending=2)
    wav, utts = dialogue
    payload = wav.read_bytes()
    results: list = [None] * 4

    def worker(i):
        subs = json.dumps([{**u, "speaker": f"P{i}"} for u in utts]).encode()  # the same audio, own subtitles
        results[i] = post(server, [("media", f"clip{i}.wav", payload), ("subtitles", f"s{i}.json", subs),
                                   ("speaker", None, f"P{i}".encode())])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    # a model call is under way (held at the gate): the page and the health check are still answered
    assert rec.entered.wait(60)
    assert get(server, "/healthz")[0] == 200 and get(server, "/")[0] == 200
    assert rec.active == 1 and len(rec.calls) == 1
    rec.gate.set()
    for t in threads:
        t.join(300)
    assert [r[0] for r in results] == [200] * 4, results
    assert [r[1]["upload"]["media"] for r in results] == [f"clip{i}.wav" for i in range(4)]
    for i, (_, data) in enumerate(results):  # each answer belongs to its own request
        assert {u["speaker"] for u in data["utterances"]} == {f"P{i}"}
        assert data["upload"]["speaker"] == f"P{i}"
    assert all(r[1]["plot"] for r in results)
    assert rec.max_active == 1 and len(rec.calls) == 4
    assert len({c["media"].parents[1] for c in rec.calls}) == 4  # one private folder per request
    assert list(temp_root.iterdir()) == []


def test_cross_site_posts_are_refused(running, dialogue):
    """A page on another site, a sandboxed iframe or a data: page (Origin: null), a browser's own cross-site label,
    and a DNS-rebound host name are all refused before the body is read; the model is never called."""
    server, rec = running()
    wav, _ = dialogue
    media = [("media", "d.wav", wav.read_bytes())]
    for headers, message in [({"Origin": "http://evil.example"}, "uploads from http://evil.example are not allowed"),
                             ({"Origin": "null"}, "Origin: null"),
                             ({"Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site: cross-site"),
                             ({"Sec-Fetch-Site": "same-site"}, "Sec-Fetch-Site: same-site"),  # another port
                             ({"Origin": "null", "Sec-Fetch-Site": "cross-site"}, "not allowed"),
                             ({"Host": "attacker.example:80"}, "Host 'attacker.example' is not this machine")]:
        status, data = post(server, media, headers=headers)
        assert status == 403 and message in data["error"], (headers, data)
        assert server.url in data["error"]  # the message says where the real page is
    assert rec.calls == []


def test_same_origin_post_from_the_page_is_accepted(running, dialogue):
    """What the browser sends from the page itself (test_browser.py drives a real one): Origin = the page's
    origin, Sec-Fetch-Site: same-origin."""
    server, rec = running()
    wav, _ = dialogue
    host, port = server.server_address[:2]
    status, data = post(server, [("media", "d.wav", wav.read_bytes())],
                        headers={"Origin": f"http://{host}:{port}", "Sec-Fetch-Site": "same-origin"})
    assert status == 200, data
    assert data["upload"]["media"] == "d.wav" and len(rec.calls) == 1


# The demo on 127.0.0.1:8000: an Origin is this page only when scheme, host and port all match (#34).
DEMO_URL = "http://127.0.0.1:8000/"
ORIGINS = [("http://127.0.0.1:8000", None),  # the page itself
           ("http://127.0.0.1:3000", "uploads from http://127.0.0.1:3000 are not allowed"),  # another port
           ("http://localhost:8000", "uploads from http://localhost:8000 are not allowed"),  # another host name
           ("https://127.0.0.1:8000", "uploads from https://127.0.0.1:8000 are not allowed"),  # another scheme
           ("http://127.0.0.1", "uploads from http://127.0.0.1 are not allowed")]  # port 80


@pytest.mark.parametrize("origin, refusal", ORIGINS)
def test_check_origin_compares_scheme_host_and_port(origin, refusal):
    from acoustemo.serve import UploadError, check_origin

    headers = {"host": "127.0.0.1:8000", "origin": origin}
    if refusal is None:
        assert check_origin(headers, "127.0.0.1", DEMO_URL) is None
        return
    with pytest.raises(UploadError) as e:
        check_origin(headers, "127.0.0.1", DEMO_URL)
    assert e.value.status == 403 and str(e.value) == f"{refusal}; use the page at {DEMO_URL}"


def test_check_origin_takes_the_scheme_the_request_arrived_with():
    """Behind a TLS proxy (uvicorn takes the scheme from X-Forwarded-Proto) the page's own origin is https, and an
    http page of the same host and port is another origin."""
    from acoustemo.serve import UploadError, check_origin

    headers = {"host": "demo.example:8443", "origin": "https://demo.example:8443"}
    assert check_origin(headers, "0.0.0.0", "https://demo.example:8443/", scheme="https") is None
    with pytest.raises(UploadError) as e:
        check_origin(headers, "0.0.0.0", "http://demo.example:8443/", scheme="http")
    assert e.value.status == 403 and "uploads from https://demo.example:8443 are not allowed" in str(e.value)


@pytest.mark.parametrize("origin, refusal", ORIGINS)
def test_the_app_on_port_8000_takes_uploads_only_from_its_own_origin(origin, refusal, tmp_path, temp_root):
    """Through HTTP, addressed as 127.0.0.1:8000: a page on port 3000, `localhost` or https is refused before the
    model runs; the page itself gets the answer."""
    import soundfile as sf
    from fastapi.testclient import TestClient

    from acoustemo.serve import create_app

    calls = []

    def predictor(media, subtitles, speaker, plot, progress=None):
        calls.append(media.name)
        return {"emotions": ["happy"]}

    wav = tmp_path / "tone.wav"
    sf.write(wav, 0.1 * np.sin(np.linspace(0, 880 * np.pi, 16000)).astype(np.float32), 16000)
    body, ctype = multipart([("media", "tone.wav", wav.read_bytes())])
    app = create_app(predictor, "stub", url=DEMO_URL)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        resp = client.post("/api/predict", content=body, headers={"Content-Type": ctype, "Origin": origin})
    if refusal is None:
        assert (resp.status_code, resp.json()) == (200, {"emotions": ["happy"], "plot": None, "upload": {
            "media": "tone.wav", "subtitles": None, "speaker": None}})
        assert calls == ["tone.wav"]
    else:
        assert (resp.status_code, resp.json()) == (403, {"error": f"{refusal}; use the page at {DEMO_URL}"})
        assert calls == []
    assert list(temp_root.iterdir()) == []


def test_a_page_on_another_port_or_host_name_cannot_post_or_read_jobs(running, dialogue):
    """The real server on its free port: a page on another port of this machine, or one opened as `localhost`
    while the demo is addressed as 127.0.0.1, is refused on both ways in and when it reads a job."""
    server, rec = running()
    wav, _ = dialogue
    host, port = server.server_address[:2]
    other_port = 3000 if port != 3000 else 3001
    for origin in (f"http://{host}:{other_port}", f"http://localhost:{port}"):
        for path in ("/api/predict", "/api/jobs"):
            status, data = post(server, [("media", "d.wav", wav.read_bytes())], headers={"Origin": origin},
                                path=path)
            assert (status, data) == (403, {"error": f"uploads from {origin} are not allowed; use the page at "
                                                     f"{server.url}"}), (origin, path)
        conn = http.client.HTTPConnection(host, port, timeout=30)
        try:
            conn.request("GET", "/api/jobs/x", headers={"Origin": origin})
            resp = conn.getresponse()
            assert resp.status == 403 and f"uploads from {origin} are not allowed".encode() in resp.read()
        finally:
            conn.close()
    assert rec.calls == []


def test_chunked_uploads_are_refused_with_411(running):
    """A body of unknown length is refused before any of it is read (and the connection closed)."""
    import socket

    server, rec = running()
    with socket.create_connection(server.server_address[:2], timeout=30) as sock:
        sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                     b"Content-Type: multipart/form-data; boundary=x\r\n\r\n5\r\n--x\r\n\r\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 411 ") and b"send a Content-Length" in body
    assert rec.calls == []


def test_binary_uploads_arrive_byte_for_byte(running, dialogue, temp_root):
    """A media file full of near-boundaries reaches the model exactly; an unused file input (empty filename, no
    bytes) is no upload."""
    server, rec = running()
    wav, _ = dialogue
    boundary = "XyZ-boundary"
    blob = bytearray(wav.read_bytes())  # a real wav whose samples contain strings one byte short of a delimiter
    for i in range(1000, len(blob) - 20, 9_991):
        blob[i : i + 16] = b"\r\n--XyZ-boundar!"
    body, ctype = multipart([("speaker", None, "Zoë".encode()), ("media", "a b.wav", bytes(blob)),
                             ("subtitles", "", b"")], boundary=boundary)
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=120)
    try:
        conn.request("POST", "/api/predict", body=body, headers={"Content-Type": ctype})
        resp = conn.getresponse()
        status, data = resp.status, json.loads(resp.read())
    finally:
        conn.close()
    assert status == 200, data
    assert data["upload"] == {"media": "a b.wav", "subtitles": None, "speaker": "Zoë"}
    call = rec.calls[0]
    assert call["media_sha256"] == hashlib.sha256(bytes(blob)).hexdigest() and call["subtitles"] is None
    assert call["media"].name == "a b.wav" and call["media"].parent.name == "media"
    assert list(temp_root.iterdir()) == []


def test_duplicate_and_oversized_fields_are_refused(running, dialogue, temp_root):
    server, rec = running()
    wav, _ = dialogue
    status, data = post(server, [("media", "a.wav", wav.read_bytes()), ("media", "b.wav", wav.read_bytes())])
    assert status == 400 and "two 'media' fields" in data["error"]
    status, data = post(server, [("media", "a.wav", wav.read_bytes()), ("speaker", None, b"x" * 5000)])
    assert status == 400 and "malformed or oversized form" in data["error"]
    assert rec.calls == [] and list(temp_root.iterdir()) == []


def test_openapi_describes_the_predict_call(running):
    server, _ = running()
    status, ctype, body = get(server, "/openapi.json")
    spec = json.loads(body)
    assert status == 200 and ctype.startswith("application/json")
    op = spec["paths"]["/api/predict"]["post"]
    form = op["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["media"] and set(form["properties"]) == {"media", "subtitles", "speaker"}
    assert form["properties"]["media"]["format"] == "binary"
    assert {"200", "403", "413", "415"} <= set(op["responses"])
    assert set(spec["paths"]) == {"/healthz", "/api/predict", "/api/jobs", "/api/jobs/{job_id}"}
    jobs = spec["paths"]["/api/jobs"]["post"]
    assert jobs["requestBody"]["content"]["multipart/form-data"]["schema"] == form and "202" in jobs["responses"]
    status, ctype, body = get(server, "/docs")
    assert status == 200 and ctype.startswith("text/html")
    assert b"POST /api/predict" in body and b"/openapi.json" in body and b"cdn" not in body.lower()


def test_model_timeline_inputs_are_the_qformer_attention_on_the_utterance_windows(debug_model, dialogue):
    from acoustemo.data.segments import Clip, Utterance
    from acoustemo.data.windows import frame_range
    from acoustemo.plot import model_timeline_inputs

    wav, utts = dialogue
    clip = Clip("dialogue", str(wav), [Utterance.from_json(u) for u in utts])
    got = model_timeline_inputs(debug_model, clip)
    assert got["attention_rate_hz"] == 50.0 and got["pitch_rate_hz"] == 50.0
    n_frames = len(got["pitch_hz"])
    assert len(got["attention"]) == len(utts)
    for u, att in zip(utts, got["attention"]):
        a, b = frame_range(u["start"], u["end"], 50.0, n_frames)
        assert att.shape == (debug_model.model.cfg.num_queries, b - a)  # (K, F_i): padding cut off
        assert np.allclose(att.sum(axis=1), 1.0, atol=1e-4)  # each query's softmax over its window's frames
    voiced = got["pitch_hz"][np.isfinite(got["pitch_hz"])]
    assert voiced.size > 100 and 70 < np.median(voiced) < 200  # espeak's male voices, from the prosody stream


def test_serve_command_loads_a_saved_model_and_leaves_nothing_behind(debug_model, dialogue, tmp_path):
    """`acoustemo serve` as a user runs it: a saved model, a free port, one upload, Ctrl+C, a clean temp folder."""
    import signal
    import subprocess
    import sys

    model_dir = tmp_path / "model"
    debug_model.model.save_pretrained(model_dir)
    tmp_root = tmp_path / "tmp"
    tmp_root.mkdir()
    log = tmp_path / "serve.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "acoustemo", "serve", "--model", str(model_dir), "--port", "0",
                                 "--max-upload-mb", "1.5"], stdout=subprocess.PIPE, stderr=err, text=True,
                                env={**os.environ, "TMPDIR": str(tmp_root)})
    watchdog = threading.Timer(150, proc.kill)  # a server that never comes up must not hang the suite
    watchdog.start()
    try:
        line = proc.stdout.readline()  # blocks until the model is loaded and the port is bound
        assert line.startswith("AcoustEmo demo at http://127.0.0.1:"), line + log.read_text()
        host, port = line.split("http://", 1)[1].split("/", 1)[0].split(":")

        class Addr:
            server_address = (host, int(port))

        status, _, body = get(Addr, "/healthz")
        health = json.loads(body)
        assert status == 200 and health["max_upload_bytes"] == int(1.5 * 2**20)
        assert health["model"] == str(model_dir)
        wav, utts = dialogue
        status, data = post(Addr, [("media", "d.wav", wav.read_bytes()),
                                   ("subtitles", "d.json", json.dumps(utts).encode())])
        assert status == 200 and len(data["utterances"]) == 3 and data["plot"], data
        assert any(tmp_root.iterdir())  # the server's feature cache lives in TMPDIR while it runs
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
        watchdog.cancel()
    assert code == 0, log.read_text()
    assert list(tmp_root.iterdir()) == []  # uploads and the features derived from them are gone


# ---------------------------------------------------------------------------------- long recordings and jobs


def _timeline_of(debug_model, wav, srt, speaker=None) -> dict:
    """What the library's timeline gives for the same input, named as the server names an upload."""
    from acoustemo.timeline import predict_media

    clip_id = "upload-" + hashlib.sha256(wav.read_bytes()).hexdigest()[:16]
    return predict_media(wav, srt, speaker, model=debug_model, clip_id=clip_id).to_json()


def test_long_recording_job_shows_progress_then_the_same_timeline(running, long_dialogue, dialogue, debug_model,
                                                                  temp_root, tmp_path):
    """A multi-minute dialogue posted to /api/jobs: the job id comes back at once, GET reports "window answers k
    of n" while the model works, and the answer is the library's timeline (the CLI's JSON) with the lanes plot.
    A short clip posted behind it waits its turn and keeps today's answer."""
    server, rec = running(hold=True, pause_mid=True)
    wav, srt, utts = long_dialogue
    status, job = post(server, [("media", "meeting.wav", wav.read_bytes()), ("subtitles", "meeting.srt",
                                                                              srt.read_bytes())], path="/api/jobs")
    assert status == 202, job
    assert job["state"] == "queued" and job["url"] == f"/api/jobs/{job['job']}" and len(job["job"]) >= 20
    assert job["upload"] == {"media": "meeting.wav", "subtitles": "meeting.srt", "speaker": None}
    assert rec.entered.wait(60)  # the model call is held at the gate: the job is running, no answer counted yet
    status, now = get_json(server, job["url"])
    assert (status, now["state"], now["done"], now["total"], now["ahead"]) == (200, "running", 0, 0, 0)
    assert "result" not in now

    short_wav, short_utts = dialogue
    status, short = post(server, [("media", "short.wav", short_wav.read_bytes()),
                                  ("subtitles", "short.json", json.dumps(short_utts).encode()),
                                  ("speaker", None, b"Anna")], path="/api/jobs")
    assert status == 202 and short["state"] == "queued" and short["ahead"] == 1

    rec.gate.set()
    assert rec.mid.wait(300)  # half-way through the windows
    status, now = get_json(server, job["url"])
    assert now["state"] == "running" and 0 < now["done"] < now["total"]
    assert (now["done"], now["total"]) == rec.progress[-1]
    rec.resume.set()
    seen = follow_job(server, job["url"])
    final = seen[-1]
    assert final["state"] == "done", final
    result = final["result"]
    n = len(result["timeline"])
    assert (final["done"], final["total"]) == (n, n) and rec.progress[0] == (0, n) and rec.progress[-1] == (n, n)
    assert [d for d, _ in rec.progress] == sorted(d for d, _ in rec.progress)

    # the same timeline as the library (and `acoustemo predict --json`) gives for the same files
    assert result["kind"] == "timeline" and result["media"] == "meeting.wav" and len(result["windows"]) > 3
    assert result["speakers"] == ["Anna", "Ben", "Cleo"] and len(result["utterances"]) == len(utts)
    expected = _timeline_of(debug_model, wav, srt)
    for d in (expected, result):
        d.pop("timings_s"), d.pop("media")
    assert result.pop("upload") == {"media": "meeting.wav", "subtitles": "meeting.srt", "speaker": None}
    plot = result.pop("plot")
    assert result == expected
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(plot.split(",", 1)[1]))) as im:  # the lanes plot, not the clip's
        assert im.size == (1540, 451)  # 14 x (1.4 + 0.9 per lane) in at 110 dpi: three speaker lanes
    assert str(temp_root) not in json.dumps(final)

    short_final = follow_job(server, short["url"])[-1]
    assert short_final["state"] == "done" and "kind" not in short_final["result"]
    assert [u["text"] for u in short_final["result"]["utterances"]] == [u["text"] for u in short_utts]
    assert short_final["result"]["upload"]["speaker"] == "Anna" and short_final["total"] == 0
    assert rec.max_active == 1 and [c["progress"] for c in rec.calls] == [True, True]
    assert list(temp_root.iterdir()) == []  # both uploads deleted once answered


def test_long_recording_through_the_waiting_predict_call(running, long_dialogue, debug_model):
    """POST /api/predict (curl, scripts) answers a long recording with the same timeline, without progress."""
    server, rec = running()
    wav, srt, _ = long_dialogue
    status, data = post(server, [("media", "meeting.wav", wav.read_bytes()), ("subtitles", "meeting.srt",
                                                                               srt.read_bytes()),
                                 ("speaker", None, b"Ben")], timeout=300)
    assert status == 200, data
    expected = _timeline_of(debug_model, wav, srt, "Ben")
    assert data["kind"] == "timeline" and data["timeline"] == expected["timeline"]
    assert {e["speaker"] for e in data["timeline"]} == {"Ben"} and data["summary"] == expected["summary"]
    assert rec.calls[0]["progress"] is False and rec.progress == []


def test_bad_recordings_get_clear_messages_through_jobs(running, long_dialogue, temp_root, tmp_path):
    """A speaker who never speaks and a recording without speech fail with the library's message (naming the
    speakers, and the upload rather than the server's path); subtitles covering part of the media are answered
    with a warning that says so."""
    import soundfile as sf

    server, _ = running()
    wav, srt, _ = long_dialogue
    media = ("media", "meeting.wav", wav.read_bytes())
    status, job = post(server, [media, ("subtitles", "meeting.srt", srt.read_bytes()), ("speaker", None, b"Dora")],
                       path="/api/jobs")
    assert status == 202, job
    final = follow_job(server, job["url"])[-1]
    assert final["state"] == "error" and final["status"] == 422 and "result" not in final
    assert "'Dora' never speaks in meeting.wav" in final["error"]
    assert "'Anna' (15 utterances), 'Ben' (14 utterances), 'Cleo' (11 utterances)" in final["error"]

    part = "".join(srt.read_text().split("\n\n")[i] + "\n\n" for i in range(4)).encode()
    status, job = post(server, [media, ("subtitles", "part.srt", part)], path="/api/jobs")
    final = follow_job(server, job["url"])[-1]
    assert final["state"] == "done", final
    (warning,) = [w for w in final["result"]["warnings"] if "answers only for that part" in w]
    assert warning.startswith("part.srt: the cues cover 0.3-") and str(temp_root) not in warning

    silent = tmp_path / "silence.wav"
    sf.write(silent, np.zeros(16000 * 3, np.float32), 16000)
    status, job = post(server, [("media", "quiet room.wav", silent.read_bytes())], path="/api/jobs")
    final = follow_job(server, job["url"])[-1]
    assert final["state"] == "error" and final["status"] == 422
    assert final["error"].startswith("quiet room.wav: no utterances (voice activity detection found no speech)")
    assert list(temp_root.iterdir()) == []


def test_jobs_are_bounded_and_expire(running, dialogue, temp_root):
    """At most max_jobs unfinished jobs (a refused one leaves nothing on disk); a finished job's answer is kept
    job_ttl_s, then forgotten; unknown ids get 404 in JSON."""
    server, rec = running(hold=True, max_jobs=1, job_ttl_s=1.5)
    wav, utts = dialogue
    parts = [("media", "d.wav", wav.read_bytes()), ("subtitles", "d.json", json.dumps(utts).encode())]
    status, first = post(server, parts, path="/api/jobs")
    assert status == 202
    assert rec.entered.wait(60)
    status, data = post(server, parts, path="/api/jobs")
    assert status == 503 and "already working on 1 uploads" in data["error"]
    assert len(list(temp_root.iterdir())) == 1  # only the running job's upload
    rec.gate.set()
    assert follow_job(server, first["url"])[-1]["state"] == "done"
    assert get_json(server, first["url"])[0] == 200  # kept for its page...
    time.sleep(2.0)
    status, data = get_json(server, first["url"])  # ...then forgotten
    assert status == 404 and "expired" in data["error"]
    status, data = get_json(server, "/api/jobs/no-such-job")
    assert status == 404 and "no job 'no-such-job'" in data["error"]
    status, again = post(server, parts, path="/api/jobs")  # the slot is free again
    assert status == 202 and follow_job(server, again["url"])[-1]["state"] == "done"
    assert len(rec.calls) == 2 and list(temp_root.iterdir()) == []


def test_jobs_refuse_other_sites(running, dialogue):
    server, rec = running()
    wav, _ = dialogue
    status, data = post(server, [("media", "d.wav", wav.read_bytes())], headers={"Origin": "http://evil.example"},
                        path="/api/jobs")
    assert status == 403 and "not allowed" in data["error"] and rec.calls == []
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    try:
        conn.request("GET", "/api/jobs/x", headers={"Host": "attacker.example"})
        resp = conn.getresponse()
        assert resp.status == 403 and b"is not this machine" in resp.read()
    finally:
        conn.close()
