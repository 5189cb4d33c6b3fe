"""Any Hugging Face audio encoder from a local folder: `hf:<path>` (wav2vec2, HuBERT, WavLM, data2vec-audio,
Whisper encoder, emotion2vec converted to a data2vec-audio folder, ...).

    enc = get_acoustic_encoder("hf:/models/wavlm-base-plus", layer=6)

The frame rate is read from the model, not assumed: 16000 / prod(conv strides) for the wav2vec2 family
(320 -> 50 Hz), mel hop x conv stride for Whisper (160 x 2 -> 50 Hz). Nothing is fetched from a hub.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from acoustemo.data.media import SAMPLE_RATE_HZ
from acoustemo.errors import EncoderError
from acoustemo.features.base import fit_length, num_frames


def folder_fingerprint(path: str | Path) -> str:
    """Cheap identity of a model folder: config.json content + names, sizes and mtimes of weight files."""
    path = Path(path)
    h = hashlib.sha256((path / "config.json").read_bytes())
    for f in sorted(path.iterdir()):
        if f.suffix in (".safetensors", ".bin", ".pt", ".pth"):
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


class HFAudioEncoder:
    """Hidden states of a local HF audio model: (n,) 16 kHz -> (L, hidden) at the model's own frame rate."""

    version = "1"

    def __init__(self, path: str, layer: int = -1, device: str = "cpu"):
        from transformers import AutoConfig

        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise EncoderError(f"'{path}' is not a local Hugging Face model folder (no config.json); "
                               "save one with model.save_pretrained(folder) (+ its feature extractor); hub names are not fetched")
        self.path, self.layer, self.device = str(folder.resolve()), int(layer), device
        self.config = AutoConfig.from_pretrained(self.path)
        self.is_whisper = self.config.model_type == "whisper"
        self.frame_rate_hz = _frame_rate_hz(self.config)
        self.dim = int(getattr(self.config, "d_model", None) or self.config.hidden_size)
        self.id = f"hf:{self.path}"
        self.streams = [("hf", self.dim)]
        self._model = self._extractor = None

    def settings(self) -> dict:
        return {"layer": self.layer, "model_type": self.config.model_type, "weights": folder_fingerprint(self.path)}

    def _load(self):
        if self._model is None:
            from transformers import AutoFeatureExtractor, AutoModel

            model = AutoModel.from_pretrained(self.path)
            self._model = (model.get_encoder() if self.is_whisper else model).eval().to(self.device)
            try:
                self._extractor = AutoFeatureExtractor.from_pretrained(self.path)
            except (OSError, ValueError):
                self._extractor = self._default_extractor()
            n_layers = self.config.encoder_layers if self.is_whisper else self.config.num_hidden_layers
            if not -(n_layers + 1) <= self.layer <= n_layers:
                raise EncoderError(f"layer {self.layer} does not exist in {self.path} (hidden states 0..{n_layers})")
        return self._model

    def _default_extractor(self):
        # A folder saved without preprocessor_config.json: use the family's standard front end.
        if self.is_whisper:
            from transformers import WhisperFeatureExtractor

            return WhisperFeatureExtractor(feature_size=self.config.num_mel_bins)
        from transformers import Wav2Vec2FeatureExtractor

        return Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE_HZ, do_normalize=True)

    def encode(self, waveform: np.ndarray) -> np.ndarray:
        import torch

        model = self._load()
        waveform = np.asarray(waveform, dtype=np.float32)
        length = num_frames(len(waveform), self.frame_rate_hz)
        chunks = self._whisper_windows(waveform) if self.is_whisper else [self._pad_for_convs(waveform)]
        out = []
        for chunk in chunks:
            kw = {"return_tensors": "pt", "sampling_rate": SAMPLE_RATE_HZ}
            inputs = self._extractor(chunk, **kw)
            key = "input_features" if self.is_whisper else "input_values"
            with torch.inference_mode():
                hidden = model(inputs[key].to(self.device), output_hidden_states=True).hidden_states[self.layer]
            out.append(hidden[0].float().cpu().numpy())
        return fit_length(np.concatenate(out), length)

    def _pad_for_convs(self, waveform: np.ndarray) -> np.ndarray:
        """Zero-pad the end by the conv stack's receptive field, so the model yields >= ceil(n * rate / sr) frames."""
        field = 1
        for k, s in zip(reversed(self.config.conv_kernel), reversed(self.config.conv_stride)):
            field = (field - 1) * s + k
        return np.pad(waveform, (0, field))

    def _whisper_windows(self, waveform: np.ndarray) -> list[np.ndarray]:
        # HF's Whisper encoder only accepts full windows (max_source_positions frames): pad and cut.
        size = int(round(self.config.max_source_positions / self.frame_rate_hz * SAMPLE_RATE_HZ))
        chunks = [waveform[i : i + size] for i in range(0, max(len(waveform), 1), size)]
        return [np.pad(c, (0, size - len(c))) for c in chunks]


def _frame_rate_hz(config) -> float:
    if config.model_type == "whisper":
        return SAMPLE_RATE_HZ / (160 * 2)  # mel hop 10 ms, then the encoder's stride-2 conv
    strides = getattr(config, "conv_stride", None)
    if not strides:
        raise EncoderError(f"cannot tell the frame rate of model_type '{config.model_type}' (no conv_stride in its config); "
                           "supported: wav2vec2, hubert, wavlm, data2vec-audio, unispeech(-sat), sew, whisper")
    return SAMPLE_RATE_HZ / math.prod(strides)


def imagebind_audio(**options):
    """ImageBind is not bundled: its code and weights are not on PyPI in a form that installs offline."""
    raise EncoderError(
        "ImageBind audio features are not bundled (no offline PyPI package carries its code or weights). "
        "To use it: pip install git+https://github.com/facebookresearch/ImageBind (CC-BY-NC licence), download "
        "imagebind_huge.pth, extract its audio-encoder frames yourself and save them with acoustemo.features.cache.save_features; "
        "this version has no built-in ImageBind loader. Offline alternatives: 'default', or 'hf:<local folder>'"
    )

