"""Frozen encoders behind one small interface, and the registries that name them.

An acoustic encoder maps a 16 kHz mono waveform to frame features F_A (L, dim) at a fixed frame rate,
with L = ceil(seconds * frame_rate_hz), so cutting an utterance out of F_A is arithmetic (Eq. (1)).
A visual encoder maps RGB frames sampled at its frame rate to (T, dim).

    enc = get_acoustic_encoder("default")          # Whisper-base 512-d + prosody, 50 Hz
    enc = get_acoustic_encoder("hf:/models/wavlm-base-plus", layer=6)
    vis = get_visual_encoder("default", fps=2.0)    # face detection + expression features
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from acoustemo.data.media import SAMPLE_RATE_HZ
from acoustemo.errors import EncoderError


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
WHISPER_BASED = ("default", "whisper-base", "whisper-tiny.en")


def default_acoustic_options(name: str) -> dict:
    """The constructor options a training run records for its acoustic encoder (TrainConfig.acoustic_options), so
    that prediction rebuilds the features it was trained on even after a release changes a default."""
    return {"compute_type": WHISPER_COMPUTE_TYPE} if name in WHISPER_BASED else {}


# name -> (module, class, description). Modules are imported only when the encoder is asked for.
ACOUSTIC_ENCODERS = {
    "default": ("acoustemo.features.stack", "DefaultAcousticStack", "Whisper-base encoder 512-d + prosody stream, 50 Hz (offline)"),
    "whisper-base": ("acoustemo.features.whisper", "WhisperEncoder", "Whisper base encoder, 512-d, 50 Hz (offline)"),
    "whisper-tiny.en": ("acoustemo.features.whisper", "WhisperEncoder", "Whisper tiny.en encoder, 384-d, 50 Hz (offline)"),
    "prosody": ("acoustemo.features.prosody", "ProsodyEncoder", "CREPE-tiny F0/periodicity + loudness + local-change channels, 50 Hz (offline)"),
    "opensmile-egemaps": ("acoustemo.features.opensmile", "OpenSmileEncoder", "eGeMAPSv02 LLDs, 100 Hz (extra acoustemo[opensmile], non-commercial licence)"),
    "opensmile-compare": ("acoustemo.features.opensmile", "OpenSmileEncoder", "ComParE_2016 LLDs, 100 Hz (extra acoustemo[opensmile], non-commercial licence)"),
    "imagebind": ("acoustemo.features.hf", "imagebind_audio", "ImageBind audio (not bundled: needs the imagebind package and a checkpoint)"),
}
VISUAL_ENCODERS = {
    "default": ("acoustemo.features.visual", "FaceExpressionEncoder", "MediaPipe face detection + FER expression CNN, 2 fps (offline)"),
}
_HF_HINT = "or 'hf:<path>' for a Hugging Face model saved in a local folder (e.g. hf:/models/wavlm-base-plus)"


def get_acoustic_encoder(name: str, **options) -> AcousticEncoder:
    """An acoustic encoder by registry name or `hf:<local folder>`; options go to its constructor."""
    if name.startswith("hf:"):
        from acoustemo.features.hf import HFAudioEncoder

        return HFAudioEncoder(name[3:], **options)
    return _build(name, ACOUSTIC_ENCODERS, "acoustic", options)


def get_visual_encoder(name: str, **options) -> VisualEncoder:
    """A visual encoder by registry name or `hf:<local folder>`; options go to its constructor."""
    if name.startswith("hf:"):
        from acoustemo.features.visual import HFImageEncoder

        return HFImageEncoder(name[3:], **options)
    return _build(name, VISUAL_ENCODERS, "visual", options)


def _build(name: str, registry: dict, kind: str, options: dict):
    if name not in registry:
        known = "; ".join(f"'{n}' ({desc})" for n, (_, _, desc) in registry.items())
        raise EncoderError(f"unknown {kind} encoder '{name}'; known: {known}; {_HF_HINT}")
    import importlib

    module, attr, _ = registry[name]
    factory = getattr(importlib.import_module(module), attr)
    if attr == "WhisperEncoder":
        options = {"size": name.removeprefix("whisper-"), **options}
    if attr == "OpenSmileEncoder":
        options = {"feature_set": name.removeprefix("opensmile-"), **options}
    _check_options(factory, options, f"{kind} encoder '{name}'")
    return factory(**options)


def _check_options(factory, options: dict, what: str) -> None:
    import inspect

    params = inspect.signature(factory).parameters
    unknown = sorted(set(options) - set(params))
    if unknown and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        allowed = [n for n in params if n != "self"]
        raise EncoderError(f"{what} does not take the option(s) {unknown}; it takes {allowed}")
