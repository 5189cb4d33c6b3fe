"""Is a model's explanation right? Its cues, speakers and times checked against the benchmark's ground truth.

The acoustic-cue benchmark's gold explanation (`make.describe`) reads

    Clara speaks fast, high and loudly throughout, which sounds excited; at 6.0–6.9 s Clara's voice trembles,
    which sounds anxious. The loud burst at 4.1–5.0 s is Maya's, not Clara's.

A trained model writes in that style but may name the wrong cue for a label, give a cue to the wrong speaker or
state a wrong time. `parse_explanation` reads an explanation into claims, one per clause (sentences are cut at
`.`, `;` and after each "sounds <label>"): which manner or cue phrase it names (`_MANNER_TEXT` / `_CUE_TEXT`, in
their short and noun forms and a few close variants), the speaker it gives it to, its "at a–b s" span and the
label it "sounds" like; "... is Maya's, not Clara's" disowns a cue (a distractor claim). Nothing is guessed: a
clause that names no phrase, two of them, or two spans is `unparsed`, and an unparsed clause makes the
explanation not right. `explanation_check` turns the claims into four verdicts per clip:

  labels_right       the predicted set equals the gold set, synonyms mapped (make.SYNONYMS, as the bench scorer)
  cues_match_labels  the explanation parses; every phrase's "sounds" label is the one it stands for (tremor ->
                     anxious, burst -> angry, jump -> surprised, a manner -> its label, plain -> neutral); every
                     local-cue label among the predicted emotions is explained by its cue, and every cue claimed
                     for the target stands for a predicted label; a target without a gold cue is claimed none
  speaker_right      the target is named; every manner or cue claim names the target; every disowning sentence
                     gives the cue to the other speaker and takes it from the target; a cue claimed for the
                     target is not one only the other speaker carries; a disowned cue is one the other carries
  time_right         each claimed cue that the claimed carrier does carry (own claims: the target's gold cue of
                     that type; disowned: the distractor of that type) states a span whose both edges lie within
                     TIME_TOLERANCE_S of the gold span; a target without a gold cue is claimed none
  (an empty explanation says nothing, so it fails the three explanation checks; only its labels can be right)
  all_right          all four

TIME_TOLERANCE_S = 0.5 s: the gold text rounds to 0.1 s and the cues last 0.8–1.2 s, so a span shifted by half a
cue or more is wrong, and a span covering the whole clip is wrong too (plain overlap would accept it).
Cues the explanation does not mention are the labels' business (a missed cue is a missed label), not time's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from acoustemo.bench.gold import CUE_LABELS, MANNERS, NEUTRAL_LABEL, _group_of, gold_labels
from acoustemo.bench.sentences import SPEAKER_NAMES
from acoustemo.errors import ConfigError
from acoustemo.evaluate.parsing import EvaluationError, _as_list, jsonl_rows, normalize_labels

TIME_TOLERANCE_S = 0.5
CHECKS = ("labels_right", "cues_match_labels", "speaker_right", "time_right", "all_right")

# What each phrase stands for; the first pattern of each entry is make._CUE_TEXT's / _MANNER_TEXT's own wording.
_CUE_PATTERNS = {
    "tremor": r"voice trembles|trembl\w*|tremor\w*|quaver\w*|shak(?:y|es|ing)\b|wobbl\w*",
    "burst": r"voice suddenly (?:gets|got|goes|becomes|grows|turns) loud(?:er)?\b|loud burst|burst\w*"
             r"|(?:gets|got|goes|becomes|grows|turns) (?:suddenly )?loud(?:er)?\b",
    "jump": r"pitch suddenly jumps up|pitch jump\w*|pitch (?:suddenly )?(?:jumps?|leaps?|shoots|rises)(?: up)?"
            r"|jumps? (?:up )?in pitch|jump\w* up\b",
}
_MANNER_WORDS = {  # every word must be present (in any order) for the clause to name the manner
    "sad": (r"slow(?:ly)?", r"low(?:ly)?", r"quiet(?:ly)?"),
    "excited": (r"fast", r"high", r"loud(?:ly)?"),
    "plain": (r"plain",),
}
_NO_CUE = re.compile(r"\bno (?:(?:vocal|local|other) )?cues?\b", re.IGNORECASE)  # "with no vocal cue standing out"
_STANDS_FOR = {**CUE_LABELS, **{m: v["label"] or NEUTRAL_LABEL for m, v in MANNERS.items()}}
_NUM = r"(\d+(?:\.\d+)?)"
_SPAN = re.compile(_NUM + r"\s*(?:–|—|-|to)\s*" + _NUM + r"\s*(?:s|secs?|seconds)\b")
_POINT = re.compile(r"\bat " + _NUM + r"\s*(?:s|secs?|seconds)\b")
_SOUNDS = re.compile(r"\bsound(?:s|ed|ing)?\s+(?:like\s+)?(?:(?:a bit|rather|quite|very|somewhat)\s+)?([a-z]+)",
                     re.IGNORECASE)


@dataclass(frozen=True)
class Claim:
    """One clause of an explanation, read. `kind`: "manner", "cue", "disown", "none" (a clause of its own saying
    no cue stands out) or "unparsed"."""

    text: str
    kind: str
    what: str | None = None  # manner name (plain / sad / excited) or cue type (tremor / burst / jump)
    speaker: str | None = None  # who the clause says carries it (for "disown": the owner it names)
    disowned: str | None = None  # "disown" only: who it says does NOT carry it
    span: tuple[float, float] | None = None  # (start_s, end_s) stated, if any
    label: str | None = None  # the label it "sounds" like, synonym-mapped (an unknown word stays itself)


@dataclass(frozen=True)
class ClipTruth:
    """What the benchmark knows about one clip (meta.json's clip record): speakers, manner and placed cues."""

    id: str
    target: str
    other: str
    manner: str
    cues: tuple[dict, ...]  # {type, label, speaker, distractor, start, end, ...}

    @property
    def labels(self) -> list[str]:
        return gold_labels(self.manner, list(self.cues))

    @classmethod
    def from_meta(cls, clip_id: str, clip: dict) -> ClipTruth:
        others = [s for s in clip["speakers"] if s != clip["target_speaker"]]
        if len(others) != 1:
            raise ConfigError(f"meta.json clip {clip_id}: expected two speakers, one of them the target "
                              f"{clip['target_speaker']!r}; got {list(clip['speakers'])}")
        return cls(clip_id, clip["target_speaker"], others[0], clip["manner"], tuple(clip["cues"]))


# ------------------------------------------------------------------------------------------------ parsing
def _clauses(text: str) -> list[str]:
    """Sentences (cut at . ! ? followed by a space: decimals stay whole), then `;`, then after each "sounds X"."""
    out = []
    for sentence in re.split(r"(?<=[.!?])\s+", text.strip()):
        for part in sentence.split(";"):
            cuts = [m.end() for m in _SOUNDS.finditer(part)]
            for a, b in zip([0, *cuts], [*cuts, len(part)]):
                piece = re.sub(r"^[\s,]*(?:and\s+|but\s+|while\s+)?", "", part[a:b]).strip(" ,.!?")
                if piece:
                    out.append(piece)
    return out


def _names_in(clause: str, names: tuple[str, ...]) -> list[str]:
    return [m.group(1) for m in re.finditer(r"\b(" + "|".join(map(re.escape, names)) + r")\b", clause)]


def _parse_clause(clause: str, names: tuple[str, ...]) -> Claim:
    low = clause.lower()
    cues = {kind for kind, pat in _CUE_PATTERNS.items() if re.search(r"\b(?:" + pat + ")", low)}
    manners = {m for m, words in _MANNER_WORDS.items() if all(re.search(rf"\b{w}\b", low) for w in words)}
    spans = [(float(a), float(b)) for a, b in _SPAN.findall(clause)] or [(float(t), float(t))
                                                                         for t in _POINT.findall(clause)]
    sounds = _SOUNDS.findall(clause)
    label = (_group_of(sounds[0]) or sounds[0].lower()) if len(sounds) == 1 else None
    if not cues and not manners and _NO_CUE.search(clause) and not spans and len(sounds) <= 1:
        return Claim(clause, "none", label=label)  # "no cue stands out", split off its manner clause
    if len(cues) + len(manners) != 1 or len(spans) > 1 or len(sounds) > 1:
        return Claim(clause, "unparsed")
    span = spans[0] if spans else None
    name = "|".join(map(re.escape, names))
    disown = re.search(rf"\b(?:is|was|belongs to|comes from|is from)\s+({name})(?:'s|’s)?\s*,?\s*(?:and\s+)?"
                       rf"not\s+({name})(?:'s|’s)?\b", clause)
    if disown:
        if manners:
            return Claim(clause, "unparsed")
        return Claim(clause, "disown", cues.pop(), disown.group(1), disown.group(2), span, label)
    speakers = set(_names_in(clause, names))
    speaker = speakers.pop() if len(speakers) == 1 else None  # none or two names: not attributed
    if manners:
        return Claim(clause, "manner", manners.pop(), speaker, None, span, label)
    return Claim(clause, "cue", cues.pop(), speaker, None, span, label)


def parse_explanation(text: str, names: tuple[str, ...] = SPEAKER_NAMES) -> list[Claim]:
    """The claims of an explanation, one per clause; `names` are the speaker names it may use."""
    return [_parse_clause(c, names) for c in _clauses(text or "")]


# ------------------------------------------------------------------------------------------------ checks
def _close(span: tuple[float, float] | None, cue: dict) -> bool:
    return span is not None and abs(span[0] - cue["start"]) <= TIME_TOLERANCE_S and abs(
        span[1] - cue["end"]) <= TIME_TOLERANCE_S


def canonical_labels(labels: list[str]) -> set[str]:
    """Synonyms mapped to the benchmark's labels (make.SYNONYMS, as the bench scorer's groupings); others kept."""
    return {_group_of(x) or x for x in normalize_labels(labels)}


def explanation_check(truth: ClipTruth, emotions: list[str], explanation: str) -> dict:
    """The four verdicts (and all_right) for one clip's answer; see the module docstring for their definitions."""
    names = tuple(dict.fromkeys((truth.target, truth.other, *SPEAKER_NAMES)))
    claims = parse_explanation(explanation, names)
    pred = canonical_labels(emotions)
    own_gold = {c["type"]: c for c in truth.cues if not c["distractor"]}
    other_gold = {c["type"]: c for c in truth.cues if c["distractor"]}
    own = [c for c in claims if c.kind == "cue"]
    disowned = [c for c in claims if c.kind == "disown"]
    said = [c for c in claims if c.kind in ("manner", "cue")]

    cues_match = (bool(claims) and all(c.kind != "unparsed" for c in claims)
                  and all(c.label is None or c.label == _STANDS_FOR[c.what] for c in said)
                  and all(c.label in (None, NEUTRAL_LABEL) and not own for c in claims if c.kind == "none")
                  and all(any(c.what == cue for c in own) for cue, label in CUE_LABELS.items() if label in pred)
                  and all(CUE_LABELS[c.what] in pred for c in own)
                  and (bool(own_gold) or not own))
    speaker = (any(c.speaker == truth.target for c in said)
               and all(c.speaker == truth.target for c in said)
               and all(c.speaker == truth.other and c.disowned == truth.target for c in disowned)
               and not any(c.what not in own_gold and c.what in other_gold for c in own)
               and all(c.what in other_gold for c in disowned))
    time = (bool(claims) and (bool(own_gold) or not own)
            and all(_close(c.span, own_gold[c.what]) for c in own if c.what in own_gold)
            and all(_close(c.span, other_gold[c.what]) for c in disowned if c.what in other_gold))
    labels = bool(pred) and pred == set(truth.labels)
    verdict = {"labels_right": labels, "cues_match_labels": cues_match, "speaker_right": speaker, "time_right": time}
    return {**verdict, "all_right": all(verdict.values())}


def explanation_summary(truths: dict[str, ClipTruth], preds: dict[str, dict]) -> dict:
    """Counts and shares (percent) of each check over the clips of `truths`; a clip without a prediction fails all.

    `preds`: {id: {"emotions": [...], "explanation": "..."}} (read_predictions). `explained` counts the clips with a
    non-empty explanation: 0 for the probe rows, whose explanations are empty and whose shares mean nothing.
    """
    counts = dict.fromkeys(CHECKS, 0)
    explained = 0
    for clip_id, truth in truths.items():
        p = preds.get(clip_id, {})
        explained += bool((p.get("explanation") or "").strip())
        for k, v in explanation_check(truth, p.get("emotions", []), p.get("explanation", "")).items():
            counts[k] += v
    n = len(truths)
    return {"clips": n, "explained": explained, "counts": counts,
            "percent": {k: 100.0 * v / n if n else float("nan") for k, v in counts.items()},
            "time_tolerance_s": TIME_TOLERANCE_S}


# ------------------------------------------------------------------------------------------------ files
def load_truth(bench_dir: str | Path, split: str = "test") -> dict[str, ClipTruth]:
    """The ground truth of a split's clips (in manifest order) from a `bench make` folder's meta.json."""
    bench = Path(bench_dir)
    meta_path, manifest = bench / "meta.json", bench / f"{split}.jsonl"
    if not meta_path.is_file() or not manifest.is_file():
        raise ConfigError(f"{bench} is not a finished `acoustemo bench make` folder (needs meta.json and {split}.jsonl)"
                          f"; give the folder `acoustemo bench make --out` wrote")
    clips = json.loads(meta_path.read_text())["clips"]
    ids = [json.loads(line)["id"] for line in manifest.read_text().splitlines() if line.strip()]
    missing = [i for i in ids if i not in clips]
    if missing:
        raise ConfigError(f"{meta_path} has no record of {len(missing)} {split} clip(s) ({missing[:3]}); the folder "
                          "mixes two `bench make` runs: make it again")
    return {i: ClipTruth.from_meta(i, clips[i]) for i in ids}


def read_predictions(path: str | Path) -> dict[str, dict]:
    """{id: {"emotions": [...], "explanation": str}} from a predictions JSONL (`acoustemo predict` / bench run)."""
    out: dict[str, dict] = {}
    for line_no, row in jsonl_rows(path):
        explanation = row.get("explanation") or ""
        if not isinstance(explanation, str):
            raise EvaluationError(f'{path}:{line_no}: "explanation" must be a string')
        out[row["id"]] = {"emotions": _as_list(row.get("emotions"), Path(path), line_no, "emotions"),
                          "explanation": explanation}
    return out


def check_predictions(bench_dir: str | Path, preds_path: str | Path, split: str = "test",
                      ) -> tuple[dict, list[dict]]:
    """`acoustemo bench explain`: (explanation_summary of a predictions file on a split of a `bench make` folder,
    one row per clip {id, failed checks, gold labels, emotions, explanation}). Reads, never writes."""
    truths, preds = load_truth(bench_dir, split), read_predictions(preds_path)
    unknown = sorted(set(preds) - set(truths))
    if unknown:
        raise ConfigError(f"{preds_path}: {len(unknown)} id(s) are not {split} clips of {bench_dir} ({unknown[:3]}); "
                          f"give the bench folder these predictions were made on, or --split")
    summary = {**explanation_summary(truths, preds), "bench": str(bench_dir), "preds": str(preds_path),
               "split": split}
    clips = []
    for clip_id, truth in truths.items():
        p = preds.get(clip_id, {"emotions": [], "explanation": ""})
        failed = [k for k, v in explanation_check(truth, p["emotions"], p["explanation"]).items() if not v]
        clips.append({"id": clip_id, "failed": failed, "gold": truth.labels, **p})
    return summary, clips
