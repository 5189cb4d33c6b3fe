"""The encoder registries: names -> encoder classes, imported only when an encoder is asked for.

    enc = get_acoustic_encoder("default")          # Whisper-base 512-d + prosody, 50 Hz
    enc = get_acoustic_encoder("hf:/models/wavlm-base-plus", layer=6)
    vis = get_visual_encoder("default", fps=2.0)    # face detection + expression features
"""

from __future__ import annotations

from acoustemo.errors import EncoderError
from acoustemo.features.base import WHISPER_COMPUTE_TYPE, AcousticEncoder, VisualEncoder

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
