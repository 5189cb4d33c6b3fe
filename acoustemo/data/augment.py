"""Training-time augmentation of the cached acoustic features (TrainConfig.augment; beyond the paper, off by default).

The features are extracted once and cached, so the augmentations act on frames, not on audio, and cost nothing:

  "level"   per clip, one random offset of the prosody stream's absolute pitch (channel f0, +-LEVEL_SEMITONES) and
            level (channel loudness, +-LEVEL_DB on every frame above the silence floor), the same for every speaker
            of the clip: another voice register and another recording gain. The channels that read change against
            the speaker's own recent frames (deltas, local, modulation, steady, voiced) are unchanged, as they would
            be. What it teaches: a cue is a departure from how the clip sounds, not an absolute pitch or level,
            which move with the voice, the microphone and the speech engine (BENCHMARKS.md #17, the Flite test).
  "jitter"  each utterance window's edges move by up to +-JITTER_S, independently: subtitle times are rarely exact.
            The prompt keeps the stated times; only the frames the Q-Former reads move.
  "mask"    SpecAugment's time masks: MASKS spans of up to MASK_S each take the clip's mean frame, so no model can
            lean on a single frame (a ~1 s cue outlives them).

Draws are seeded by (the run's seed, the stage, the epoch, the clip's index): a resumed run sees the same frames, and
every epoch sees other ones. Validation, test and prediction never augment.
"""

from __future__ import annotations

import numpy as np
import torch

from acoustemo.errors import ConfigError

AUGMENTATIONS = ("level", "jitter", "mask")
LEVEL_SEMITONES = 4.0
LEVEL_DB = 6.0
JITTER_S = 0.15
MASKS, MASK_S = 2, 0.2
_F0, _LOUDNESS = 0, 2  # the prosody stream's absolute channels (features/prosody.py CHANNELS)
_SILENCE = -100.0 / 20  # the loudness channel's floor (dBFS / 20)


class FeatureAugment:
    """Augmentations `names` (AUGMENTATIONS) of one run, for input frames laid out as `input_streams`."""

    def __init__(self, names: list[str], seed: int, input_streams: list[tuple[str, int]]):
        unknown = [n for n in names if n not in AUGMENTATIONS]
        if unknown:
            raise ConfigError(f"augment {unknown} unknown; choose from {', '.join(AUGMENTATIONS)}")
        self.names, self.seed = list(names), int(seed)
        self.prosody = None
        if "level" in names:
            start = 0
            for name, width in input_streams:
                if name == "prosody":
                    self.prosody = start
                    break
                start += width
            if self.prosody is None:
                raise ConfigError(f"augment 'level' shifts the prosody stream's pitch and loudness, but the features "
                                  f"have the streams {[n for n, _ in input_streams]}; drop 'level' from augment or "
                                  f"use an encoder with a prosody stream (the default)")
        self.stage, self.epoch = 0, 0

    def set_epoch(self, epoch: int, stage: int) -> None:
        self.stage, self.epoch = int(stage), int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.stage, self.epoch, int(index)])

    def frames(self, audio: torch.Tensor, rate_hz: float, rng: np.random.Generator) -> torch.Tensor:
        """(L, D) input frames at `rate_hz` with this clip's level offsets and time masks (a copy; the cached
        features stay as they are)."""
        if "level" not in self.names and "mask" not in self.names:
            return audio
        audio = audio.clone()
        if "level" in self.names:
            octaves, decibels = rng.uniform(-1, 1, size=2) * (LEVEL_SEMITONES / 12, LEVEL_DB / 20)
            audio[:, self.prosody + _F0] += float(octaves)
            loud = audio[:, self.prosody + _LOUDNESS]
            audio[:, self.prosody + _LOUDNESS] = torch.where(loud > _SILENCE + 1e-3, loud + float(decibels), loud)
        if "mask" in self.names:
            mean, longest = audio.mean(0), max(1, round(MASK_S * rate_hz))
            for _ in range(MASKS):
                width = int(rng.integers(1, longest + 1))
                start = int(rng.integers(0, max(1, len(audio) - width + 1)))
                audio[start : start + width] = mean
        return audio

    def windows(self, times: list[tuple[float, float]] | None, duration_s: float,
                rng: np.random.Generator) -> list[tuple[float, float]] | None:
        """The utterance windows' times, each edge moved by up to JITTER_S within [0, duration_s]."""
        if "jitter" not in self.names or not times:
            return times
        moved = []
        for (start, end), (da, db) in zip(times, rng.uniform(-JITTER_S, JITTER_S, size=(len(times), 2))):
            a, b = min(max(start + da, 0.0), duration_s), min(max(end + db, 0.0), duration_s)
            moved.append((a, b) if b > a else (start, end))
        return moved
