"""The offline default acoustic features: Whisper-base encoder frames + the prosody stream, one 50 Hz grid.

    F_A = [whisper (512) | prosody (14)]   streams = [("whisper", 512), ("prosody", 14)]

Both encoders already produce L = ceil(seconds * 50) frames on the same 20 ms grid, so stacking is a
concatenation. The streams are kept raw and named: the model LayerNorms and projects each one on its own,
so 512 Whisper dims cannot swamp 14 prosody dims.

The default encodes the last (or only) Whisper window at the clip's own length instead of padding it to
30 s (`pad_last_window=False`): ~10x cheaper on 5-10 s clips, which is what makes the stack run well above
real time on two CPU cores. Pass `pad_last_window=True` for Whisper's training-time padding.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from acoustemo.features.base import WHISPER_COMPUTE_TYPE, fit_length, num_frames
from acoustemo.features.prosody import ProsodyEncoder, loudness_db, prosody_channels
from acoustemo.features.whisper import WhisperEncoder


class DefaultAcousticStack:
    id = "default"
    version = "1"
    frame_rate_hz = 50.0

    def __init__(self, whisper_size: str = "base", pad_last_window: bool = False, compute_type: str = WHISPER_COMPUTE_TYPE, threads: int = 0,
                 prosody_precision: str = "float32"):
        # With 2+ threads the two encoders run at the same time on half of them each (see whisper_and_pitch); Whisper's share
        # is fixed when its runtime loads. threads=0: torch's thread count.
        total = threads or _torch_threads()
        self.concurrent = total >= 2
        self.crepe_threads = max(1, total - total // 2)
        self.whisper = WhisperEncoder(size=whisper_size, compute_type=compute_type, pad_last_window=pad_last_window,
                                      threads=total // 2 if self.concurrent else threads)
        self.prosody = ProsodyEncoder(threads=threads, precision=prosody_precision)
        self.streams = [("whisper", self.whisper.dim), ("prosody", self.prosody.dim)]
        self.dim = sum(w for _, w in self.streams)

    def settings(self) -> dict:
        return {"whisper": {"version": self.whisper.version, **self.whisper.settings()},
                "prosody": {"version": self.prosody.version, **self.prosody.settings()}}

    def encode(self, waveform: np.ndarray) -> np.ndarray:
        """(n,) float32 16 kHz -> (L, 512 + 14) float32."""
        waveform = np.asarray(waveform, dtype=np.float32)
        length = num_frames(len(waveform), self.frame_rate_hz)
        whisper, (f0_hz, periodicity) = self.whisper_and_pitch(waveform, waveform, length)
        prosody = prosody_channels(f0_hz, periodicity, loudness_db(waveform, length))  # = ProsodyEncoder.encode
        parts = [fit_length(whisper, length), fit_length(prosody, length)]
        return np.concatenate(parts, axis=1).astype(np.float32, copy=False)

    def whisper_and_pitch(self, whisper_audio: np.ndarray, pitch_audio: np.ndarray,
                          pitch_frames: int) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """Whisper frames of `whisper_audio` and CREPE's (F0, periodicity) for `pitch_frames` frames of
        `pitch_audio` (the same audio, or in acoustemo.features.stream a chunk with its margins).

        With 2+ threads, Whisper (CTranslate2, its own thread pool) runs in a worker thread while CREPE's
        convolutions run in this one on torch threads of their own. Why: on 2 cores Whisper-base gains little
        from its second thread (1.26 -> 0.96 s for 30 s of audio on an AVX2 EPYC), so one core each finishes
        both sooner than both cores on one encoder after the other (BENCHMARKS.md, issue #15). Both runtimes
        release the GIL. The features are those of the encoders one after the other: Whisper's float32 frames
        move by ~2e-4 with its thread count (summation order; bit-identical at the same count), CREPE's
        convolutions do not depend on it (ProsodyEncoder.crepe_hidden), and CREPE's classifier, which does, runs after them at this thread's own count, as before
        (tests/test_features.py).
        """
        if not self.concurrent:
            return self.whisper.encode(whisper_audio), self.prosody.pitch(pitch_audio, pitch_frames)
        import torch

        with ThreadPoolExecutor(1, thread_name_prefix="whisper") as pool:
            whisper = pool.submit(self.whisper.encode, whisper_audio)
            threads = torch.get_num_threads()  # per thread in torch's OpenMP build; restored either way
            torch.set_num_threads(self.crepe_threads)  # so torch's threads and Whisper's do not fight for cores
            try:
                hidden = self.prosody.crepe_hidden(pitch_audio, pitch_frames)
            finally:
                torch.set_num_threads(threads)
            pitch = self.prosody.pitch(pitch_audio, pitch_frames, hidden)
            return whisper.result(), pitch

    def release(self) -> None:
        """Free the Whisper runtime until the next encode (see WhisperEncoder.release)."""
        self.whisper.release()


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()
