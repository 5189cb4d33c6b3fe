"""Which labels an offline grouping may never put in one group ("cannot-link" guards).

A grouping that merges different emotions flatters every model: an anxious speaker called excited would count
as a hit. Embeddings place antonyms and co-occurring emotions close together (anxious ~ excited, sad ~ surprised),
so every offline grouping checks these guards before it joins two labels, whatever the similarity says:

1. Emotion families: a small hand-written lexicon of common emotion words and their inflections, one family per
   basic emotion (happy, sad, angry, fear, surprise, disgust, calm). Two labels of different families are kept
   apart. Words outside the lexicon are not guarded by it.
2. Distinct pairs: antonyms and distinct emotions inside a family or outside the lexicon (love / hate, excited /
   bored ...), and any word against its negation (un-, dis-, in-, im-, non- prefixes; -ful against -less).
3. The emotion wheels, when given (`--wheel`): two labels that at least two wheels place, each under different
   level-1 emotions, with no wheel placing both under the same one (anxious / excited). The wheels partition
   emotions differently (two split happy into joyful / peaceful / powerful), so one wheel's split alone does not
   keep two labels apart.
"""

from __future__ import annotations

from acoustemo.evaluate.wheel import WheelResources

# Our own lexicon (not the wheels' data): the basic emotion each common label names. "calm" is its own family:
# low-arousal states must not be counted as hits for angry, anxious or excited ones.
FAMILIES: dict[str, tuple[str, ...]] = {
    "happy": (
        "happy", "happiness", "happily", "joy", "joyful", "joyous", "glad", "gladness", "cheerful", "cheer",
        "delighted", "delight", "pleased", "pleasure", "pleasant", "content", "contented", "satisfied",
        "satisfaction", "excited", "excitement", "exciting", "enthusiastic", "enthusiasm", "thrilled", "elated",
        "elation", "eager", "eagerness", "exhilarated", "amused", "amusement", "grateful", "gratitude", "thankful",
        "hopeful", "hope", "optimistic", "optimism", "relieved", "relief", "proud", "pride", "loving", "love",
        "affection", "affectionate", "playful", "ecstatic", "euphoric", "blissful", "bliss", "jubilant", "lively",
        "animated", "energetic",
    ),
    "sad": (
        "sad", "sadness", "sadly", "unhappy", "unhappiness", "sorrow", "sorrowful", "grief", "grieving", "grieved",
        "depressed", "depression", "gloomy", "gloom", "melancholy", "melancholic", "downcast", "dejected",
        "dejection", "miserable", "misery", "heartbroken", "lonely", "loneliness", "disappointed", "disappointment",
        "hopeless", "hopelessness", "despair", "desperate", "despondent", "upset", "hurt", "glum", "mournful",
        "regretful", "regret", "sorry", "down", "low",
    ),
    "angry": (
        "angry", "anger", "angered", "angrily", "mad", "furious", "fury", "rage", "enraged", "irritated",
        "irritation", "irritable", "annoyed", "annoyance", "irate", "outraged", "outrage", "hostile", "hostility",
        "resentful", "resentment", "indignant", "indignation", "infuriated", "livid", "aggressive", "hateful",
        "hate", "hatred", "frustrated", "frustration",
    ),
    "fear": (
        "anxious", "anxiety", "anxiously", "worried", "worry", "worrying", "nervous", "nervousness", "fear",
        "fearful", "afraid", "scared", "frightened", "fright", "terrified", "terror", "panic", "panicked", "panicky",
        "tense", "tension", "uneasy", "unease", "uneasiness", "apprehensive", "apprehension", "alarmed", "alarm",
        "dread", "dreadful", "horrified", "horror", "insecure", "insecurity", "jittery", "timid", "shaky", "concern",
        "concerned", "stressed", "stress",
    ),
    "surprise": (
        "surprised", "surprise", "surprising", "astonished", "astonishment", "amazed", "amazement", "shocked",
        "shock", "startled", "stunned", "astounded", "dumbfounded", "flabbergasted",
    ),
    "disgust": (
        "disgusted", "disgust", "disgusting", "revulsion", "revolted", "repulsed", "repelled", "contempt",
        "contemptuous", "disdain", "disdainful", "loathing", "sickened", "nauseated",
    ),
    "calm": (
        "calm", "calmness", "calmly", "relaxed", "relax", "relaxation", "peaceful", "peace", "serene", "serenity",
        "tranquil", "tranquility", "composed", "composure", "neutral", "neutrality", "unemotional", "placid",
    ),
}
FAMILY_OF: dict[str, str] = {word: family for family, words in FAMILIES.items() for word in words}

# Antonyms / distinct emotions the families do not already separate (same family, or outside the lexicon).
DISTINCT_PAIRS: frozenset[frozenset[str]] = frozenset(
    frozenset(p)
    for p in (
        ("excited", "bored"), ("excitement", "boredom"),
        ("interested", "bored"), ("interest", "boredom"),
        ("proud", "ashamed"), ("pride", "shame"), ("confident", "insecure"), ("confident", "doubtful"),
        ("brave", "afraid"), ("trusting", "suspicious"), ("trust", "suspicion"), ("satisfied", "frustrated"),
        ("serious", "playful"), ("serious", "humorous"), ("positive", "negative"), ("optimistic", "pessimistic"),
    )
)
_NEGATIONS = ("un", "dis", "in", "im", "non", "non-")


def negation_pair(a: str, b: str) -> bool:
    """`a` and `b` are a word and its negation: un-/dis-/in-/im-/non- prefixes, or -ful against -less."""
    for x, y in ((a, b), (b, a)):
        if any(x == p + y for p in _NEGATIONS):
            return True
        if x.endswith("ful") and y.endswith("less") and x[:-3] == y[:-4]:
            return True
    return False


class Guard:
    """`apart(a, b)`: True when labels `a` and `b` (lowercased) must never share a group; `reason` says why."""

    def __init__(self, wheel: WheelResources | None = None):
        self.wheel = wheel
        self._level1: dict[str, tuple[str | None, ...]] = {}

    def reason(self, a: str, b: str) -> str | None:
        if a == b:
            return None
        fa, fb = self.family(a), self.family(b)
        if fa and fb and fa != fb:
            return f"families {fa} / {fb}"
        if frozenset((a, b)) in DISTINCT_PAIRS or negation_pair(a, b):
            return "distinct pair"
        if self.wheel is not None and self.wheels_disagree(a, b):
            return "emotion wheels"
        return None

    def apart(self, a: str, b: str) -> bool:
        return self.reason(a, b) is not None

    def family(self, label: str) -> str | None:
        if label in FAMILY_OF:
            return FAMILY_OF[label]
        if self.wheel is not None:  # an inflection listed in format.csv takes its name's family
            fams = {FAMILY_OF[n] for n in self.wheel.names(label) if n in FAMILY_OF}
            if len(fams) == 1:
                return fams.pop()
        return None

    def level1(self, label: str) -> tuple[str | None, ...]:
        if label not in self._level1:
            self._level1[label] = tuple(self.wheel.map_label(label, w, 1) for w in self.wheel.wheels)
        return self._level1[label]

    def wheels_disagree(self, a: str, b: str) -> bool:
        both = [(x, y) for x, y in zip(self.level1(a), self.level1(b)) if x and y]
        return len(both) >= 2 and all(x != y for x, y in both)
