"""The linear probe (acoustemo/probe.py): its pooled statistics on hand-worked frames, and on a synthetic
two-speaker corpus whose label is a short spike in ONE of the target's utterances (with the same spike planted
on the other speaker as a distractor), utterance pooling reads the label and whole-clip pooling cannot."""

from __future__ import annotations

import numpy as np
import pytest

from acoustemo.data.segments import Clip, Utterance
from acoustemo.errors import ConfigError
from acoustemo.features.base import Features
from acoustemo.probe import LinearProbe, clip_vector, stream_columns, window_statistics

RATE = 10.0  # frames per second


def test_window_statistics_hand_worked():
    x = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [4.0, 10.0]])
    s = window_statistics(x)
    assert s.shape == (7, 2)
    assert s[0].tolist() == [2.5, 2.5]  # mean
    assert s[1].tolist() == pytest.approx([np.sqrt(1.25), np.sqrt(18.75)])  # population std
    assert s[2].tolist() == [1.0, 0.0] and s[3].tolist() == [4.0, 10.0]  # min, max
    assert s[5].tolist() == [2.5, 0.0]  # median


def test_clip_vector_pools_the_targets_windows_and_the_clip():
    data = np.zeros((40, 1))
    data[5:10, 0] = 1.0  # inside Ann's first utterance (0.0-1.0 s -> frames 0..9)
    clip = Clip("c", "c.wav", [Utterance(0.0, 1.0, "Ann"), Utterance(1.0, 2.0, "Bob"), Utterance(2.0, 3.0, "Ann")],
                target_speaker="Ann")
    v = clip_vector(data, RATE, clip, "utterance").reshape(3, 7)  # (target mean, target max, whole clip) x stats
    assert v[0, 0] == pytest.approx(0.25)  # mean over Ann's windows of the window means (0.5 and 0.0)
    assert v[1, 0] == pytest.approx(0.5) and v[1, 3] == 1.0  # their max: window 1's mean, its max 1.0
    assert v[2, 0] == pytest.approx(5 / 40)  # the whole clip
    assert clip_vector(data, RATE, clip, "global").tolist() == v[2].tolist()
    cols = stream_columns([("a", 2), ("b", 3)], "global", "b")
    assert cols.tolist() == [c + 5 * k for k in range(7) for c in (2, 3, 4)]


def _corpus(n: int, seed: int) -> tuple[list[Clip], dict[str, Features]]:
    """Clips of four 1 s utterances (Ann, Bob, Ann, Bob), each with one short spike: in one of Ann's utterances
    (label 'angry') or, as a distractor, in one of Bob's (label 'calm'). Only the speaker tells them apart."""
    rng = np.random.default_rng(seed)
    clips, feats = [], {}
    for i in range(n):
        data = rng.normal(0, 1, (40, 3))
        angry = i % 2 == 0
        a = rng.choice([0, 20] if angry else [10, 30])
        data[a + 3 : a + 6, 0] += 6.0
        utts = [Utterance(k, k + 1.0, "Ann" if k % 2 == 0 else "Bob") for k in range(4)]
        clip = Clip(f"c{i}", f"c{i}.wav", utts, target_speaker="Ann", labels=["angry" if angry else "calm"])
        clips.append(clip)
        feats[clip.id] = Features(data.astype(np.float32), RATE, "synthetic", [("x", 3)], 4.0)
    return clips, feats


def test_utterance_pooling_reads_a_local_cue_that_global_pooling_confuses_with_the_distractor():
    train, f1 = _corpus(80, 0)
    val, f2 = _corpus(30, 1)
    test, f3 = _corpus(40, 2)
    feats = {**f1, **f2, **f3}
    load = lambda clip: feats[clip.id]  # noqa: E731
    gold = {c.id: c.labels for c in test}

    def exact(probe):
        pred = probe.predict(test, load)
        return sum(pred[k] == gold[k] for k in gold) / len(gold)

    utt = LinearProbe.fit(train, val, load, pooling="utterance")
    glob = LinearProbe.fit(train, val, load, pooling="global")
    assert exact(utt) >= 0.95
    assert exact(glob) <= 0.7  # one spike per clip either way: without the windows it is a guess
    assert {c["C"] for c in utt.choices} == {0.01, 0.1, 1.0} and utt.val_avg >= 0.95
    with pytest.raises(ConfigError, match="pooling 'max'"):
        LinearProbe.fit(train, val, load, pooling="max")
