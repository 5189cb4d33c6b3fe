"""Planning the benchmark: its settings (BenchConfig), split sizes, sentence pools per split, and one plan per
clip (speakers, voices, turns, manner, cues and timing), all drawn from the seed before any audio is made.

Splits: train / val / test = 70 / 10 / 20 % of the clips (1000 -> 700 / 100 / 200: a test split of 200 clips, where
one clip is worth 0.5 points; 60 made one clip worth 1.7), with disjoint sentence pools and disjoint espeak variants
(synth.VARIANT_POOLS), so test voices and sentences are never heard in training. Within a split the 3 manners x 4
cue states are balanced and exactly round(0.35 n) clips carry a distractor. Each clip's plan is drawn from its own
generator, so the plans do not depend on the order they are made in or on the number of workers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from acoustemo.bench.gold import MANNERS
from acoustemo.bench.sentences import NEUTRAL_SENTENCES, SPEAKER_NAMES
from acoustemo.bench.synth import ACCENTS, ENGINE_VOICES, SYNTHS, VARIANT_POOLS
from acoustemo.errors import ConfigError

SPLITS = ("train", "val", "test")
LEAD_S, TAIL_S = (0.2, 0.5), (0.2, 0.5)


@dataclass(frozen=True)
class BenchConfig:
    """Everything that changes the generated benchmark (all of it but `workers` is saved in meta.json)."""

    n: int = 1000
    seed: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    distractor_rate: float = 0.35
    same_voice_rate: float = 0.5
    burst_db: tuple[float, float] = (6.0, 8.0)
    jump_semitones: tuple[float, float] = (3.0, 4.0)
    tremor_hz: tuple[float, float] = (6.0, 8.0)
    tremor_depth: tuple[float, float] = (0.4, 0.55)
    tremor_semitones: tuple[float, float] = (0.7, 1.0)
    cue_s: tuple[float, float] = (0.8, 1.2)
    gap_s: tuple[float, float] = (0.2, 0.6)
    drift_db: float = 2.0
    synth: str = "espeak"  # "espeak" (espeak-ng, the default), "flite" (CMU Flite) or "festival": held-out engines
    train_synth: tuple[str, ...] = ()  # other engines that also speak the train split's plans: more voices in training
    engines: tuple[str, ...] = ()  # other engines that speak every split's plans, as "<split>-<engine>" manifests
    workers: int = field(default=2, compare=False)

    def __post_init__(self):
        problems = []
        if self.n < 3:
            problems.append(f"n={self.n}: need at least 3 clips (one per split)")
        for name in ("val_fraction", "test_fraction", "distractor_rate", "same_voice_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name}={getattr(self, name)} must lie in [0, 1]")
        if self.val_fraction + self.test_fraction >= 1.0:
            problems.append("val_fraction + test_fraction must leave clips for train (sum < 1)")
        for name in ("burst_db", "jump_semitones", "tremor_hz", "tremor_depth", "tremor_semitones", "cue_s", "gap_s"):
            lo, hi = getattr(self, name)
            if not 0.0 <= lo <= hi:
                problems.append(f"{name}={(lo, hi)} must be a range 0 <= low <= high")
        if not 0.0 <= self.drift_db <= 6.0:
            problems.append(f"drift_db={self.drift_db} must lie in [0, 6]")
        elif self.n >= 3 and split_sizes(self.n, self.val_fraction, self.test_fraction)["train"] < 1:
            problems.append(f"n={self.n} leaves no clip for train after val and test; raise --n or lower the fractions")
        if self.workers < 1:
            problems.append(f"workers={self.workers} must be >= 1")
        if self.synth not in SYNTHS:
            problems.append(f"synth={self.synth!r}: choose one of {', '.join(SYNTHS)}")
        problems += self._train_synth_problems() + self._engines_problems()
        if problems:
            raise ConfigError("benchmark settings: " + "; ".join(problems))

    def _train_synth_problems(self) -> list[str]:
        return self._engine_list_problems("train_synth", self.train_synth, "the train split")

    def _engines_problems(self) -> list[str]:
        problems = self._engine_list_problems("engines", self.engines, "train.jsonl, val.jsonl and test.jsonl")
        if isinstance(self.engines, str):
            return problems
        both = sorted(set(self.engines) & set(self.train_synth))
        if both:
            problems.append(f"{', '.join(both)} in both train_synth and engines: --engines speaks the train split "
                            f"already (as train-<engine>.jsonl); drop it from --train-synth")
        return problems

    def _engine_list_problems(self, name: str, engines, spoken: str) -> list[str]:
        """What is wrong with a list of extra engines (`train_synth` or `engines`): not a tuple, an unknown
        engine, the main engine again, an engine twice."""
        if isinstance(engines, str):
            return [f"{name}={engines!r} must be a tuple of engine names, e.g. ('flite',)"]
        others = [s for s in SYNTHS if s != self.synth]
        problems = [f"{name}: unknown engine {e!r}; choose among {', '.join(others)}" for e in engines
                    if e not in SYNTHS]
        if self.synth in engines:
            problems.append(f"{name} repeats the main engine {self.synth!r}, which speaks {spoken} already; list "
                            f"other engines only ({', '.join(others)})")
        repeated = sorted({e for e in engines if engines.count(e) > 1})
        if repeated:
            problems.append(f"{name} names {', '.join(repeated)} more than once; list each engine once")
        return problems

    def params(self) -> dict:
        d = asdict(self)
        d.pop("workers")
        if d["synth"] == "espeak":  # meta.json of an espeak benchmark stays as it was before Flite existed
            d.pop("synth")
        if not d["train_synth"]:  # ... and of any benchmark made without --train-synth
            d.pop("train_synth")
        if not d["engines"]:  # ... or without --engines
            d.pop("engines")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def split_sizes(n: int, val_fraction: float, test_fraction: float) -> dict[str, int]:
    """Clips per split; val and test are rounded, train takes the rest (1000 -> 700 / 100 / 200)."""
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    n_val, n_test = max(1, n_val) if val_fraction > 0 else 0, max(1, n_test) if test_fraction > 0 else 0
    return {"train": n - n_val - n_test, "val": n_val, "test": n_test}


def split_sentences(seed: int, val_fraction: float, test_fraction: float) -> dict[str, list[str]]:
    """Disjoint sentence pools, in the same proportions as the clips (each pool keeps at least 10 sentences)."""
    order = np.random.default_rng([seed, 7]).permutation(len(NEUTRAL_SENTENCES))
    n_val = max(10, round(len(order) * val_fraction))
    n_test = max(10, round(len(order) * test_fraction))
    parts = {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}
    return {k: [NEUTRAL_SENTENCES[i] for i in sorted(v)] for k, v in parts.items()}


def _balanced(values: list, n: int, rng: np.random.Generator) -> list:
    """`n` items cycling through `values`, shuffled: class counts differ by at most one."""
    items = [values[i % len(values)] for i in range(n)]
    return [items[i] for i in rng.permutation(n)]


def _uniform(rng: np.random.Generator, lo_hi) -> float:
    return round(float(rng.uniform(*lo_hi)), 4)


def _cue_plan(kind: str, speaker: str, distractor: bool, cfg: BenchConfig, rng: np.random.Generator) -> dict:
    plan = {"type": kind, "speaker": speaker, "distractor": distractor,
            "turn_choice": _uniform(rng, (0, 1)), "position": _uniform(rng, (0, 1)), "length_s": _uniform(rng, cfg.cue_s)}
    if kind == "burst":
        plan["gain_db"] = _uniform(rng, cfg.burst_db)
    elif kind == "jump":
        plan["semitones"] = _uniform(rng, cfg.jump_semitones)
    else:
        plan.update(rate_hz=_uniform(rng, cfg.tremor_hz), depth=_uniform(rng, cfg.tremor_depth),
                    semitones=_uniform(rng, cfg.tremor_semitones))
    return plan


def _drift_plan(drift_db: float, rng: np.random.Generator) -> list[list[float]]:
    """Three slow (0.3–1.5 Hz) sinusoids [freq_hz, phase, amp_db] whose sum has an RMS of drift_db."""
    amps = rng.uniform(0.5, 1.0, 3)
    amps *= drift_db * math.sqrt(2) / math.sqrt(np.sum(amps**2))
    return [[_uniform(rng, (0.3, 1.5)), _uniform(rng, (0, 2 * math.pi)), round(float(a), 4)] for a in amps]


def plan_clip(split: str, index: int, manner: str, cue: str | None, distractor: str | None,
              sentences: list[str], cfg: BenchConfig) -> dict:
    """Everything needed to render one clip, drawn from its own generator (so order and workers don't matter)."""
    rng = np.random.default_rng([cfg.seed, SPLITS.index(split), index])
    names = [SPEAKER_NAMES[i] for i in rng.choice(len(SPEAKER_NAMES), 2, replace=False)]
    target = names[int(rng.integers(2))]
    other = names[0] if target == names[1] else names[1]
    if cfg.synth in ENGINE_VOICES:
        pool = [f"{cfg.synth}:{v}" for v in ENGINE_VOICES[cfg.synth]]
    else:
        pool = [f"{a}+{v}" for a in ACCENTS for v in VARIANT_POOLS[split]]
    voice_a = pool[int(rng.integers(len(pool)))]
    voice_b = voice_a if rng.random() < cfg.same_voice_rate else pool[int(rng.integers(len(pool)))]
    speakers = {}
    for name, voice in zip(names, (voice_a, voice_b)):
        speakers[name] = {"voice": voice, "rate_wpm": int(rng.integers(150, 176)), "pitch": int(rng.integers(44, 57)),
                          "level_db": _uniform(rng, (-1.5, 1.5))}
    n_turns = int(rng.integers(2, 5))
    first = names[int(rng.integers(2))]
    order = [first if i % 2 == 0 else (names[1] if first == names[0] else names[0]) for i in range(n_turns)]
    texts = [sentences[i] for i in rng.choice(len(sentences), n_turns, replace=False)]
    m = MANNERS[manner]
    turns = []
    for speaker, text in zip(order, texts):
        s = speakers[speaker]
        is_target = speaker == target
        turns.append({
            "speaker": speaker, "text": text, "voice": s["voice"],
            "rate_wpm": round(s["rate_wpm"] * (m["rate_factor"] if is_target else 1.0)),
            "pitch": int(np.clip(s["pitch"] + (m["pitch_offset"] if is_target else 0), 0, 99)),
            "level_db": round(s["level_db"] + (m["gain_db"] if is_target else 0.0) + _uniform(rng, (-1.0, 1.0)), 4),
            "drift": _drift_plan(cfg.drift_db, rng),
        })
    cues = []
    if cue:
        cues.append(_cue_plan(cue, target, False, cfg, rng))
    if distractor:
        cues.append(_cue_plan(distractor, other, True, cfg, rng))
    return {
        "id": f"{split}-{index:04d}", "split": split, "target_speaker": target, "manner": manner,
        "speakers": speakers, "turns": turns, "cues": cues,
        "lead_s": _uniform(rng, LEAD_S), "gaps_s": [_uniform(rng, cfg.gap_s) for _ in range(n_turns - 1)],
        "tail_s": _uniform(rng, TAIL_S), "noise_seed": int(rng.integers(2**31)),
    }


def plan_benchmark(cfg: BenchConfig) -> list[dict]:
    """All clip plans, split by split; manners, cues and distractors are balanced within each split. Then, for each
    engine of cfg.train_synth, the train split's plans again with that engine's voices, as "train-<engine>-<index>";
    last, for each engine of cfg.engines, every split's plans with its voices, as "<split>-<engine>-<index>" with
    an "engine" key (their manifest is "<split>-<engine>.jsonl")."""
    sizes = split_sizes(cfg.n, cfg.val_fraction, cfg.test_fraction)
    sentences = split_sentences(cfg.seed, cfg.val_fraction, cfg.test_fraction)
    plans = []
    for s, split in enumerate(SPLITS):
        n = sizes[split]
        rng = np.random.default_rng([cfg.seed, s, 1_000_003])
        # Item i gets (manner i % 3, cue i % 4): every 12 items hold each pair once (3 and 4 are coprime), and
        # any prefix keeps both marginals within one of balance; then shuffle.
        m3, c4 = ("plain", "sad", "excited"), (None, "tremor", "burst", "jump")
        pairs = [(m3[i % 3], c4[i % 4]) for i in rng.permutation(n)]
        manners, cues = [m for m, _ in pairs], [c for _, c in pairs]
        n_distract = round(cfg.distractor_rate * n)
        distractors = _balanced(["tremor", "burst", "jump"], n_distract, rng) + [None] * (n - n_distract)
        distractors = [distractors[i] for i in rng.permutation(n)]
        plans += [plan_clip(split, i, manners[i], cues[i], distractors[i], sentences[split], cfg) for i in range(n)]
    for engine in cfg.train_synth:
        # `--synth <engine>`'s own train plans: plan_clip draws the same sentences, cues and times for any engine
        spoken = plan_benchmark(replace(cfg, synth=engine, train_synth=()))
        plans += [{**p, "id": f"train-{engine}-{p['id'].removeprefix('train-')}"}
                  for p in spoken if p["split"] == "train"]
    for engine in cfg.engines:  # the same plans again, every split: `--synth <engine>`'s clips, renamed
        spoken = plan_benchmark(replace(cfg, synth=engine, train_synth=(), engines=()))
        plans += [{**p, "id": f"{p['split']}-{engine}-{p['id'].split('-')[-1]}", "engine": engine} for p in spoken]
    return plans
