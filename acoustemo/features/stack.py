"""The offline default acoustic features: Whisper-base encoder frames + the prosody stream, one 50 Hz grid.

    F_A = [whisper (512) | prosody (13)]   streams = [("whisper", 512), ("prosody", 13)]

Both encoders already produce L = ceil(seconds * 50) frames on the same 20 ms grid, so stacking is a
concatenation. The streams are kept raw and named: the model LayerNorms and projects each one on its own,
so 512 Whisper dims cannot swamp 13 prosody dims.

The default encodes the last (or only) Whisper window at the clip's own length instead of padding it to
30 s (`pad_last_window=False`): ~10x cheaper on 5-10 s clips, which is what makes the stack run well above
real time on two CPU cores. Pass `pad_last_window=True` for Whisper's training-time padding.
"""

from __future__ import annotations

import numpy as np

from acoustemo.features.base import fit_length, num_frames
from acoustemo.features.prosody import ProsodyEncoder
from acoustemo.features.whisper import WhisperEncoder


class DefaultAcousticStack:
    id = "default"
    version = "1"
    frame_rate_hz = 50.0

    def __init__(self, whisper_size: str = "base", pad_last_window: bool = False, compute_type: str = "int8", threads: int = 0,
                 prosody_precision: str = "float32"):
        self.whisper = WhisperEncoder(size=whisper_size, compute_type=compute_type, threads=threads, pad_last_window=pad_last_window)
        self.prosody = ProsodyEncoder(threads=threads, precision=prosody_precision)
        self.streams = [("whisper", self.whisper.dim), ("prosody", self.prosody.dim)]
        self.dim = sum(w for _, w in self.streams)

    def settings(self) -> dict:
        return {"whisper": {"version": self.whisper.version, **self.whisper.settings()},
                "prosody": {"version": self.prosody.version, **self.prosody.settings()}}

    def encode(self, waveform: np.ndarray) -> np.ndarray:
        """(n,) float32 16 kHz -> (L, 512 + 13) float32."""
        length = num_frames(len(waveform), self.frame_rate_hz)
        parts = [fit_length(self.whisper.encode(waveform), length), fit_length(self.prosody.encode(waveform), length)]
        return np.concatenate(parts, axis=1).astype(np.float32, copy=False)

    def release(self) -> None:
        """Free the Whisper runtime until the next encode (see WhisperEncoder.release)."""
        self.whisper.release()
