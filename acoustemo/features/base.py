"""Frozen encoders behind one small interface (the registries that name them: acoustemo.features.registry).

An acoustic encoder maps a 16 kHz mono waveform to frame features F_A (L, dim) at a fixed frame rate,
with L = ceil(seconds * frame_rate_hz), so cutting an utterance out of F_A is arithmetic (Eq. (1)).
A visual encoder maps RGB frames sampled at its frame rate to (T, dim).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from acoustemo.data.media import SAMPLE_RATE_HZ


@dataclass
class Features:
    data: np.ndarray  # (L, dim) float32
    frame_rate_hz: float  # frames per second of `data`
    encoder_id: str  # e.g. "default", "whisper-base", "hf:<path>"
    streams: list[tuple[str, int]]  # (name, width) of concatenated streams; widths sum to dim
    duration_s: float  # media duration the features cover
    metadata: dict = field(default_factory=dict)  # encoder version + settings + media hash, as stored in the cache

    def __post_init__(self):
        if self.data.ndim != 2:
            raise ValueError(f"features must be (L, dim), got shape {self.data.shape}")
        if sum(w for _, w in self.streams) != self.data.shape[1]:
            raise ValueError(f"stream widths {self.streams} do not sum to dim {self.data.shape[1]}")

    @property
    def dim(self) -> int:
        return int(self.data.shape[1])

    def stream(self, name: str) -> np.ndarray:
        """The columns of one stream, (L, width)."""
        start = 0
        for stream_name, width in self.streams:
            if stream_name == name:
                return self.data[:, start : start + width]
            start += width
        raise KeyError(f"no stream '{name}' in {[n for n, _ in self.streams]}")


@runtime_checkable
class AcousticEncoder(Protocol):
    id: str
    version: str
    frame_rate_hz: float
    dim: int
    streams: list[tuple[str, int]]

    def settings(self) -> dict:
        """Everything that changes the output; part of the cache key."""

    def encode(self, waveform: np.ndarray) -> np.ndarray:
        """(n,) float32 16 kHz -> (L, dim) float32, L = ceil(n / 16000 * frame_rate_hz)."""

    # Optional: `release()` frees runtime resources between encodes (prediction calls it after each clip).


@runtime_checkable
class VisualEncoder(Protocol):
    id: str
    version: str
    frame_rate_hz: float
    dim: int
    streams: list[tuple[str, int]]

    def settings(self) -> dict: ...

    def encode_frames(self, frames: np.ndarray) -> np.ndarray:
        """(T, H, W, 3) uint8 RGB sampled at frame_rate_hz -> (T, dim) float32."""


def num_frames(num_samples: int, frame_rate_hz: float, sample_rate_hz: int = SAMPLE_RATE_HZ) -> int:
    """L = ceil(seconds * frame_rate_hz), rounding away float noise (at least 1 frame)."""
    return max(1, math.ceil(round(num_samples / sample_rate_hz * frame_rate_hz, 6)))


def fit_length(x: np.ndarray, length: int) -> np.ndarray:
    """Cut or edge-pad (repeat the last frame) a (T, d) array to exactly `length` frames."""
    if len(x) >= length:
        return x[:length]
    if len(x) == 0:
        return np.zeros((length, x.shape[1]), x.dtype)
    return np.concatenate([x, np.repeat(x[-1:], length - len(x), axis=0)])


def encoder_key(encoder) -> str:
    """A short hash of (id, version, settings): a different value is a different feature set."""
    blob = json.dumps({"id": encoder.id, "version": encoder.version, "settings": encoder.settings()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# CTranslate2 compute type of the Whisper-based encoders (WhisperEncoder says why float32, not int8).
WHISPER_COMPUTE_TYPE = "float32"
