"""AcoustEmo: open-vocabulary emotion reasoning with an utterance-aware acoustic Q-Former."""

from acoustemo.data.media import SAMPLE_RATE_HZ
from acoustemo.version import __version__

__all__ = ["SAMPLE_RATE_HZ", "__version__"]
