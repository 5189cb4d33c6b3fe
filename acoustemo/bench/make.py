"""The acoustic-cue benchmark: two-speaker TTS dialogues whose emotion can only be heard.

Every clip is 2–4 alternating utterances of emotionally neutral text (`sentences.py`) spoken by two speakers
drawn from the SAME espeak-ng voice pool (half the time the very same voice), so neither the words nor the
voice identity says who carries a cue; only the subtitle times do. The labels belong to the target speaker:

  manner (clip-wide, all of the target's utterances)   sad = slow + low + quiet, excited = fast + high + loud
  local cue (~1 s inside one of the target's utterances) tremor -> anxious, loud burst -> angry,
                                                          pitch jump -> surprised
  distractor: the same local cues planted on the OTHER speaker in ~35% of clips, never labelled.

Gold labels are [manner label] + [cue label], or ["neutral"] when neither applies: the set-level metric needs a
non-empty gold set for recall, and "neutral" is what a listener would say of a plain clip. Cue strengths are
moderate on purpose (BENCHMARK_NOTES.md: +14 dB bursts and +7 semitone jumps are found by one threshold):

  sad      espeak rate x0.80, pitch -15 (about -2.4 semitones), level -5 dB
  excited  espeak rate x1.20, pitch +15 (about +2.6 semitones), level +4 dB
  burst    +6..8 dB over 0.8–1.2 s, 0.1 s raised-cosine edges
  jump     +3..4 semitones (sox `pitch`, duration kept) over 0.8–1.2 s, 0.04 s crossfades
  tremor   6..8 Hz, amplitude depth 0.40..0.55 and pitch depth ±0.7..1.0 semitone, 0.8–1.2 s, 0.1 s fades

Each speaker has a small personal baseline (rate 150–175 wpm, espeak pitch 44–56, level ±1.5 dB), each
utterance a ±1 dB level jitter and a slow (0.3–1.5 Hz) loudness drift of 2 dB RMS, so no absolute threshold
separates the manners or finds the cues for free.

Another synthesiser (`synth="flite"`, `bench make --synth flite`): the same plans spoken by CMU Flite's voices
(FLITE_VOICES) instead of espeak-ng's, the speaker baselines and manners applied with sox `tempo` and `pitch` after
synthesis (espeak rate 160 wpm = tempo 1.0, 15 espeak pitch units = 2.5 semitones), the cues and levels as above.
Models trained on the espeak-ng benchmark are scored on its test split to see whether they learned the cues or the
engine: voices, prosody and artefacts they never heard. Its splits share Flite's four voices; its sentences are the
espeak benchmark's sentences for the same seed. A third engine (`synth="festival"`): Festival's `ked_diphone` voice
(Debian festvox-kdlpc16k, the one US English voice Festival ships that neither espeak-ng nor Flite has), as four
speakers a few semitones apart (FESTIVAL_SHIFTS, sox `pitch`), otherwise as for Flite: a test set for a model
trained on espeak-ng and Flite together.

More voices in training (`train_synth=("flite",)`, `bench make --train-synth flite`): the train split's plans are
also spoken by each engine listed, in the same folder, as clips "train-<engine>-<index>" appended to train.jsonl
(val and test stay the main engine's). Each is exactly the clip `--synth <engine> --splits train` makes for the
same plan, only renamed. Trained on espeak-ng and Flite together, a model scores higher on the espeak test and on
Festival's unheard voice than trained on espeak-ng alone (BENCHMARKS.md #17, session 18).

Splits: train / val / test = 70 / 10 / 20 % of the clips (1000 -> 700 / 100 / 200: a test split of 200 clips, where
one clip is worth 0.5 points; 60 made one clip worth 1.7), with disjoint sentence pools and
disjoint espeak variants (VARIANT_POOLS), so test voices and sentences are never heard in training. Within a
split the 3 manners x 4 cue states are balanced and exactly round(0.35 n) clips carry a distractor.

Output (all written atomically; the generator is deterministic given the seed and the parameters):

  DIR/media/<id>.wav          16 kHz mono PCM-16
  DIR/subtitles/<id>.srt      one cue per utterance, text "Name: sentence" (the manifests carry the same times inline)
  DIR/{train,val,test}.jsonl  manifests (DESIGN.md): id, media, utterances, target_speaker, labels, description
  DIR/meta.json               seed, parameters, voice and sentence pools per split, per-clip cues and media hashes
  DIR/groupings.json          test-set synonym groupings in the openset-synonym.json string format
  DIR/.records/<id>.json      per-clip record with its plan; lets an interrupted run resume
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import shutil
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from acoustemo.data.media import SAMPLE_RATE_HZ
from acoustemo.bench.sentences import NEUTRAL_SENTENCES, SPEAKER_NAMES
from acoustemo.errors import AcoustEmoError, ConfigError

log = logging.getLogger(__name__)

GENERATOR_VERSION = "1.0"
SPLITS = ("train", "val", "test")

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

# Voices: espeak-ng accents x variants. Variants (the voice's pitch range, formants, breathiness) are split
# between train / val / test so test speakers are unheard in training; the accents are shared.
ACCENTS = ("en-us", "en-gb-x-rp", "en", "en-gb-scotland", "en-029", "en-us-nyc")
VARIANT_POOLS = {
    "train": ("m1", "m2", "m4", "m6", "f1", "f4", "klatt", "klatt3", "Andy", "quincy", "steph", "robert"),
    "val": ("m5", "m8", "f5", "klatt4", "Lee"),
    "test": ("m3", "m7", "f2", "f3", "klatt2", "Mike"),
}

# Flite's built-in 16 kHz voices (`flite -lv`): a diphone voice and three statistical-parametric ones, two US male,
# a Scottish male and a US female. `kal` (8 kHz) and `awb_time` (a limited-domain clock voice) are left out.
FLITE_VOICES = ("kal16", "awb", "rms", "slt")
# Festival's voice that no other engine here shares (Flite's kal16 and slt are Festival's kal and slt), shifted
# by these semitones to four speakers: "festival:ked_diphone-3" ... "festival:ked_diphone+6".
FESTIVAL_VOICE = "ked_diphone"
FESTIVAL_SHIFTS = (-3, 0, 3, 6)
FESTIVAL_VOICES = tuple(f"{FESTIVAL_VOICE}{s:+d}" for s in FESTIVAL_SHIFTS)
SYNTHS = ("espeak", "flite", "festival")
ENGINE_VOICES = {"flite": FLITE_VOICES, "festival": FESTIVAL_VOICES}  # the voices of the engines besides espeak-ng
ESPEAK_RATE_WPM = 160  # the espeak rate that Flite's tempo 1.0 stands for
SEMITONES_PER_PITCH_UNIT = 2.5 / 15  # espeak's pitch 0–99 scale around 50, in semitones (MANNERS' comment)

BASE_LEVEL_DBFS = -32.0  # active-speech RMS of a plain utterance; leaves ~20 dB headroom for bursts and peaks
NOISE_DBFS = -66.0  # a faint noise floor so silence is not digital zero
TRIM_BELOW_PEAK_DB = 40.0  # 10 ms frames quieter than the loudest one by this much are silence
LEAD_S, TAIL_S = (0.2, 0.5), (0.2, 0.5)
EDGE_S = 0.2  # a local cue keeps this far from the utterance's edges when it can


class BenchError(AcoustEmoError):
    """The benchmark cannot be generated here (missing tool or voice, unusable output folder)."""


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
        problems += self._train_synth_problems()
        if problems:
            raise ConfigError("benchmark settings: " + "; ".join(problems))

    def _train_synth_problems(self) -> list[str]:
        if isinstance(self.train_synth, str):
            return [f"train_synth={self.train_synth!r} must be a tuple of engine names, e.g. ('flite',)"]
        others = [s for s in SYNTHS if s != self.synth]
        problems = [f"train_synth: unknown engine {e!r}; choose among {', '.join(others)}"
                    for e in self.train_synth if e not in SYNTHS]
        if self.synth in self.train_synth:
            problems.append(f"train_synth repeats the main engine {self.synth!r}, which speaks the train split "
                            f"already; list other engines only ({', '.join(others)})")
        repeated = sorted({e for e in self.train_synth if self.train_synth.count(e) > 1})
        if repeated:
            problems.append(f"train_synth names {', '.join(repeated)} more than once; list each engine once")
        return problems

    def params(self) -> dict:
        d = asdict(self)
        d.pop("workers")
        if d["synth"] == "espeak":  # meta.json of an espeak benchmark stays as it was before Flite existed
            d.pop("synth")
        if not d["train_synth"]:  # ... and of any benchmark made without --train-synth
            d.pop("train_synth")
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


# ---------------------------------------------------------------------------------------------- plans


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
    engine of cfg.train_synth, the train split's plans again with that engine's voices, as "train-<engine>-<index>"."""
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
    return plans


# ---------------------------------------------------------------------------------------------- audio


def _need_tool(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise BenchError(f"{tool} is not installed, and the benchmark needs it: install it (Debian/Ubuntu: "
                         f"apt-get install {package}) and run `acoustemo bench make` again")
    return path


@lru_cache(maxsize=1)
def espeak_variants() -> frozenset[str]:
    """Variant file names espeak-ng knows (`espeak-ng --voices=variant`, last path part of the File column)."""
    out = subprocess.run([_need_tool("espeak-ng", "espeak-ng"), "--voices=variant"], capture_output=True,
                         text=True, check=True).stdout
    return frozenset(line.split()[4].split("/")[-1] for line in out.splitlines()[1:] if len(line.split()) >= 5)


@lru_cache(maxsize=1)
def flite_voices() -> frozenset[str]:
    """Voice names this Flite knows (`flite -lv`: "Voices available: kal awb_time kal16 awb rms slt")."""
    out = subprocess.run([_need_tool("flite", "flite"), "-lv"], capture_output=True, text=True, check=True).stdout
    return frozenset(out.split(":", 1)[-1].split())


def check_tools(synth: str = "espeak") -> None:
    """Fail early, naming the package or voice to install, instead of failing inside a worker."""
    _need_tool("sox", "sox")
    if synth == "flite":
        missing = sorted(set(FLITE_VOICES) - flite_voices())
        if missing:
            raise BenchError(f"flite here lacks the voices {missing} that `--synth flite` uses; install flite 2.x "
                             "with its built-in voices (Debian: apt-get install flite)")
        return
    if synth == "festival":
        _need_tool("text2wave", "festival")
        proc = subprocess.run([_need_tool("festival", "festival"), "-b", f"(voice_{FESTIVAL_VOICE})"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise BenchError(f"festival here lacks the voice {FESTIVAL_VOICE!r} that `--synth festival` uses; "
                             "install it (Debian: apt-get install festival festvox-kdlpc16k)")
        return
    known = espeak_variants()
    missing = sorted({v for pool in VARIANT_POOLS.values() for v in pool} - known)
    if missing:
        raise BenchError(f"espeak-ng here lacks the voice variants {missing} that the benchmark's voice pools use; "
                         "install espeak-ng >= 1.51 with its data (Debian: apt-get install espeak-ng espeak-ng-data)")


def synthesize(text: str, voice: str, rate_wpm: int, pitch: int) -> np.ndarray:
    """Speech at 16 kHz, float32, with the engine's leading/trailing silence trimmed off: espeak-ng's, or Flite's
    for a voice named "flite:<name>" (espeak's rate and pitch then applied with sox, see synthesize_flite)."""
    import soundfile as sf

    if voice.startswith("flite:"):
        return synthesize_flite(text, voice.removeprefix("flite:"), rate_wpm, pitch)
    if voice.startswith("festival:"):
        return synthesize_festival(text, voice.removeprefix("festival:"), rate_wpm, pitch)
    proc = subprocess.run([_need_tool("espeak-ng", "espeak-ng"), "-v", voice, "-s", str(rate_wpm), "-p", str(pitch),
                           "--stdout", text], capture_output=True)
    if proc.returncode != 0 or not proc.stdout:
        raise BenchError(f"espeak-ng could not speak with voice {voice!r}: {proc.stderr.decode(errors='replace').strip()}"
                         " — check `espeak-ng --voices=en` and `--voices=variant` list it")
    return _engine_audio(*sf.read(io.BytesIO(proc.stdout), dtype="float64"))


def _engine_audio(wav: np.ndarray, sr: int) -> np.ndarray:
    """An engine's output at 16 kHz, float32, its leading/trailing silence trimmed off."""
    from scipy.signal import resample_poly

    if sr != SAMPLE_RATE_HZ:
        g = math.gcd(sr, SAMPLE_RATE_HZ)
        wav = resample_poly(wav, SAMPLE_RATE_HZ // g, sr // g)
    return trim_silence(wav.astype(np.float32))


def synthesize_flite(text: str, voice: str, rate_wpm: int, pitch: int) -> np.ndarray:
    """Flite speech with espeak's rate and pitch (_engine_wav); silence trimmed."""
    return _engine_wav("flite", [_need_tool("flite", "flite"), "-voice", voice, "-t", text, "-o", "{out}"],
                       None, voice, rate_wpm, pitch, "check `flite -lv` lists it")


def synthesize_festival(text: str, voice: str, rate_wpm: int, pitch: int) -> np.ndarray:
    """Festival speech (voice "<name><shift>", e.g. "ked_diphone+3": Festival's voice, `shift` semitones higher)
    with espeak's rate and pitch (_engine_wav); silence trimmed."""
    name = voice.rstrip("+-0123456789")
    shift = int(voice[len(name):] or 0)
    return _engine_wav("festival", [_need_tool("text2wave", "festival"), "-eval", f"(voice_{name})", "-o", "{out}"],
                       text, voice, rate_wpm, pitch, "install it (Debian: festvox-kdlpc16k)", shift)


def _engine_wav(engine: str, cmd: list[str], stdin: str | None, voice: str, rate_wpm: int, pitch: int,
                fix: str, shift_semitones: float = 0.0) -> np.ndarray:
    """Run an engine's command (its "{out}" argument = the wav it writes; `stdin` = the text, when it reads it
    there), then espeak's rate and pitch with sox: `tempo` rate_wpm / ESPEAK_RATE_WPM (duration scaled, pitch
    kept), then `pitch` (pitch - 50) x SEMITONES_PER_PITCH_UNIT + shift_semitones (duration kept)."""
    import tempfile

    import soundfile as sf

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out.wav"
        proc = subprocess.run([str(path) if a == "{out}" else a for a in cmd], capture_output=True,
                              input=None if stdin is None else stdin.encode())
        if proc.returncode != 0 or not path.exists() or b"ERROR" in proc.stderr:
            raise BenchError(f"{engine} could not speak with voice {voice!r}: "
                             f"{proc.stderr.decode(errors='replace').strip()} — {fix}")
        wav = _engine_audio(*sf.read(path, dtype="float64"))
    cents = ((pitch - 50) * SEMITONES_PER_PITCH_UNIT + shift_semitones) * 100
    return trim_silence(sox_effects(wav, ["tempo", "-s", f"{rate_wpm / ESPEAK_RATE_WPM:.4f}", "pitch", f"{cents:.1f}"],
                                    same_length=False))


def _frame_db(wav: np.ndarray, frame: int) -> np.ndarray:
    n = len(wav) // frame
    frames = wav[: n * frame].reshape(n, frame).astype(np.float64)
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)


def trim_silence(wav: np.ndarray) -> np.ndarray:
    """Cut 10 ms frames quieter than the loudest by TRIM_BELOW_PEAK_DB from both ends (keeping 10 ms of margin)."""
    frame = SAMPLE_RATE_HZ // 100
    db = _frame_db(wav, frame)
    loud = np.flatnonzero(db > db.max() - TRIM_BELOW_PEAK_DB)
    if len(loud) == 0:
        return wav
    a, b = max(0, (loud[0] - 1) * frame), min(len(wav), (loud[-1] + 2) * frame)
    return wav[a:b]


def active_rms_db(wav: np.ndarray) -> float:
    """RMS in dB over the 10 ms frames within 30 dB of the loudest (speech, not the pauses between words)."""
    db = _frame_db(wav, SAMPLE_RATE_HZ // 100)
    active = db[db > db.max() - 30.0]
    return float(10 * np.log10(np.mean(10 ** (active / 10))))


def span_window(n: int, start_s: float, end_s: float, ramp_s: float) -> np.ndarray:
    """(n,) weights: 1 inside [start_s, end_s], raised-cosine ramps of ramp_s just inside its edges, 0 outside."""
    t = np.arange(n) / SAMPLE_RATE_HZ
    up = np.clip((t - start_s) / ramp_s, 0, 1)
    down = np.clip((end_s - t) / ramp_s, 0, 1)
    return (0.5 - 0.5 * np.cos(np.pi * np.minimum(up, down))).astype(np.float64)


def apply_drift(wav: np.ndarray, drift: list[list[float]]) -> np.ndarray:
    """Slow natural loudness changes within an utterance, so a burst is not the only loudness change in it."""
    t = np.arange(len(wav)) / SAMPLE_RATE_HZ
    gain_db = sum(a * np.sin(2 * np.pi * f * t + ph) for f, ph, a in drift)
    return (wav * 10 ** (gain_db / 20)).astype(np.float32)


def apply_burst(wav: np.ndarray, start_s: float, end_s: float, gain_db: float) -> np.ndarray:
    w = span_window(len(wav), start_s, end_s, 0.1)
    return (wav * 10 ** (gain_db * w / 20)).astype(np.float32)


def sox_effects(wav: np.ndarray, effects: list[str], same_length: bool = True) -> np.ndarray:
    """`wav` through sox's effect chain (16 kHz float32 raw in and out); same_length pads / cuts to len(wav)."""
    fmt = ["-t", "raw", "-e", "floating-point", "-b", "32", "-r", str(SAMPLE_RATE_HZ), "-c", "1"]
    proc = subprocess.run([_need_tool("sox", "sox"), "-V1", *fmt, "-", *fmt, "-", *effects],
                          input=wav.astype(np.float32).tobytes(), capture_output=True)
    if proc.returncode != 0:
        raise BenchError(f"sox {' '.join(effects)} failed: {proc.stderr.decode(errors='replace').strip()}")
    out = np.frombuffer(proc.stdout, dtype=np.float32)
    return np.pad(out, (0, max(0, len(wav) - len(out))))[: len(wav)] if same_length else out.copy()


def sox_pitch(wav: np.ndarray, semitones: float) -> np.ndarray:
    """The whole signal shifted by `semitones` with sox's `pitch` (WSOLA; duration and timing kept)."""
    return sox_effects(wav, ["pitch", f"{semitones * 100:.1f}"])


def apply_jump(wav: np.ndarray, start_s: float, end_s: float, semitones: float) -> np.ndarray:
    """Raise the pitch inside the span, crossfading (40 ms) into and out of a pitch-shifted copy."""
    w = span_window(len(wav), start_s, end_s, 0.04)
    return ((1 - w) * wav + w * sox_pitch(wav, semitones)).astype(np.float32)


def apply_tremor(wav: np.ndarray, start_s: float, end_s: float, rate_hz: float, depth: float,
                 semitones: float) -> np.ndarray:
    """Amplitude (1 ± depth) and pitch (± semitones, by a modulated delay line) wobble at rate_hz inside the span."""
    n = len(wav)
    w = span_window(n, start_s, end_s, 0.1)
    t = np.arange(n) / SAMPLE_RATE_HZ
    phase = 2 * np.pi * rate_hz * (t - start_s)
    # A delay d(t) = D sin(phase) resamples by 1 - d'(t): pitch swings by ±(2π f D), so D sets the semitones.
    delay_s = (2 ** (semitones / 12) - 1) / (2 * np.pi * rate_hz) * w * np.sin(phase)
    shifted = np.interp(t - delay_s, t, wav.astype(np.float64))
    return (shifted * (1 + depth * w * np.sin(phase))).astype(np.float32)


def _place_cue(cue: dict, durations: list[float], turn_ids: list[int]) -> tuple[int, float, float]:
    """(turn, start_s, end_s within the turn): prefer the speaker's turns long enough for the cue and edges."""
    long_enough = [k for k in turn_ids if durations[k] >= cue["length_s"] + 2 * EDGE_S]
    pool = long_enough or turn_ids
    k = pool[min(int(cue["turn_choice"] * len(pool)), len(pool) - 1)]
    dur = durations[k]
    length = min(cue["length_s"], max(0.5, dur - 2 * EDGE_S), 0.8 * dur)
    edge = min(EDGE_S, (dur - length) / 2)
    start = edge + cue["position"] * (dur - length - 2 * edge)
    return k, start, start + length


def render_clip(plan: dict) -> tuple[np.ndarray, dict]:
    """The clip's waveform (float32, 16 kHz) and its record: utterance times and the cues placed on them."""
    waves = []
    for turn in plan["turns"]:
        w = synthesize(turn["text"], turn["voice"], turn["rate_wpm"], turn["pitch"])
        target_db = BASE_LEVEL_DBFS + turn["level_db"]
        w = w * 10 ** ((target_db - active_rms_db(w)) / 20)
        waves.append(apply_drift(w, turn["drift"]))
    durations = [len(w) / SAMPLE_RATE_HZ for w in waves]
    placed = []
    for cue in plan["cues"]:
        turn_ids = [i for i, t in enumerate(plan["turns"]) if t["speaker"] == cue["speaker"]]
        k, a, b = _place_cue(cue, durations, turn_ids)
        if cue["type"] == "burst":
            waves[k] = apply_burst(waves[k], a, b, cue["gain_db"])
        elif cue["type"] == "jump":
            waves[k] = apply_jump(waves[k], a, b, cue["semitones"])
        else:
            waves[k] = apply_tremor(waves[k], a, b, cue["rate_hz"], cue["depth"], cue["semitones"])
        placed.append((cue, k, a, b))
    parts, utterances, t = [np.zeros(round(plan["lead_s"] * SAMPLE_RATE_HZ), np.float32)], [], plan["lead_s"]
    starts = []
    for i, (turn, w) in enumerate(zip(plan["turns"], waves)):
        start = sum(len(p) for p in parts) / SAMPLE_RATE_HZ
        starts.append(start)
        utterances.append({"start": round(start, 3), "end": round(start + len(w) / SAMPLE_RATE_HZ, 3),
                           "speaker": turn["speaker"], "text": turn["text"]})
        gap = plan["gaps_s"][i] if i < len(plan["gaps_s"]) else plan["tail_s"]
        parts += [w, np.zeros(round(gap * SAMPLE_RATE_HZ), np.float32)]
    audio = np.concatenate(parts).astype(np.float64)
    audio += np.random.default_rng(plan["noise_seed"]).standard_normal(len(audio)) * 10 ** (NOISE_DBFS / 20)
    peak = float(np.abs(audio).max())
    scale_db = 0.0 if peak <= 0.99 else 20 * math.log10(0.99 / peak)  # rare: keep bursts from clipping
    audio *= 10 ** (scale_db / 20)
    cues = [{"type": c["type"], "label": CUE_LABELS[c["type"]], "speaker": c["speaker"], "distractor": c["distractor"],
             "utterance": k, "start": round(starts[k] + a, 3), "end": round(starts[k] + b, 3),
             **{key: c[key] for key in ("gain_db", "semitones", "rate_hz", "depth") if key in c}}
            for c, k, a, b in placed]
    record = {"id": plan["id"], "duration_s": round(len(audio) / SAMPLE_RATE_HZ, 3), "utterances": utterances,
              "cues": cues, "scale_db": round(scale_db, 3)}
    return audio.astype(np.float32), record


# ---------------------------------------------------------------------------------------------- gold


def gold_labels(manner: str, cues: list[dict]) -> list[str]:
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


# ---------------------------------------------------------------------------------------------- files


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _srt_time(t: float) -> str:
    ms = round(t * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def to_srt(utterances: list[dict]) -> str:
    return "".join(f"{i}\n{_srt_time(u['start'])} --> {_srt_time(u['end'])}\n{u['speaker']}: {u['text']}\n\n"
                   for i, u in enumerate(utterances, 1))


def _wav_bytes(audio: np.ndarray) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, audio, SAMPLE_RATE_HZ, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False)


def _reusable(out_dir: Path, plan: dict) -> dict | None:
    """The clip's saved record when its plan is unchanged and its media still hash to the recorded digest."""
    rec_path = out_dir / ".records" / f"{plan['id']}.json"
    try:
        record = json.loads(rec_path.read_text())
        wav = (out_dir / record["media"]).read_bytes()
    except (OSError, ValueError, KeyError):
        return None
    same = _canonical(record.get("plan")) == _canonical(plan) and record.get("generator_version") == GENERATOR_VERSION
    ok = same and hashlib.sha256(wav).hexdigest() == record.get("sha256") and (out_dir / record["subtitles"]).exists()
    return record if ok else None


def make_clip(out_dir: str, plan: dict) -> dict:
    """Render one planned clip and write its wav, SRT and record (a worker's unit of work)."""
    out = Path(out_dir)
    audio, record = render_clip(plan)
    wav = _wav_bytes(audio)
    media, subs = f"media/{plan['id']}.wav", f"subtitles/{plan['id']}.srt"
    _write_atomic(out / media, wav)
    _write_atomic(out / subs, to_srt(record["utterances"]).encode())
    record.update(media=media, subtitles=subs, sha256=hashlib.sha256(wav).hexdigest(),
                  generator_version=GENERATOR_VERSION, plan=plan)
    # Key order kept (not sorted): a reused record must give the same manifest bytes as a fresh one.
    _write_atomic(out / ".records" / f"{plan['id']}.json", json.dumps(record, ensure_ascii=False).encode())
    return record


def _manifest_line(plan: dict, record: dict) -> dict:
    target = plan["target_speaker"]
    other = next(s for s in plan["speakers"] if s != target)
    return {"id": plan["id"], "media": record["media"], "utterances": record["utterances"], "target_speaker": target,
            "labels": gold_labels(plan["manner"], record["cues"]),
            "description": describe(target, other, plan["manner"], record["cues"])}


@dataclass
class BenchSummary:
    out_dir: Path
    seed: int
    counts: dict[str, int]
    made: int
    reused: int
    seconds: float

    @property
    def seconds_per_clip(self) -> float:
        return self.seconds / max(1, self.made)


def make_benchmark(out_dir: str | os.PathLike, cfg: BenchConfig = BenchConfig(),
                   splits: tuple[str, ...] = SPLITS) -> BenchSummary:
    """Generate (or finish generating) the benchmark in `out_dir`; see the module docstring for the layout.

    splits: render and write only these splits (e.g. ("test",) for a held-out `synth="flite"` test set); the clips
    are the same as in a whole run with the same settings."""
    out = Path(out_dir)
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown or not splits:
        raise ConfigError(f"splits {list(splits)}: choose among {', '.join(SPLITS)}")
    if cfg.train_synth and "train" not in splits:
        raise ConfigError(f"train_synth {list(cfg.train_synth)} speaks the train split's plans, but splits "
                          f"{list(splits)} leave train out; add train to the splits or drop --train-synth")
    if out.exists() and not out.is_dir():
        raise BenchError(f"{out} is a file; `--out` must be a folder (new or from an earlier `bench make`)")
    for engine in (cfg.synth, *cfg.train_synth):
        check_tools(engine)
    for sub in ("media", "subtitles", ".records"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    plans = [p for p in plan_benchmark(cfg) if p["split"] in splits]
    t0 = time.perf_counter()
    records = {p["id"]: r for p in plans if (r := _reusable(out, p)) is not None}
    todo = [p for p in plans if p["id"] not in records]
    log.info("bench make: seed %d, %d clips (%d already made), %d worker(s)", cfg.seed, len(plans), len(records),
             cfg.workers)
    if cfg.workers == 1 or len(todo) <= 1:
        made = [make_clip(str(out), p) for p in todo]
    else:
        with ProcessPoolExecutor(cfg.workers, mp_context=get_context("spawn")) as pool:
            made = list(pool.map(make_clip, [str(out)] * len(todo), todo, chunksize=4))
    records.update({r["id"]: r for r in made})
    seconds = time.perf_counter() - t0
    _write_outputs(out, cfg, plans, records)
    counts = {k: sum(p["split"] == k for p in plans) for k in SPLITS if k in splits}
    return BenchSummary(out, cfg.seed, counts, len(todo), len(plans) - len(todo), seconds)


def _write_outputs(out: Path, cfg: BenchConfig, plans: list[dict], records: dict[str, dict]) -> None:
    lines = {s: [] for s in SPLITS if any(p["split"] == s for p in plans)}
    for p in plans:
        lines[p["split"]].append(_manifest_line(p, records[p["id"]]))
    for split, rows in lines.items():
        _write_atomic(out / f"{split}.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode())
    test_gold = {r["id"]: r["labels"] for r in lines.get("test", [])}
    _write_atomic(out / "groupings.json", (json.dumps(bench_groupings(test_gold), indent=1) + "\n").encode())
    _write_atomic(out / "meta.json", (json.dumps(_meta(cfg, plans, records, lines), indent=1, ensure_ascii=False)
                                      + "\n").encode())


def _meta(cfg: BenchConfig, plans: list[dict], records: dict[str, dict], lines: dict[str, list[dict]]) -> dict:
    sentences = split_sentences(cfg.seed, cfg.val_fraction, cfg.test_fraction)
    splits = {}
    for split in lines:
        counts: dict[str, int] = {}
        for row in lines[split]:
            for label in row["labels"]:
                counts[label] = counts.get(label, 0) + 1
        n_distract = sum(any(c["distractor"] for c in records[r["id"]]["cues"]) for r in lines[split])
        splits[split] = {"clips": len(lines[split]), "label_counts": dict(sorted(counts.items())),
                         "clips_with_distractor": n_distract,
                         "variants": list(ENGINE_VOICES.get(cfg.synth, VARIANT_POOLS[split])),
                         "sentences": sentences[split]}
    if cfg.train_synth and "train" in splits:  # the other engines that spoke the train plans, with their voices
        splits["train"]["train_synth"] = {e: list(ENGINE_VOICES.get(e, VARIANT_POOLS["train"]))
                                          for e in cfg.train_synth}
    clips = {}
    for p in plans:
        r = records[p["id"]]
        clips[p["id"]] = {"split": p["split"], "media": r["media"], "subtitles": r["subtitles"], "sha256": r["sha256"],
                          "duration_s": r["duration_s"], "target_speaker": p["target_speaker"], "manner": p["manner"],
                          "speakers": p["speakers"], "cues": r["cues"], "scale_db": r["scale_db"]}
    return {"generator": "acoustemo.bench.make", "generator_version": GENERATOR_VERSION, "seed": cfg.seed,
            "params": cfg.params(), "manners": MANNERS, "cue_labels": CUE_LABELS, "neutral_label": NEUTRAL_LABEL,
            "accents": list(ACCENTS) if "espeak" in (cfg.synth, *cfg.train_synth) else [],
            "base_level_dbfs": BASE_LEVEL_DBFS, "noise_dbfs": NOISE_DBFS,
            "synonyms": {k: list(v) for k, v in SYNONYMS.items()}, "splits": splits, "clips": clips}
