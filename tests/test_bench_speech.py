"""The clip makers tests and benchmarks share (acoustemo/bench/speech.py): real espeak-ng speech, measured."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from acoustemo.bench.speech import LATENCY_LINES, latency_clip
from acoustemo.data.subtitles import read_subtitles


def test_latency_clip_is_30_s_with_the_times_its_srt_gives(tmp_path):
    """The latency benchmarks' clip: LATENCY_LINES 0.5 s in, 1.2 s apart, speech where the SRT says, silence to 30 s."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    wav_path, srt = latency_clip(tmp_path / "clip")
    audio, sr = sf.read(wav_path, dtype="float32")
    assert sr == 16_000 and len(audio) == 30 * 16_000
    utts, warnings = read_subtitles(srt)
    assert not warnings
    assert [(u.speaker, u.text) for u in utts] == [(s, t) for s, _, t in LATENCY_LINES]
    assert utts[0].start_s == 0.5
    assert [round(b.start_s - a.end_s, 3) for a, b in zip(utts, utts[1:])] == [1.2, 1.2, 1.2]
    ms = sr // 1000
    for u in utts:  # espeak's own silence is trimmed: speech within 10 ms of each time, digital silence beyond 1 ms
        a, b = round(u.start_s * sr), round(u.end_s * sr)
        assert np.abs(audio[a : a + 10 * ms]).max() > 1e-3 and np.abs(audio[b - 10 * ms : b]).max() > 1e-3
        assert not audio[a - 100 * ms : a - ms].any() and not audio[b + ms : b + 100 * ms].any()
    assert not audio[round(utts[-1].end_s * sr):].any()
