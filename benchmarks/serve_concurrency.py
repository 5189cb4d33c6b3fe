"""20 uploads at once to `acoustemo serve`: all answered (queued, none dropped, none mixed up), health-check latency
meanwhile, and the server's memory before, during and after; prints JSON (issue #13).

    python benchmarks/serve_concurrency.py [--uploads 20] [--model DIR] [--max-upload-mb 200]

The server is the real command (`python -m acoustemo serve --port 0`, the shipped checkpoint unless --model) in
its own process, so its memory (VmRSS / VmHWM from /proc) is the server's alone. The clip is examples/sample.wav
(the README's sample clip) with examples/sample.srt; upload i gets its own copy (i ms of silence appended, so no
upload hits another's cached features), its own speaker names in the subtitles ("Sami" -> "Sami-i") and its own
`speaker` field, and its answer must carry exactly those back.

- baseline: the server's RSS after one warm-up upload (encoders and the LLM loaded, allocator warm);
- during: 20 client threads post at once; a 21st polls GET /healthz every 50 ms and records each latency;
- after: RSS a few seconds after the last answer; then the same again (--rounds 2, new copies of the clip), so
  memory that creeps from round to round shows; at the end, the upload folders left in the server's TMPDIR.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]


def multipart(parts: list[tuple[str, str | None, bytes]]) -> tuple[bytes, str]:
    boundary = f"----bench{uuid.uuid4().hex}"
    out = io.BytesIO()
    for name, filename, content in parts:
        disp = f'Content-Disposition: form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out.write(f"--{boundary}\r\n{disp}\r\n\r\n".encode() + content + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def request(addr, method: str, path: str, body: bytes | None = None, ctype: str | None = None, timeout=1800):
    conn = http.client.HTTPConnection(*addr, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": ctype} if ctype else {})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def rss_mb(pid: int) -> dict:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")}


def make_uploads(n: int, folder: Path, offset_ms: int = 1) -> list[dict]:
    wav, sr = sf.read(ROOT / "examples" / "sample.wav", dtype="float32")
    srt = (ROOT / "examples" / "sample.srt").read_text()
    names = list(dict.fromkeys(re.findall(r"^([^\W\d]\w*): ", srt, flags=re.M)))  # the first is the target speaker
    uploads = []
    for i in range(n):
        buf = io.BytesIO()
        sf.write(buf, np.concatenate([wav, np.zeros(int(sr * (offset_ms + i) / 1000), np.float32)]), sr, format="WAV")
        subs = re.sub(r"^([^\W\d]\w*): ", rf"\1-{i}: ", srt, flags=re.M)
        target = f"{names[0]}-{i}"
        uploads.append({"name": f"clip{i}.wav", "speaker": target, "speakers": {f"{n}-{i}" for n in names},
                        "parts": [("media", f"clip{i}.wav", buf.getvalue()), ("subtitles", f"clip{i}.srt", subs.encode()),
                                  ("speaker", None, target.encode())]})
    return uploads


def check(upload: dict, status: int, data: dict) -> str | None:
    """None when the answer is this upload's own, else what is wrong."""
    if status != 200:
        return f"HTTP {status}: {data.get('error')}"
    if data["upload"] != {"media": upload["name"], "subtitles": upload["name"][:-4] + ".srt",
                          "speaker": upload["speaker"]}:
        return f"answer names another upload: {data['upload']}"
    if {u["speaker"] for u in data["utterances"]} != upload["speakers"]:
        return f"utterances of another upload: {[u['speaker'] for u in data['utterances']]}"
    return None


def burst(addr, pid: int, uploads: list[dict], health_interval_s: float) -> dict:
    """All `uploads` at once, /healthz polled meanwhile; the answers checked and the server's memory after."""
    results: list = [None] * len(uploads)
    done, health, rss_during = threading.Event(), [], []

    def client(i):
        t = time.perf_counter()
        try:
            status, data = request(addr, "POST", "/api/predict", *multipart(uploads[i]["parts"]))
        except Exception as e:  # a dropped connection is a result too
            status, data = None, {"error": repr(e)}
        results[i] = (status, data, time.perf_counter() - t)

    def poll_health():
        while not done.is_set():
            t = time.perf_counter()
            status, _ = request(addr, "GET", "/healthz", timeout=30)
            health.append((status, time.perf_counter() - t, t - t0))
            rss_during.append(rss_mb(pid)["VmRSS"])
            time.sleep(health_interval_s)

    t0 = time.perf_counter()
    poller = threading.Thread(target=poll_health)
    poller.start()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(uploads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall_s = time.perf_counter() - t0
    done.set()
    poller.join()
    time.sleep(3)
    after = rss_mb(pid)
    problems = {uploads[i]["name"]: p for i, (s, d, _) in enumerate(results) if (p := check(uploads[i], s, d))}
    lat_ms = np.array([1000 * s for _, s, _ in health])
    per_upload = [r[2] for r in results]
    worst = sorted(health, key=lambda h: -h[1])[:5]
    return {
        "uploads": len(uploads), "answered_200": sum(r[0] == 200 for r in results), "problems": problems,
        "wall_s": round(wall_s, 1),
        "upload_latency_s": {"min": round(min(per_upload), 2), "median": round(statistics.median(per_upload), 2),
                             "max": round(max(per_upload), 2)},
        "health_checks": len(health), "health_non_200": sum(s != 200 for s, _, _ in health),
        "health_latency_ms": {q: round(float(np.percentile(lat_ms, p)), 1)
                              for q, p in (("median", 50), ("p95", 95), ("p99", 99), ("max", 100))},
        "health_over_100ms": int((lat_ms > 100).sum()),
        "health_worst": [{"ms": round(1000 * s), "at_s": round(at, 1)} for _, s, at in worst],
        "rss_mb": {"peak_during": round(max(rss_during)), "after": round(after["VmRSS"])},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--uploads", type=int, default=20)
    ap.add_argument("--model", help="model folder (default: the shipped checkpoint)")
    ap.add_argument("--rounds", type=int, default=2, help="bursts one after another (memory must not creep)")
    ap.add_argument("--health-interval-s", type=float, default=0.05)
    args = ap.parse_args()

    import torch

    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    server_tmp = tmp / "server-tmp"
    server_tmp.mkdir()
    cmd = [sys.executable, "-m", "acoustemo", "serve", "--port", "0"] + (["--model", args.model] if args.model else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(tmp / "serve.log", "w"), text=True, cwd=ROOT,
                            env={**os.environ, "TMPDIR": str(server_tmp), "PYTHONPATH": str(ROOT)})
    try:
        line = proc.stdout.readline()
        if not line.startswith("AcoustEmo demo at http://"):
            raise SystemExit(f"the server did not start: {line!r}\n{(tmp / 'serve.log').read_text()}")
        host, port = line.split("http://", 1)[1].split("/", 1)[0].split(":")
        addr = (host, int(port))
        (warm,) = make_uploads(1, tmp, offset_ms=0)  # the warm-up upload: the clip as it is
        t0 = time.perf_counter()
        status, data = request(addr, "POST", "/api/predict", *multipart(warm["parts"]))
        warm_s = time.perf_counter() - t0
        assert check(warm, status, data) is None, data
        time.sleep(2)
        baseline = rss_mb(proc.pid)

        rounds = []
        for r in range(args.rounds):
            rounds.append(burst(addr, proc.pid, make_uploads(args.uploads, tmp, offset_ms=1 + r * args.uploads),
                                args.health_interval_s))
        leftovers = sorted(p.name for p in server_tmp.iterdir() if p.name.startswith("acoustemo-upload-"))
        print(json.dumps({
            "uploads_per_round": args.uploads, "warmup_upload_s": round(warm_s, 2),
            "rss_mb_baseline": round(baseline["VmRSS"]), "rounds": rounds, "upload_folders_left": leftovers,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "native_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
            "cpu_count": os.cpu_count(), "load_average_at_end": os.getloadavg(),
        }, indent=1))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
