"""AcoustEmo: open-vocabulary emotion reasoning with an utterance-aware acoustic Q-Former.

    import acoustemo

    model = acoustemo.load_model()                  # the shipped checkpoint, or a model folder
    result = model.predict("clip.wav", subtitles="clip.srt", speaker="Anna")
    print(result.emotions, result.explanation)

The API (acoustemo.api) loads on first use, so `import acoustemo` and its light modules (acoustemo.data.media,
acoustemo.errors, ...) do not load torch.
"""

import importlib

from acoustemo.data.media import SAMPLE_RATE_HZ
from acoustemo.version import __version__

# name -> the module that defines it, imported when the name is first read
_LAZY = {
    "load_model": "acoustemo.api", "Model": "acoustemo.api", "predict_manifest": "acoustemo.api",
    "evaluate_predictions": "acoustemo.api", "PredictReport": "acoustemo.api",
    "Prediction": "acoustemo.predictor", "Timeline": "acoustemo.timeline",
}

__all__ = ["SAMPLE_RATE_HZ", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'acoustemo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
