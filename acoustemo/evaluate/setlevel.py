"""Set-level Accuracy_S / Recall_S of EMER-Fine, computed as the field's reference code does.

Per sample, with a grouping (a list of groups of labels that mean the same):
  every member of a group maps to the group's first member (members used exactly as written);
  gold and predicted labels (already lowercased) are mapped, a label in no group stays itself -> sets G, P;
  P empty -> accuracy = recall = 0; else accuracy = |G∩P| / |P|, recall = |G∩P| / |G|.
Accuracy_S, Recall_S are the means over samples, Avg their mean. Values here are fractions in [0, 1]; the CLI
reports them ×100, as the paper does.

Samples the reference never sees are made explicit instead of crashing or vanishing silently:
  - a sample missing from the predictions is scored as an empty prediction (0, 0) and counted;
  - a sample without a grouping is skipped (the reference loops over the samples that have one) and counted,
    or scored with exact string matching when `without_grouping="exact"`;
  - a sample whose gold set is empty is skipped and counted (its recall is undefined; the reference would
    divide by zero).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from acoustemo.evaluate.parsing import parse_list_string

Grouping = list[list[str]]

_INNER_LIST = re.compile(r"\[([^\[\]]*)\]")


def parse_grouping(raw: str) -> Grouping:
    """A grouping answer such as `"[['joyful', 'happy'], ['sad']]"` -> `[['joyful', 'happy'], ['sad']]`.

    Cut between the outer brackets, take each inner `[...]` and split it on quote characters, as the reference's
    `listlist_to_list` does (so apostrophes split members, exactly as they split labels; commas inside a quoted
    member do not). Text without inner lists gives no groups.
    """
    s = str(raw).strip()
    start, end = s.find("["), s.rfind("]")
    inner = s[start + 1 : end] if 0 <= start < end else s
    groups = [parse_list_string(m, split_commas=False) for m in _INNER_LIST.findall(inner)]
    return [g for g in groups if g]


def format_grouping(groups: Grouping) -> str:
    """The inverse of `parse_grouping`, in the cache's list-of-lists string form."""
    return "[" + ", ".join("[" + ", ".join(repr(m) for m in g) + "]" for g in groups) + "]"


def label_map(groups: Grouping) -> dict[str, str]:
    """member -> first member of its group (a member in two groups: the later group wins, as dict updates do)."""
    mapping: dict[str, str] = {}
    for group in groups:
        for member in group:
            mapping[member] = group[0]
    return mapping


@dataclass
class SampleScore:
    name: str
    gold: list[str]
    pred: list[str]
    gold_mapped: list[str]
    pred_mapped: list[str]
    accuracy: float
    recall: float
    missing_prediction: bool = False
    exact_match_fallback: bool = False


def score_sample(name: str, gold: list[str], pred: list[str], groups: Grouping | None) -> SampleScore:
    mapping = label_map(groups or [])
    g = {mapping.get(x, x) for x in gold}
    p = {mapping.get(x, x) for x in pred}
    hits = len(g & p)
    acc, rec = (0.0, 0.0) if not p else (hits / len(p), hits / len(g))
    return SampleScore(name, list(gold), list(pred), sorted(g), sorted(p), acc, rec)


@dataclass
class SetLevelResult:
    accuracy_s: float  # fractions in [0, 1]
    recall_s: float
    avg: float
    n_samples: int  # samples in the means
    n_gold: int  # samples in the gold file
    n_missing_predictions: int  # scored samples with no prediction row (scored as empty predictions)
    n_empty_predictions: int  # scored samples whose prediction set is empty (missing ones included)
    n_without_grouping: int  # gold samples the grouping has nothing for
    n_empty_gold: int  # gold samples with no labels (skipped)
    n_extra_predictions: int  # prediction rows for names not in the gold file (ignored)
    without_grouping: str
    samples: list[SampleScore] = field(default_factory=list, repr=False)

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("samples")
        return d


def set_level_scores(
    gold: dict[str, list[str]],
    pred: dict[str, list[str]],
    groupings: dict[str, Grouping],
    without_grouping: str = "skip",
) -> SetLevelResult:
    """Accuracy_S / Recall_S over the gold samples (lowercased labels), with per-sample groupings by name."""
    if without_grouping not in {"skip", "exact"}:
        raise ValueError(f"without_grouping must be 'skip' or 'exact', not {without_grouping!r}")
    samples: list[SampleScore] = []
    n_no_group = n_empty_gold = 0
    for name, g in gold.items():
        if name not in groupings:
            n_no_group += 1
            if without_grouping == "skip":
                continue
        if not g:
            n_empty_gold += 1
            continue
        s = score_sample(name, g, pred.get(name, []), groupings.get(name))
        s.missing_prediction = name not in pred
        s.exact_match_fallback = name not in groupings
        samples.append(s)
    n = len(samples)
    acc = sum(s.accuracy for s in samples) / n if n else 0.0
    rec = sum(s.recall for s in samples) / n if n else 0.0
    return SetLevelResult(
        accuracy_s=acc,
        recall_s=rec,
        avg=(acc + rec) / 2,
        n_samples=n,
        n_gold=len(gold),
        n_missing_predictions=sum(s.missing_prediction for s in samples),
        n_empty_predictions=sum(not s.pred for s in samples),
        n_without_grouping=n_no_group,
        n_empty_gold=n_empty_gold,
        n_extra_predictions=len(set(pred) - set(gold)),
        without_grouping=without_grouping,
        samples=samples,
    )
