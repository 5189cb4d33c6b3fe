"""AcoustEmo: open-vocabulary emotion reasoning with an utterance-aware acoustic Q-Former."""

__version__ = "0.1.0"

SAMPLE_RATE_HZ = 16_000
