"""Training-time augmentation of the cached features (data/augment.py): what each augmentation moves, what it
leaves alone, and that its draws repeat per (seed, stage, epoch, clip) and differ across epochs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from acoustemo.data.augment import JITTER_S, FeatureAugment
from acoustemo.errors import ConfigError
from acoustemo.training import TrainConfig

STREAMS = [("whisper", 4), ("prosody", 14)]  # prosody's f0 is column 4, its loudness column 6


def frames(n: int = 50) -> torch.Tensor:
    x = torch.randn(n, 18, generator=torch.Generator().manual_seed(0))
    x[:10, 6] = -5.0  # ten silent frames at the loudness floor (-100 dBFS / 20)
    return x


def test_level_shifts_pitch_and_level_of_the_whole_clip_and_nothing_else():
    aug = FeatureAugment(["level"], seed=3, input_streams=STREAMS)
    x = frames()
    y = aug.frames(x, 50.0, aug.rng(0))
    changed = (y != x).any(0).nonzero().flatten().tolist()
    assert changed == [4, 6]  # f0 and loudness of the prosody stream, never Whisper or the relative channels
    f0_shift, loud_shift = y[:, 4] - x[:, 4], y[10:, 6] - x[10:, 6]
    assert torch.allclose(f0_shift, f0_shift[0].expand_as(f0_shift))  # one offset per clip
    assert 0 < abs(f0_shift[0]) <= 4 / 12  # at most 4 semitones
    assert torch.allclose(loud_shift, loud_shift[0].expand_as(loud_shift)) and 0 < abs(loud_shift[0]) <= 6 / 20
    assert torch.equal(y[:10, 6], x[:10, 6])  # silence stays at the floor
    assert torch.equal(x, frames())  # the cached features are not touched


def test_draws_repeat_per_epoch_and_clip_and_differ_across_them():
    aug = FeatureAugment(["level"], seed=3, input_streams=STREAMS)
    x = frames()
    first = aug.frames(x, 50.0, aug.rng(0))
    assert torch.equal(first, aug.frames(x, 50.0, aug.rng(0)))
    assert not torch.equal(first, aug.frames(x, 50.0, aug.rng(1)))  # another clip
    aug.set_epoch(1, stage=1)
    assert not torch.equal(first, aug.frames(x, 50.0, aug.rng(0)))  # another epoch
    aug.set_epoch(0, stage=0)
    assert torch.equal(first, aug.frames(x, 50.0, aug.rng(0)))  # a resumed run draws the same


def test_jitter_moves_each_window_edge_within_its_bound_and_the_clip():
    aug = FeatureAugment(["jitter"], seed=0, input_streams=STREAMS)
    times = [(0.05, 1.0), (1.4, 2.6), (3.0, 3.95)]
    moved = aug.windows(times, 4.0, aug.rng(0))
    assert len(moved) == 3 and moved != times
    edges = np.abs(np.array(moved) - np.array(times))
    assert edges.max() <= JITTER_S + 1e-9 and all(0 <= a < b <= 4.0 for a, b in moved)
    assert aug.frames(frames(), 50.0, aug.rng(0)) is not None and torch.equal(aug.frames(frames(), 50.0, aug.rng(0)), frames())
    assert aug.windows(None, 4.0, aug.rng(0)) is None


def test_the_dataset_moves_the_frames_and_keeps_the_prompt():
    from acoustemo.config import ModelConfig
    from acoustemo.data.dataset import AcoustEmoDataset
    from acoustemo.model.acoustemo import AcoustEmoModel
    from conftest import CLIPS, features_for

    cfg = ModelConfig.preset("debug")
    load, _ = features_for(CLIPS, cfg)
    tok = AcoustEmoModel(cfg).tokenizer
    plain = AcoustEmoDataset(CLIPS, load, None, tok, cfg)
    aug = AcoustEmoDataset(CLIPS, load, None, tok, cfg, augment=FeatureAugment(["level", "jitter"], 0, cfg.input_streams))
    a, b = plain[0], aug[0]
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
    assert len(a["windows"]) == len(b["windows"]) == 3
    assert any(wa.shape != wb.shape for wa, wb in zip(a["windows"], b["windows"]))  # the edges moved
    assert not torch.equal(a["audio"], b["audio"])  # the debug preset's prosody stream (3 channels) shifted


def test_masks_replace_short_spans_by_the_clips_mean_frame():
    aug = FeatureAugment(["mask"], seed=1, input_streams=STREAMS)
    x = frames(200)
    y = aug.frames(x, 50.0, aug.rng(0))
    masked = (y != x).any(1).nonzero().flatten()
    assert 1 <= len(masked) <= 2 * 10  # two spans of at most 0.2 s at 50 Hz
    assert torch.allclose(y[masked], x.mean(0).expand(len(masked), -1))
    assert torch.equal(y[(y == x).all(1)], x[(y == x).all(1)])


def test_unknown_or_impossible_augmentations_are_refused():
    with pytest.raises(ConfigError, match="augment=\\['pitch'\\]"):
        TrainConfig(augment=["pitch"])
    with pytest.raises(ConfigError, match="distinct"):
        TrainConfig(augment=["level", "level"])
    assert TrainConfig(augment="jitter").augment == ["jitter"] and TrainConfig().augment == []
    with pytest.raises(ConfigError, match="prosody stream"):
        FeatureAugment(["level"], 0, [("whisper", 384)])
