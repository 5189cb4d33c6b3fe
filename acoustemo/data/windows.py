"""Utterance windows over frame-level features: Eq. (1) of the paper and the fixed-window ablation."""

from __future__ import annotations

import math

import numpy as np


def frame_range(start_s: float, end_s: float, frame_rate_hz: float, num_frames: int) -> tuple[int, int]:
    """Eq. (1): frames [floor(t_start * f_s), ceil(t_end * f_s)) clamped to [0, L], never empty.

    A window that falls entirely outside the features (or rounds to nothing) is widened to the
    nearest single frame, so every utterance gets at least one frame to attend to.
    """
    if num_frames < 1:
        raise ValueError(f"cannot cut a window from {num_frames} frames: the feature sequence is empty")
    if frame_rate_hz <= 0:
        raise ValueError(f"frame_rate_hz must be positive, got {frame_rate_hz}")
    if end_s < start_s:
        raise ValueError(f"utterance ends before it starts ({start_s} > {end_s})")
    # Round away float noise first (0.07 * 100 = 7.000000000000001 must stay frame 7).
    a = math.floor(round(start_s * frame_rate_hz, 6))
    b = math.ceil(round(end_s * frame_rate_hz, 6))
    a = min(max(a, 0), num_frames - 1)
    b = min(max(b, a + 1), num_frames)
    return a, b


def fixed_windows(duration_s: float, window_s: float = 2.0) -> list[tuple[float, float]]:
    """The paper's ablation: windows every `window_s` seconds covering [0, duration_s], blind to utterances."""
    if window_s <= 0:
        raise ValueError(f"window_s must be positive, got {window_s}")
    n = max(1, math.ceil(round(duration_s / window_s, 6)))
    return [(i * window_s, min((i + 1) * window_s, duration_s)) for i in range(n)]


def relative_to_speech(data: np.ndarray, spans: list[tuple[float, float]], frame_rate_hz: float) -> np.ndarray:
    """(L, D) frames minus each channel's mean over the speech frames, those inside the (start_s, end_s) spans
    (Eq. 1's frames; a frame in two spans counts once); over every frame when there is no span.

    What ModelConfig.acoustic_reference "clip" feeds the Q-Formers: a recording's gain, a voice's overall pitch and
    an engine's timbre are one offset for the whole clip and cancel, while a speaker who is louder, higher or faster
    than the rest of the dialogue stays so."""
    data = np.asarray(data, dtype=np.float32)
    speech = np.zeros(data.shape[0], dtype=bool)
    for start_s, end_s in spans:
        a, b = frame_range(start_s, end_s, frame_rate_hz, data.shape[0])
        speech[a:b] = True
    reference = data[speech] if speech.any() else data
    return data - reference.mean(axis=0, dtype=np.float64).astype(np.float32)
