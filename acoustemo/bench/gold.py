"""The benchmark's labels: what each manner and cue means, the gold labels and explanation of a clip, and the
synonym groups the set-level metric scores answers with.

Gold labels are [manner label] + [cue label], or ["neutral"] when neither applies: the set-level metric needs a
non-empty gold set for recall, and "neutral" is what a listener would say of a plain clip. A distractor (a cue on
the other speaker) is never labelled; the gold explanation disowns it.
"""

from __future__ import annotations

# Clip-wide manners of the target speaker (espeak rate factor, espeak pitch offset, level offset in dB).
MANNERS = {
    "plain": {"rate_factor": 1.0, "pitch_offset": 0, "gain_db": 0.0, "label": None},
    "sad": {"rate_factor": 0.80, "pitch_offset": -15, "gain_db": -5.0, "label": "sad"},
    "excited": {"rate_factor": 1.20, "pitch_offset": 15, "gain_db": 4.0, "label": "excited"},
}
CUE_LABELS = {"tremor": "anxious", "burst": "angry", "jump": "surprised"}
NEUTRAL_LABEL = "neutral"

# Synonyms a model may answer with; `bench_groupings` turns them into per-sample groupings (first = canonical).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "anxious": ("nervous", "worried", "tense", "uneasy", "apprehensive", "fearful", "afraid", "scared",
                "frightened", "jittery", "shaky", "anxiety", "nervousness", "worry", "fear"),
    "angry": ("furious", "irritated", "annoyed", "mad", "irate", "enraged", "outraged", "frustrated",
              "anger", "rage", "irritation", "annoyance"),
    "surprised": ("astonished", "shocked", "amazed", "startled", "stunned", "astounded", "surprise",
                  "astonishment", "shock", "amazement"),
    "sad": ("sorrowful", "down", "unhappy", "sadness", "sorrow", "depressed", "gloomy", "melancholy",
            "downcast", "dejected", "low", "glum"),
    "excited": ("enthusiastic", "thrilled", "elated", "excitement", "eager", "energetic", "exhilarated",
                "lively", "animated", "enthusiasm"),
    "neutral": ("calm", "plain", "neutrality", "composed", "unemotional", "even", "flat", "none"),
}


def gold_labels(manner: str, cues: list[dict]) -> list[str]:
    """The target's labels: its manner's, then its own cues' (distractors left out), or ["neutral"]."""
    labels = [MANNERS[manner]["label"]] if MANNERS[manner]["label"] else []
    labels += [c["label"] for c in cues if not c["distractor"]]
    return labels or [NEUTRAL_LABEL]


_MANNER_TEXT = {"plain": "speaks in a plain, even voice", "sad": "speaks slowly, low and quietly throughout",
                "excited": "speaks fast, high and loudly throughout"}
_CUE_TEXT = {"tremor": ("voice trembles", "trembling"), "burst": ("voice suddenly gets loud", "loud burst"),
             "jump": ("pitch suddenly jumps up", "pitch jump")}


def _span(c: dict) -> str:
    return f"{c['start']:.1f}–{c['end']:.1f} s"


def describe(target: str, other: str, manner: str, cues: list[dict]) -> str:
    """The gold explanation: the target's manner and local cue with its time span; a distractor is disowned."""
    own = [c for c in cues if not c["distractor"]]
    first = f"{target} {_MANNER_TEXT[manner]}"
    if manner != "plain":
        first += f", which sounds {MANNERS[manner]['label']}"
    for c in own:
        first += f"; at {_span(c)} {target}'s {_CUE_TEXT[c['type']][0]}, which sounds {c['label']}"
    if manner == "plain" and not own:
        first += " throughout, with no vocal cue standing out, which sounds neutral"
    sentences = [first + "."]
    for c in cues:
        if c["distractor"]:
            sentences.append(f"The {_CUE_TEXT[c['type']][1]} at {_span(c)} is {other}'s, not {target}'s.")
    return " ".join(sentences)


def _group_of(label: str) -> str | None:
    label = label.strip().lower()
    for canonical, words in SYNONYMS.items():
        if label == canonical or label in words:
            return canonical
    return None


def bench_groupings(gold: dict[str, list[str]], preds: dict[str, list[str]] | None = None) -> dict[str, str]:
    """{id: "[['anxious', 'nervous', ...], ...]"} in the field's openset-synonym.json string format.

    Each group starts with its canonical benchmark label (the set-level metric maps members to the first one).
    With predictions, a sample gets the groups its gold and predicted labels fall in; without them, every
    benchmark group, so the file also serves predictions made later. Labels outside the table stay themselves.
    """
    out = {}
    for sample_id in gold:
        if preds is None:
            canon = list(SYNONYMS)
        else:
            pooled = [*gold[sample_id], *preds.get(sample_id, [])]
            canon = list(dict.fromkeys(g for g in map(_group_of, pooled) if g))
        groups = [[c, *SYNONYMS[c]] for c in canon]
        out[sample_id] = "[" + ", ".join("[" + ", ".join(repr(m) for m in g) + "]" for g in groups) + "]"
    return out
