"""`extract`: progress over a manifest, failures reported and skipped, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from acoustemo.data.manifest import read_manifest
from acoustemo.features.registry import get_acoustic_encoder
from acoustemo.features.cache import FeatureCache
from acoustemo.features.extract import extract, parse_shard
from conftest import speak

LINES = ["I told you the train leaves at nine.", "Nobody answered the phone all afternoon.",
         "The garden looks different after the rain.", "We should have taken the other road.",
         "Her letter arrived three days late.", "The music stopped when the door opened."]
REPO = Path(__file__).resolve().parents[1]


def _manifest(folder: Path, n: int, broken: bool = False, repeat: int = 1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        speak(" ".join([LINES[i % len(LINES)]] * repeat), folder / f"c{i}.wav")
        rows.append({"id": f"c{i}", "media": f"c{i}.wav", "utterances": [{"start": 0.0, "end": 1.0, "speaker": "A", "text": "x"}]})
    if broken:
        (folder / "bad.wav").write_bytes(b"this is not audio at all")
        rows.insert(1, {"id": "bad", "media": "bad.wav", "utterances": [{"start": 0.0, "end": 1.0, "speaker": "A", "text": "x"}]})
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_failed_clip_is_reported_and_the_rest_go_on(tmp_path):
    clips = read_manifest(_manifest(tmp_path / "data", 3, broken=True))
    cache, enc = FeatureCache(tmp_path / "cache"), get_acoustic_encoder("prosody")
    report = extract(clips, cache, enc, progress=False)
    assert report.failed and report.failed[0][0] == "bad" and "MediaError" in report.failed[0][1]
    assert sorted(report.computed) == ["c0:prosody", "c1:prosody", "c2:prosody"]
    assert "FAILED bad" in report.summary()
    again = extract(clips, cache, enc, progress=False)
    assert again.computed == [] and len(again.skipped) == 3 and len(again.failed) == 1


def test_shards_split_the_clips(tmp_path):
    clips = read_manifest(_manifest(tmp_path / "data", 3))
    cache, enc = FeatureCache(tmp_path / "cache"), get_acoustic_encoder("prosody")
    r0 = extract(clips, cache, enc, shard=(0, 2), progress=False)
    r1 = extract(clips, cache, enc, shard=(1, 2), progress=False)
    assert sorted(r0.computed + r1.computed) == ["c0:prosody", "c1:prosody", "c2:prosody"] and not set(r0.computed) & set(r1.computed)
    assert parse_shard("1/4") == (1, 4)
    with pytest.raises(Exception, match="0 <= i < n"):
        parse_shard("4/4")


def test_cli_exits_nonzero_with_a_failure_summary(tmp_path):
    manifest = _manifest(tmp_path / "data", 1, broken=True)
    proc = subprocess.run([sys.executable, "-m", "acoustemo", "extract", str(manifest), "--cache", str(tmp_path / "cache"),
                           "--acoustic", "prosody", "--no-progress"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 1, proc.stderr
    assert "1 computed, 0 already cached, 1 failed" in proc.stderr and "FAILED bad" in proc.stderr


def test_killed_extraction_resumes_without_recomputing(tmp_path):
    manifest = _manifest(tmp_path / "data", 6, repeat=2)
    cache_dir = tmp_path / "cache"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "acoustemo", "extract", str(manifest), "--cache", str(cache_dir),
                             "--acoustic", "default", "--no-progress"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not list(cache_dir.glob("*.safetensors")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    finished = {p: p.stat().st_mtime_ns for p in cache_dir.glob("*.safetensors")}
    assert 1 <= len(finished) < 6, "the kill should land after the first clip and before the last"

    report = extract(read_manifest(manifest), FeatureCache(cache_dir), get_acoustic_encoder("default"), progress=False)
    assert len(report.skipped) == len(finished) and len(report.computed) == 6 - len(finished) and report.ok
    assert all(p.stat().st_mtime_ns == m for p, m in finished.items())  # finished clips were not recomputed
    assert len(list(cache_dir.glob("*.safetensors"))) == 6 and not list(cache_dir.glob("*.tmp-*"))
