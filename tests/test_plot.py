"""The explanation timeline (Figure 2 style): panels, time alignment of the attention strip, pitch, the PNG."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from acoustemo.data.windows import frame_range
from acoustemo.plot import attention_track, estimate_pitch, plot_timeline, timeline_figure

RATE_HZ = 50.0  # the default acoustic stack's frame rate


def _labels(fig) -> list[str]:
    return [ax.get_label() for ax in fig.axes]


def _peaked_attention(utts, n_samples, sr, peak_frac=0.8, pad=4, queries=5):
    """(K, F_i + pad) per window like the Q-Former returns: rows sum to 1 over real frames, zero key padding,
    a peak at `peak_frac` of each window. Returns (attention, expected peak times in s)."""
    L = int(np.ceil(n_samples / sr * RATE_HZ))
    rng = np.random.default_rng(0)
    att, peaks = [], []
    for u in utts:
        a, b = frame_range(u["start"], u["end"], RATE_HZ, L)
        f = b - a
        w = rng.random((queries, f + pad)) * 0.1 + 0.1
        k = int(f * peak_frac)
        w[:, k] += 5.0
        w[:, f:] = 0.0
        att.append(w / w.sum(axis=1, keepdims=True))
        peaks.append((a + k + 0.5) / RATE_HZ)
    return att, peaks


def test_timeline_has_waveform_pitch_and_attention_panels(dialogue, tmp_path):
    wav_path, utts = dialogue
    wav, sr = sf.read(wav_path, dtype="float32")
    att, _ = _peaked_attention(utts, len(wav), sr)
    out = plot_timeline(tmp_path / "plots" / "timeline.png", wav, sr, utts, attention=att, attention_rate_hz=RATE_HZ,
                        emotions=["anxious", "worried"], title="dialogue")
    assert out == tmp_path / "plots" / "timeline.png"
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width >= 1200 and im.height >= 700
        # a drawn figure, not a blank canvas: plenty of distinct colours (waveform, shading, heat strip)
        assert len(im.convert("RGB").getcolors(maxcolors=1 << 20)) > 200
    assert [p.name for p in out.parent.iterdir()] == ["timeline.png"]  # atomic write left no temp file

    fig = timeline_figure(wav, sr, utts, attention=att, attention_rate_hz=RATE_HZ, emotions=["anxious", "worried"])
    assert _labels(fig) == ["waveform", "pitch", "attention", "attention-colorbar"]
    assert any(t.get_text() == "Predicted: anxious, worried" for t in fig.texts)
    wave_ax = fig.axes[0]
    labels = [t.get_text() for t in wave_ax.texts]
    assert any(s.startswith("Anna: I put the keys") for s in labels) and any(s.startswith("Ben:") for s in labels)
    # one shaded window per utterance per panel, coloured per speaker (Anna twice in one colour, Ben in another)
    spans = [p for p in wave_ax.patches]
    assert len(spans) == len(utts)
    colours = [tuple(p.get_facecolor()[:3]) for p in spans]
    assert colours[0] == colours[2] != colours[1]


def test_timeline_without_attention_has_no_strip(dialogue):
    wav_path, utts = dialogue
    wav, sr = sf.read(wav_path, dtype="float32")
    fig = timeline_figure(wav, sr, utts)
    assert _labels(fig) == ["waveform", "pitch"]
    assert any(t.get_text() == "Predicted: (none)" for t in fig.texts)


def test_attention_strip_is_aligned_with_the_utterance_windows(dialogue):
    wav_path, utts = dialogue
    info = sf.info(wav_path)
    n, sr = info.frames, info.samplerate
    att, peaks = _peaked_attention(utts, n, sr)
    from acoustemo.data.segments import Utterance

    edges, weights = attention_track(att, RATE_HZ, [Utterance.from_json(u) for u in utts], n / sr)
    centres = (edges[:-1] + edges[1:]) / 2
    for u, peak_s in zip(utts, peaks):
        inside = (centres >= u["start"] - 1 / RATE_HZ) & (centres <= u["end"] + 1 / RATE_HZ)
        k = np.nanargmax(np.where(inside, weights, np.nan))
        assert abs(centres[k] - peak_s) < 1e-6
        assert weights[k] > 3.0  # well above uniform (1.0)
    gap = (centres > utts[0]["end"] + 0.05) & (centres < utts[1]["start"] - 0.05)
    assert gap.any() and np.isnan(weights[gap]).all()  # silence between utterances: no attention drawn
    assert np.isnan(weights[centres > utts[-1]["end"] + 0.05]).all()  # key padding did not leak past the window


def test_uniform_attention_reads_as_one_whatever_the_window_length(dialogue):
    wav_path, utts = dialogue
    info = sf.info(wav_path)
    from acoustemo.data.segments import Utterance

    us = [Utterance.from_json(u) for u in utts]
    L = int(np.ceil(info.frames / info.samplerate * RATE_HZ))
    att = []
    for u in us:
        a, b = frame_range(u.start_s, u.end_s, RATE_HZ, L)
        att.append(np.full((2, 3, b - a), 1.0 / (b - a)))  # (heads, K, F) averaged over the leading axes
    _, weights = attention_track(att, RATE_HZ, us, info.frames / info.samplerate)
    assert np.allclose(weights[np.isfinite(weights)], 1.0)


def test_attention_must_match_the_utterances(dialogue):
    wav_path, utts = dialogue
    wav, sr = sf.read(wav_path, dtype="float32")
    with pytest.raises(ValueError, match="3 utterances"):
        timeline_figure(wav, sr, utts, attention=[np.ones(5)] * 2, attention_rate_hz=RATE_HZ)
    with pytest.raises(ValueError, match="attention_rate_hz"):
        timeline_figure(wav, sr, utts, attention=[np.ones(5)] * 3)


def test_yin_pitch_follows_a_tone_and_is_blank_in_silence():
    sr = 16_000
    t = np.arange(sr) / sr
    f0 = 180 + 20 * np.sin(2 * np.pi * 1.0 * t)  # a slow 160-200 Hz glide
    tone = 0.4 * np.sin(2 * np.pi * np.cumsum(f0) / sr)
    wav = np.concatenate([np.zeros(sr // 2), tone, np.zeros(sr // 2)]).astype(np.float32)
    est, rate = estimate_pitch(wav, sr)
    assert rate == 100.0
    times = np.arange(len(est)) / rate
    mid = (times > 0.6) & (times < 1.4)
    truth = np.interp(times[mid] - 0.5, t, f0)
    assert np.nanmax(np.abs(est[mid] - truth) / truth) < 0.03
    assert np.isnan(est[(times < 0.4) | (times > 1.6)]).all()


def test_pitch_track_from_the_caller_is_used_as_given(dialogue):
    wav_path, utts = dialogue
    wav, sr = sf.read(wav_path, dtype="float32")
    pitch = np.where(np.arange(int(len(wav) / sr * RATE_HZ)) % 10 < 5, 150.0, 0.0)  # 0 = unvoiced
    fig = timeline_figure(wav, sr, utts, pitch_hz=pitch, pitch_rate_hz=RATE_HZ)
    line = fig.axes[1].lines[0]
    y = np.asarray(line.get_ydata(), dtype=float)
    assert np.nanmax(y) == 150.0 and np.isnan(y).sum() == (pitch == 0).sum()
    with pytest.raises(ValueError, match="pitch_rate_hz"):
        timeline_figure(wav, sr, utts, pitch_hz=pitch)
