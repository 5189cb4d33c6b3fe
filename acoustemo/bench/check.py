"""Measure that the benchmark's cues are real and moderate, on the generated audio.

Two checks:
  - paired: re-render a clip without one cue and compare inside / outside the cue's span (loudness in dB,
    median F0 in semitones, 5–9 Hz modulation of the loudness contour). Proves the cue sits where the label says.
  - detectability: for each cue, one simple statistic per clip (the loudest / highest / most 5–9 Hz-modulated
    1 s window relative to the speaker's own level) and its ROC AUC for "the target carries this cue", measured
    over the target's utterances (what utterance windows see) and over the whole clip (what global pooling sees,
    distractors included). Moderate cues give AUCs well below 1 (benchmarks/bench_cues.py prints them).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np

from acoustemo.data.media import SAMPLE_RATE_HZ

HOP_S = 0.01
WINDOW_S = 1.0
TREMOR_BAND_HZ = (5.0, 9.0)
REFERENCE_BAND_HZ = (1.0, 12.0)


def loudness_db(wav: np.ndarray) -> np.ndarray:
    """(frames,) RMS in dB over 25 ms windows every 10 ms (frame i centred at i * 10 ms)."""
    hop, win = int(HOP_S * SAMPLE_RATE_HZ), int(0.025 * SAMPLE_RATE_HZ)
    padded = np.pad(wav.astype(np.float64), (win // 2, win))
    n = len(wav) // hop
    idx = np.arange(n)[:, None] * hop + np.arange(win)[None, :]
    return 10 * np.log10(np.mean(padded[idx] ** 2, axis=1) + 1e-12)


def f0_semitones(wav: np.ndarray) -> np.ndarray:
    """(frames,) F0 in semitones re 100 Hz every 10 ms (librosa YIN); NaN in frames > 25 dB below the loudest."""
    import librosa

    hop = int(HOP_S * SAMPLE_RATE_HZ)
    f0 = librosa.yin(wav.astype(np.float32), fmin=65, fmax=500, sr=SAMPLE_RATE_HZ, frame_length=512, hop_length=hop)
    db = loudness_db(wav)
    n = min(len(f0), len(db))
    st = 12 * np.log2(f0[:n] / 100.0)
    st[db[:n] < db.max() - 25] = np.nan
    return st


def modulation_ratio(contour: np.ndarray, band=TREMOR_BAND_HZ, reference=REFERENCE_BAND_HZ) -> float:
    """Share of the contour's spectral energy (detrended, Hann-windowed, 100 Hz) in `band` within `reference`."""
    x = np.asarray(contour, dtype=np.float64)
    x = np.where(np.isfinite(x), x, np.nanmedian(x) if np.isfinite(x).any() else 0.0)
    if len(x) < 20:
        return 0.0
    t = np.arange(len(x))
    x = x - np.polyval(np.polyfit(t, x, 1), t)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=512)) ** 2
    freqs = np.fft.rfftfreq(512, HOP_S)
    ref = spec[(freqs >= reference[0]) & (freqs <= reference[1])].sum()
    return float(spec[(freqs >= band[0]) & (freqs <= band[1])].sum() / ref) if ref > 0 else 0.0


def _frames(a_s: float, b_s: float, n: int) -> slice:
    return slice(max(0, int(round(a_s / HOP_S))), min(n, int(round(b_s / HOP_S))))


def _windows(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out = []
    for a, b in spans:
        if b - a <= WINDOW_S:
            out.append((a, b))
        else:
            out += [(s, s + WINDOW_S) for s in np.arange(a, b - WINDOW_S + 1e-9, 0.1)]
    return out


def _band_power(contour: np.ndarray, band=TREMOR_BAND_HZ) -> np.ndarray:
    """(frames,) squared band-passed contour (4th-order Butterworth, zero phase, 100 Hz frames)."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(2, band, btype="bandpass", fs=1 / HOP_S, output="sos")
    return sosfiltfilt(sos, contour) ** 2


def cue_statistics(wav: np.ndarray, spans: list[tuple[float, float]]) -> dict[str, float]:
    """One number per cue: the most cue-like 1 s window inside `spans` (the speaker's utterances, or the clip).

    burst: the loudest window's mean dB minus the spans' median dB (speech frames only)
    jump: the highest window's median F0 minus the spans' median F0 (semitones, cleaned F0 frames)
    tremor: the largest median 5–9 Hz band power of the loudness contour (dB^2)
    tremor_f0: the same for the F0 contour (semitones^2); YIN's octave slips and unvoiced frames are
               dropped (frames > 1 st from their 90 ms median or > 7 st from the spans' median) and bridged
    """
    from scipy.ndimage import median_filter

    db, st = loudness_db(wav), f0_semitones(wav)
    n = min(len(db), len(st))
    db, st = db[:n], st[:n]
    speech = db > db.max() - 30
    in_spans = np.zeros(n, bool)
    for a, b in spans:
        in_spans[_frames(a, b, n)] = True
    voiced = np.isfinite(st) & speech
    if voiced.sum() < 20:
        return {"burst": -np.inf, "jump": -np.inf, "tremor": 0.0, "tremor_f0": 0.0}
    filled = np.where(voiced, st, np.nanmedian(st[voiced]))
    voiced &= np.abs(filled - median_filter(filled, 9)) < 1.0
    voiced &= np.abs(filled - np.median(filled[voiced & in_spans] if (voiced & in_spans).any() else 0)) < 7.0
    idx = np.arange(n)
    f0_band = _band_power(np.interp(idx, idx[voiced], filled[voiced]))
    db_band = _band_power(db)
    ref_db = np.median(db[in_spans & speech])
    ref_st = np.median(filled[in_spans & voiced]) if (in_spans & voiced).any() else 0.0
    out = {"burst": -np.inf, "jump": -np.inf, "tremor": 0.0, "tremor_f0": 0.0}
    for a, b in _windows(spans):
        sl = _frames(a, b, n)
        sp, vo = speech[sl], voiced[sl]
        if sp.sum() >= 10:
            out["burst"] = max(out["burst"], float(np.mean(db[sl][sp])) - ref_db)
            out["tremor"] = max(out["tremor"], float(np.median(db_band[sl][sp])))
        if vo.sum() >= 10:
            out["jump"] = max(out["jump"], float(np.median(filled[sl][vo])) - ref_st)
            out["tremor_f0"] = max(out["tremor_f0"], float(np.median(f0_band[sl][vo])))
    return out


def auc(positives: list[float], negatives: list[float]) -> float:
    """ROC AUC = P(positive statistic > negative statistic), ties count half (Mann–Whitney)."""
    p, q = np.asarray(positives, float)[:, None], np.asarray(negatives, float)[None, :]
    if p.size == 0 or q.size == 0:
        return float("nan")
    return float(np.mean((p > q) + 0.5 * (p == q)))


def detectability(bench_dir: str | Path, splits=("train", "val", "test")) -> dict:
    """AUC per cue of `cue_statistics`, over the target's utterances and over the whole clip."""
    import soundfile as sf

    bench = Path(bench_dir)
    meta = json.loads((bench / "meta.json").read_text())
    stats = {"target_utterances": [], "whole_clip": []}
    truth = []
    for split in splits:
        for line in (bench / f"{split}.jsonl").read_text().splitlines():
            row = json.loads(line)
            wav, _ = sf.read(bench / row["media"], dtype="float32")
            spans = [(u["start"], u["end"]) for u in row["utterances"] if u["speaker"] == row["target_speaker"]]
            stats["target_utterances"].append(cue_statistics(wav, spans))
            stats["whole_clip"].append(cue_statistics(wav, [(0.0, len(wav) / SAMPLE_RATE_HZ)]))
            truth.append({c["type"] for c in meta["clips"][row["id"]]["cues"] if not c["distractor"]})
    out = {"clips": len(truth)}
    for view, rows in stats.items():
        out[view] = {stat: round(auc([r[stat] for r, t in zip(rows, truth) if stat.split("_")[0] in t],
                                     [r[stat] for r, t in zip(rows, truth) if stat.split("_")[0] not in t]), 3)
                     for stat in ("burst", "jump", "tremor", "tremor_f0")}
    return out


def paired_effect(plan: dict, cue_index: int) -> dict:
    """Render `plan` with and without its cue `cue_index`; the change inside vs outside the cue's span.

    Returns the cue record and: db_inside (mean dB change over the span's core), db_outside (largest |dB change|
    in 20 ms frames outside the span), st_inside / st_outside (median F0 change, semitones), and the 5–9 Hz
    modulation share, inside the span, of the loudness contour with and without the cue and of the changes
    the cue made to the loudness (dB) and F0 (semitones) contours; for a tremor also the fitted amplitude of
    its known wobble in those changes (tremor_st_amplitude ~ planned semitones, tremor_db_amplitude in dB).
    """
    from acoustemo.bench.make import render_clip

    with_cue, record = render_clip(plan)
    bare = copy.deepcopy(plan)
    del bare["cues"][cue_index]
    without, _ = render_clip(bare)
    cue = record["cues"][cue_index]
    db_w, db_0 = loudness_db(with_cue), loudness_db(without)
    st_w, st_0 = f0_semitones(with_cue), f0_semitones(without)
    n = min(len(db_w), len(st_w), len(st_0))
    core = _frames(cue["start"] + 0.12, cue["end"] - 0.12, n)
    outside = np.ones(n, bool)
    outside[_frames(cue["start"] - 0.05, cue["end"] + 0.05, n)] = False
    speech = db_0[:n] > db_0.max() - 30
    d_db, d_st = db_w[:n] - db_0[:n], st_w[:n] - st_0[:n]
    span = _frames(cue["start"], cue["end"], n)
    wobble = {}
    if cue["type"] == "tremor":
        # The modulated delay line moves pitch by -semitones * cos(phase); the gain moves loudness with sin(phase).
        t = np.arange(n)[core] * HOP_S
        phase = 2 * np.pi * cue["rate_hz"] * (t - cue["start"])
        ok = np.isfinite(d_st[core]) & (np.abs(d_st[core]) < 3)  # drop YIN's octave slips
        wobble = {"tremor_st_amplitude": _fit(d_st[core][ok], -np.cos(phase[ok])),
                  "tremor_db_amplitude": _fit(d_db[core][speech[core]], np.sin(phase[speech[core]]))}
    return {**wobble,
        "cue": cue,
        "db_inside": float(np.mean(d_db[core][speech[core]])),
        "db_outside": float(np.max(np.abs(d_db[outside & speech]))) if (outside & speech).any() else 0.0,
        "st_inside": float(np.nanmedian(d_st[core])),
        "st_outside": float(np.nanmedian(np.abs(d_st[outside]))),
        "tremor_share_with": modulation_ratio(db_w[span]),
        "tremor_share_without": modulation_ratio(db_0[span]),
        "tremor_share_of_db_change": modulation_ratio(d_db[span]),
        "tremor_share_of_st_change": modulation_ratio(d_st[span]),
    }


def _fit(y: np.ndarray, x: np.ndarray) -> float:
    """Least-squares amplitude of `x` in `y` (with an offset): how strongly y follows the known wobble x."""
    if len(y) < 10:
        return 0.0
    design = np.stack([x, np.ones_like(x)], axis=1)
    return float(np.linalg.lstsq(design, y, rcond=None)[0][0])
