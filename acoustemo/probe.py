"""A linear probe on the cached features: what the inputs carry before any learning (issue #17's anchor row).

    probe = LinearProbe.fit(train_clips, val_clips, load_acoustic, pooling="utterance")
    labels = probe.predict(test_clips, load_acoustic)          # {clip id: [label, ...]}

Per clip, pooled statistics of the SAME cached features the learned model reads (every stream):
  - per window: mean, std, min, max and the 10th / 50th / 90th percentiles of every channel;
  - "utterance" pooling: those statistics for each of the target speaker's utterance windows (Eq. 1's frames),
    then their mean and their max over the target's windows, plus the same statistics over the whole clip;
  - "global" pooling: the whole-clip statistics only.
One logistic regression per label (scikit-learn, L2, standardised inputs) on the train split; a clip's answer is
every label with probability >= 0.5, or the single most probable label when none reaches it (every gold set is
non-empty). The regularisation C and the streams it reads (all, or one stream alone) are chosen on the
validation split's set-level Avg, so the anchor is the best linear reading of the features, not a strawman.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from acoustemo.data.segments import Clip
from acoustemo.data.windows import frame_range
from acoustemo.errors import ConfigError

log = logging.getLogger(__name__)

POOLINGS = ("utterance", "global")
STATISTICS = ("mean", "std", "min", "max", "p10", "p50", "p90")
C_GRID = (0.01, 0.1, 1.0)


def window_statistics(x: np.ndarray) -> np.ndarray:
    """(F, D) frames -> (7, D): mean, std, min, max, p10, p50, p90 of every channel."""
    x = np.asarray(x, dtype=np.float64)
    p10, p50, p90 = np.percentile(x, [10, 50, 90], axis=0)
    return np.stack([x.mean(0), x.std(0), x.min(0), x.max(0), p10, p50, p90])


def target_windows(clip: Clip) -> list[tuple[float, float]]:
    """(start_s, end_s) of the target speaker's utterances; every utterance without a (speaking) target."""
    mine = [(u.start_s, u.end_s) for u in clip.utterances if u.speaker == clip.target_speaker]
    return mine or [(u.start_s, u.end_s) for u in clip.utterances]


def clip_vector(data: np.ndarray, frame_rate_hz: float, clip: Clip, pooling: str) -> np.ndarray:
    """One clip's probe input: (7 x D,) for "global", (3 x 7 x D,) for "utterance" (target mean, target max,
    whole clip). A clip without utterances pools the whole clip as its one window."""
    whole = window_statistics(data)
    if pooling == "global":
        return whole.ravel()
    spans = [frame_range(s, e, frame_rate_hz, data.shape[0]) for s, e in target_windows(clip)]
    per_window = np.stack([window_statistics(data[a:b]) for a, b in spans]) if spans else whole[None]
    return np.concatenate([per_window.mean(0).ravel(), per_window.max(0).ravel(), whole.ravel()])


def stream_groups(streams: list[tuple[str, int]]) -> list[str]:
    """The stream subsets the probe tries besides all streams: each encoder stream alone."""
    return [n for n, _ in streams]


def stream_columns(streams: list[tuple[str, int]], pooling: str, keep: str | None) -> np.ndarray | None:
    """Column indices of the probe vector that belong to the streams of `keep` ('+'-joined; None = all)."""
    if keep is None:
        return None
    widths = [w for _, w in streams]
    starts = dict(zip([n for n, _ in streams], np.cumsum([0] + widths[:-1])))
    channels = np.concatenate([np.arange(starts[n], starts[n] + dict(streams)[n]) for n in keep.split("+")])
    blocks = len(STATISTICS) * (1 if pooling == "global" else 3)
    return np.concatenate([b * sum(widths) + channels for b in range(blocks)])


@dataclass
class LinearProbe:
    labels: list[str]
    pooling: str
    streams: list[tuple[str, int]]
    stream: str | None  # the one stream read, or None = all
    C: float
    scaler: object = None
    models: list = field(default_factory=list)
    val_avg: float = float("nan")
    choices: list[dict] = field(default_factory=list)  # every (stream, C) tried, with its val Avg

    @classmethod
    def fit(cls, train: list[Clip], val: list[Clip], load_acoustic: Callable, pooling: str = "utterance",
            seed: int = 0, memo: dict | None = None) -> "LinearProbe":
        """Fit on `train`; choose the streams and C on `val` (on `train` itself when `val` is empty). `memo`, a
        dict kept between calls, holds each clip's pooled statistics so a second probe does not recompute them."""
        if pooling not in POOLINGS:
            raise ConfigError(f"probe pooling {pooling!r}: choose one of {', '.join(POOLINGS)}")
        labels = sorted({w for c in train for w in c.labels})
        if not labels:
            raise ConfigError("the probe needs labelled training clips; the training manifest has no labels")
        Xtr, streams = _matrix(train, load_acoustic, pooling, memo)
        Ytr = np.array([[w in c.labels for w in labels] for c in train])
        held = val or train
        Xva, _ = _matrix(held, load_acoustic, pooling, memo) if val else (Xtr, streams)
        options = [None] + (stream_groups(streams) if len(streams) > 1 else [])
        best, choices = None, []
        for keep in options:
            cols = stream_columns(streams, pooling, keep)
            for C in C_GRID:
                probe = cls(labels, pooling, streams, keep, C)
                probe._fit(Xtr if cols is None else Xtr[:, cols], Ytr, seed)
                avg = _avg([c.labels for c in held], probe._predict(Xva if cols is None else Xva[:, cols]))
                choices.append({"stream": keep or "all", "C": C, "val_avg": round(100 * avg, 2)})
                if best is None or avg > best.val_avg:
                    best, best.val_avg = probe, avg
        best.choices = choices
        log.info("probe (%s): streams %s, C=%g, val Avg %.2f", pooling, best.stream or "all", best.C, 100 * best.val_avg)
        return best

    def predict(self, clips: list[Clip], load_acoustic: Callable, memo: dict | None = None) -> dict[str, list[str]]:
        X, streams = _matrix(clips, load_acoustic, self.pooling, memo)
        if streams != self.streams:
            raise ConfigError(f"the probe was fitted on streams {self.streams}, these features have {streams}")
        cols = stream_columns(streams, self.pooling, self.stream)
        return {c.id: p for c, p in zip(clips, self._predict(X if cols is None else X[:, cols]))}

    def _fit(self, X: np.ndarray, Y: np.ndarray, seed: int) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        self.scaler = StandardScaler().fit(X)
        Xs = self.scaler.transform(X)
        self.models = []
        for j in range(Y.shape[1]):
            y = Y[:, j].astype(int)
            if y.min() == y.max():  # a label on every (or no) training clip: a constant answer
                self.models.append(float(y[0]))
                continue
            self.models.append(LogisticRegression(C=self.C, max_iter=2000, random_state=seed).fit(Xs, y))

    def _predict(self, X: np.ndarray) -> list[list[str]]:
        Xs = self.scaler.transform(X)
        P = np.stack([np.full(len(X), m) if isinstance(m, float) else m.predict_proba(Xs)[:, 1]
                      for m in self.models], axis=1)
        out = []
        for row in P:
            picked = [w for w, p in zip(self.labels, row) if p >= 0.5]
            out.append(picked or [self.labels[int(row.argmax())]])
        return out


def _matrix(clips: list[Clip], load_acoustic: Callable, pooling: str, memo: dict | None = None,
            ) -> tuple[np.ndarray, list[tuple[str, int]]]:
    memo = {} if memo is None else memo
    rows, streams = [], None
    for clip in clips:
        if clip.id not in memo:  # the "utterance" vector; its last block is the whole clip's ("global")
            feats = load_acoustic(clip)
            these = [(str(n), int(w)) for n, w in feats.streams]
            memo[clip.id] = (clip_vector(feats.data, float(feats.frame_rate_hz), clip, "utterance"), these)
        vector, these = memo[clip.id]
        if streams is not None and these != streams:
            raise ConfigError(f"clip {clip.id}: features with streams {these}, others have {streams}; extract all "
                              f"clips with one encoder")
        streams = these
        rows.append(vector if pooling == "utterance" else vector[-len(STATISTICS) * sum(w for _, w in these):])
    return np.stack(rows).astype(np.float64), streams


def _avg(gold: list[list[str]], pred: list[list[str]]) -> float:
    """Set-level Avg (0..1) with exact label matching."""
    from acoustemo.evaluate.setlevel import set_level_scores

    return set_level_scores(dict(enumerate(gold)), dict(enumerate(pred)), {}, without_grouping="exact").avg
