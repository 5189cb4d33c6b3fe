"""openSMILE low-level descriptors at 100 Hz: eGeMAPSv02 (25 LLDs) or ComParE_2016 (65 LLDs).

OPTIONAL and never a default: `pip install acoustemo[opensmile]` (opensmile==2.6.0). openSMILE is distributed
by audEERING under a research / non-commercial licence; check it covers your use before enabling this encoder.
"""

from __future__ import annotations

import numpy as np

from acoustemo.data.media import SAMPLE_RATE_HZ
from acoustemo.errors import EncoderError
from acoustemo.features.base import fit_length, num_frames

_SETS = {"egemaps": ("eGeMAPSv02", 25), "compare": ("ComParE_2016", 65)}


class OpenSmileEncoder:
    version = "1"
    frame_rate_hz = 100.0

    def __init__(self, feature_set: str = "egemaps"):
        if feature_set not in _SETS:
            raise EncoderError(f"unknown openSMILE feature set '{feature_set}'; choose one of {sorted(_SETS)}")
        self.feature_set = feature_set
        self.id = f"opensmile-{feature_set}"
        self.dim = _SETS[feature_set][1]
        self.streams = [(self.id, self.dim)]
        self._smile = None

    def settings(self) -> dict:
        return {"feature_set": _SETS[self.feature_set][0], "level": "LowLevelDescriptors"}

    def _load(self):
        if self._smile is None:
            try:
                import opensmile
            except ImportError:
                raise EncoderError(
                    f"encoder '{self.id}' needs openSMILE: `pip install acoustemo[opensmile]` (opensmile==2.6.0). "
                    "Its audEERING licence allows research / non-commercial use only; the offline default 'default' needs nothing extra"
                ) from None
            self._smile = opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, _SETS[self.feature_set][0]),
                                          feature_level=opensmile.FeatureLevel.LowLevelDescriptors)
        return self._smile

    def encode(self, waveform: np.ndarray) -> np.ndarray:
        """(n,) float32 16 kHz -> (L, 25 | 65) at 100 Hz (openSMILE's 10 ms hop; edge frames repeated to reach L)."""
        smile = self._load()
        length = num_frames(len(waveform), self.frame_rate_hz)
        lld = smile.process_signal(np.asarray(waveform, dtype=np.float32), SAMPLE_RATE_HZ).to_numpy(dtype=np.float32)
        return fit_length(np.nan_to_num(lld), length)
