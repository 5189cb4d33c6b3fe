"""Utterance windows over frame-level features: Eq. (1) of the paper and the fixed-window ablation."""

from __future__ import annotations

import math


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
