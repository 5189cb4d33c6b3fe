"""The cues' signal processing: a slow loudness drift in every utterance, and the three local cues (a loud burst,
a pitch jump, a tremor) placed inside one utterance.

  burst    +6..8 dB over 0.8–1.2 s, 0.1 s raised-cosine edges
  jump     +3..4 semitones (sox `pitch`, duration kept) over 0.8–1.2 s, 0.04 s crossfades
  tremor   6..8 Hz, amplitude depth 0.40..0.55 and pitch depth ±0.7..1.0 semitone, 0.8–1.2 s, 0.1 s fades

(the ranges are BenchConfig's defaults; the plan draws each cue's values.)
"""

from __future__ import annotations

import numpy as np

from acoustemo.data.media import SAMPLE_RATE_HZ
from acoustemo.data.revoice import sox_effects

EDGE_S = 0.2  # a local cue keeps this far from the utterance's edges when it can


def span_window(n: int, start_s: float, end_s: float, ramp_s: float) -> np.ndarray:
    """(n,) weights: 1 inside [start_s, end_s], raised-cosine ramps of ramp_s just inside its edges, 0 outside."""
    t = np.arange(n) / SAMPLE_RATE_HZ
    up = np.clip((t - start_s) / ramp_s, 0, 1)
    down = np.clip((end_s - t) / ramp_s, 0, 1)
    return (0.5 - 0.5 * np.cos(np.pi * np.minimum(up, down))).astype(np.float64)


def apply_drift(wav: np.ndarray, drift: list[list[float]]) -> np.ndarray:
    """Slow natural loudness changes within an utterance, so a burst is not the only loudness change in it."""
    t = np.arange(len(wav)) / SAMPLE_RATE_HZ
    gain_db = sum(a * np.sin(2 * np.pi * f * t + ph) for f, ph, a in drift)
    return (wav * 10 ** (gain_db / 20)).astype(np.float32)


def apply_burst(wav: np.ndarray, start_s: float, end_s: float, gain_db: float) -> np.ndarray:
    w = span_window(len(wav), start_s, end_s, 0.1)
    return (wav * 10 ** (gain_db * w / 20)).astype(np.float32)


def sox_pitch(wav: np.ndarray, semitones: float) -> np.ndarray:
    """The whole signal shifted by `semitones` with sox's `pitch` (WSOLA; duration and timing kept)."""
    return sox_effects(wav, ["pitch", f"{semitones * 100:.1f}"])


def apply_jump(wav: np.ndarray, start_s: float, end_s: float, semitones: float) -> np.ndarray:
    """Raise the pitch inside the span, crossfading (40 ms) into and out of a pitch-shifted copy."""
    w = span_window(len(wav), start_s, end_s, 0.04)
    return ((1 - w) * wav + w * sox_pitch(wav, semitones)).astype(np.float32)


def apply_tremor(wav: np.ndarray, start_s: float, end_s: float, rate_hz: float, depth: float,
                 semitones: float) -> np.ndarray:
    """Amplitude (1 ± depth) and pitch (± semitones, by a modulated delay line) wobble at rate_hz inside the span."""
    n = len(wav)
    w = span_window(n, start_s, end_s, 0.1)
    t = np.arange(n) / SAMPLE_RATE_HZ
    phase = 2 * np.pi * rate_hz * (t - start_s)
    # A delay d(t) = D sin(phase) resamples by 1 - d'(t): pitch swings by ±(2π f D), so D sets the semitones.
    delay_s = (2 ** (semitones / 12) - 1) / (2 * np.pi * rate_hz) * w * np.sin(phase)
    shifted = np.interp(t - delay_s, t, wav.astype(np.float64))
    return (shifted * (1 + depth * w * np.sin(phase))).astype(np.float32)


def apply_cue(wav: np.ndarray, cue: dict, start_s: float, end_s: float) -> np.ndarray:
    """A planned local cue (a burst, a jump or a tremor, with its drawn values) applied over [start_s, end_s]."""
    if cue["type"] == "burst":
        return apply_burst(wav, start_s, end_s, cue["gain_db"])
    if cue["type"] == "jump":
        return apply_jump(wav, start_s, end_s, cue["semitones"])
    return apply_tremor(wav, start_s, end_s, cue["rate_hz"], cue["depth"], cue["semitones"])


def place_cue(cue: dict, durations: list[float], turn_ids: list[int]) -> tuple[int, float, float]:
    """(turn, start_s, end_s within the turn): prefer the speaker's turns long enough for the cue and edges."""
    long_enough = [k for k in turn_ids if durations[k] >= cue["length_s"] + 2 * EDGE_S]
    pool = long_enough or turn_ids
    k = pool[min(int(cue["turn_choice"] * len(pool)), len(pool) - 1)]
    dur = durations[k]
    length = min(cue["length_s"], max(0.5, dur - 2 * EDGE_S), 0.8 * dur)
    edge = min(EDGE_S, (dur - length) / 2)
    start = edge + cue["position"] * (dur - length - 2 * edge)
    return k, start, start + length
