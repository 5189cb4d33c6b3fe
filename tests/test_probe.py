"""The linear probe (acoustemo/probe.py): its pooled statistics and fallbacks on hand-worked frames; its answers
(every label at 0.5 or more, else the most probable); C and streams chosen on the validation split where val and
train disagree on the right choice; and on a synthetic two-speaker corpus whose label is a short spike in ONE of
the target's utterances (with the same spike planted on the other speaker as a distractor), utterance pooling
reads the label and whole-clip pooling cannot."""

from __future__ import annotations

import numpy as np
import pytest

from acoustemo.data.segments import Clip, Utterance
from acoustemo.errors import ConfigError
from acoustemo.features.base import Features
from acoustemo.probe import LinearProbe, clip_vector, stream_columns, window_statistics

RATE = 10.0  # frames per second


def test_window_statistics_hand_worked():
    # channel 0: 1 2 3 4; channel 1: 0 0 0 10. Percentiles interpolate linearly between sorted values at rank
    # q/100 * (n - 1): p10 at rank 0.3, p50 at 1.5, p90 at 2.7
    x = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [4.0, 10.0]])
    s = window_statistics(x)
    assert s.shape == (7, 2)
    assert s[0].tolist() == [2.5, 2.5]  # mean
    # population std: sqrt((2.25 + 0.25 + 0.25 + 2.25) / 4) = sqrt(1.25); sqrt((3 * 6.25 + 56.25) / 4) = sqrt(18.75)
    assert s[1].tolist() == pytest.approx([1.118033988749895, 4.330127018922194], abs=1e-12)
    assert s[2].tolist() == [1.0, 0.0] and s[3].tolist() == [4.0, 10.0]  # min, max
    assert s[4].tolist() == pytest.approx([1.3, 0.0], abs=1e-12)  # p10: 1 + 0.3 * (2 - 1); 0
    assert s[5].tolist() == [2.5, 0.0]  # p50
    assert s[6].tolist() == pytest.approx([3.7, 7.0], abs=1e-12)  # p90: 3 + 0.7 * (4 - 3); 0 + 0.7 * (10 - 0)


def test_clip_vector_falls_back_to_every_utterance_the_whole_clip_and_the_last_frame():
    data = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0], [6.0], [7.0], [8.0], [9.0]])  # 1 s at 10 Hz
    whole = [4.5, 2.8722813232690143, 0.0, 9.0, 0.9, 4.5, 8.1]  # std: sqrt(82.5 / 10); p10 rank 0.9, p90 8.1
    # no utterance of the target: every utterance is a window (frames 0-1 and 8-9)
    clip = Clip("c", "c.wav", [Utterance(0.0, 0.2, "Bob"), Utterance(0.8, 1.0, "Cid")], target_speaker="Ann")
    v = clip_vector(data, RATE, clip, "utterance").reshape(3, 7)
    assert v[0].tolist() == pytest.approx([4.5, 0.5, 4.0, 5.0, 4.1, 4.5, 4.9])  # mean over windows (0, 1), (8, 9)
    assert v[1].tolist() == pytest.approx([8.5, 0.5, 8.0, 9.0, 8.1, 8.5, 8.9])  # their max
    assert v[2].tolist() == pytest.approx(whole)
    # a clip without utterances: the whole clip is its one window
    bare = clip_vector(data, RATE, Clip("d", "d.wav", [], target_speaker="Ann"), "utterance").reshape(3, 7)
    assert bare.ravel().tolist() == pytest.approx(whole * 3)
    # an utterance past the end of the features: the window is the last frame (Eq. 1 never leaves it empty)
    late = Clip("e", "e.wav", [Utterance(3.0, 4.0, "Ann")], target_speaker="Ann")
    assert clip_vector(data, RATE, late, "utterance").reshape(3, 7)[0].tolist() == [9.0, 0.0, 9.0, 9.0, 9.0, 9.0, 9.0]


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


def _flat_corpus(rows: list[tuple[list[str], list[float]]], streams, feats: dict) -> list[Clip]:
    """One clip per (labels, channel values): ten identical frames, one utterance of the target."""
    clips = []
    for labels, values in rows:
        clip = Clip(f"f{len(feats)}", "f.wav", [Utterance(0.0, 1.0, "Ann")], target_speaker="Ann", labels=labels)
        feats[clip.id] = Features(np.tile(np.asarray(values, np.float32), (10, 1)), RATE, "synthetic", streams, 1.0)
        clips.append(clip)
    return clips


def test_c_is_chosen_on_the_validation_split():
    # train: ten 'a' clips at x = +1, two 'b' at x = -1. C = 0.01 shrinks the weight so far that 'a', the majority,
    # is answered everywhere (p(a) = 0.6 at x = -1); C = 0.1 and 1.0 separate the two (p(a) = 0.19, 0.03 there)
    feats, one = {}, [("x", 1)]
    train = _flat_corpus([(["a"], [1 + 0.01 * i]) for i in range(10)] + [(["b"], [-1 - 0.01 * i]) for i in range(2)],
                         one, feats)
    load = lambda clip: feats[clip.id]  # noqa: E731
    avgs = lambda probe: [c["val_avg"] for c in probe.choices]  # noqa: E731
    # a val split whose 'a' clips sit at x = -1: only the strongest regularisation reads them right
    val = _flat_corpus([(["a"], [-1.0])] * 3, one, feats)
    probe = LinearProbe.fit(train, val, load)
    assert (probe.C, probe.stream, avgs(probe)) == (0.01, None, [100.0, 0.0, 0.0])
    # a val split like train: C = 0.01 answers 'a' for the 'b' clips (Avg 50); 0.1 is the first of the best
    val = _flat_corpus([(["a"], [1.0]), (["a"], [1.02]), (["b"], [-1.0]), (["b"], [-1.02])], one, feats)
    probe = LinearProbe.fit(train, val, load)
    assert (probe.C, avgs(probe)) == (0.1, [50.0, 100.0, 100.0])
    assert probe.predict(val, load) == {c.id: c.labels for c in val}
    # no val split: chosen on train itself (C = 0.01 misses both 'b' clips: 10 / 12)
    probe = LinearProbe.fit(train, [], load)
    assert (probe.C, avgs(probe)) == (0.1, [83.33, 100.0, 100.0])


def test_streams_are_chosen_on_the_validation_split():
    # 'good' gives the label on 32 of 40 train clips and on every val clip; 'echo' gives it on every train clip
    # and the opposite on val. Reading all streams (or 'echo') follows echo; val picks 'good' alone
    feats, two = {}, [("good", 1), ("echo", 1)]
    sign = lambda label, right: 1.0 if (label == "a") == right else -1.0  # noqa: E731
    train = _flat_corpus([([lab], [sign(lab, i >= 4) * (1 + 0.01 * i), sign(lab, True) * (1 + 0.02 * i)])
                          for lab in "ab" for i in range(20)], two, feats)
    val = _flat_corpus([(["a"], [1.0, -1.0]), (["b"], [-1.0, 1.0])] * 3, two, feats)
    load = lambda clip: feats[clip.id]  # noqa: E731
    probe = LinearProbe.fit(train, val, load)
    assert [(c["stream"], c["val_avg"]) for c in probe.choices] == [
        ("all", 0.0), ("all", 0.0), ("all", 0.0), ("good", 100.0), ("good", 100.0), ("good", 100.0),
        ("echo", 0.0), ("echo", 0.0), ("echo", 0.0)]
    assert (probe.stream, probe.C, probe.val_avg) == ("good", 0.01, 1.0)
    assert probe.predict(val, load) == {c.id: c.labels for c in val}
    assert LinearProbe.fit(train, [], load).stream is None  # on train, all streams score 100 and come first


def test_answer_is_every_label_at_half_or_more_else_the_most_probable():
    feats = {}
    # 'a' is on every training clip: a constant answer (no classifier), on every clip
    train = _flat_corpus([(["a"], [1.0 + i]) for i in range(4)] + [(["a", "b"], [-1.0 - i]) for i in range(4)],
                         [("x", 1)], feats)
    probe = LinearProbe.fit(train, [], lambda clip: feats[clip.id])
    assert probe.labels == ["a", "b"] and probe.models[0] == 1.0
    assert set(map(tuple, probe.predict(train, lambda clip: feats[clip.id]).values())) == {("a",), ("a", "b")}
    # probabilities 0.2 / 0.4 / 0.3: none reaches 0.5, so the most probable alone; 0.5 counts as reached
    probe.labels, probe.models = ["p", "q", "r"], [0.2, 0.4, 0.3]
    assert probe._predict(np.zeros((1, 3 * 7))) == [["q"]]
    probe.models = [0.5, 0.9, 0.1]
    assert probe._predict(np.zeros((1, 3 * 7))) == [["p", "q"]]
