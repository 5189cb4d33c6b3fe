"""The acoustic-cue benchmark: two-speaker TTS dialogues whose emotion can only be heard (`acoustemo bench make`).

Every clip is 2–4 alternating utterances of emotionally neutral text (`sentences.py`) spoken by two speakers
drawn from the SAME espeak-ng voice pool (half the time the very same voice), so neither the words nor the
voice identity says who carries a cue; only the subtitle times do. The labels belong to the target speaker:

  manner (clip-wide, all of the target's utterances)   sad = slow + low + quiet, excited = fast + high + loud
  local cue (~1 s inside one of the target's utterances) tremor -> anxious, loud burst -> angry,
                                                          pitch jump -> surprised
  distractor: the same local cues planted on the OTHER speaker in ~35% of clips, never labelled.

Gold labels are [manner label] + [cue label], or ["neutral"] (gold.py). Cue strengths are moderate on purpose: a
+14 dB burst or a +7 semitone jump is found by one threshold (benchmarks/bench_cues.py measures the AUCs):

  sad      espeak rate x0.80, pitch -15 (about -2.4 semitones), level -5 dB
  excited  espeak rate x1.20, pitch +15 (about +2.6 semitones), level +4 dB
  burst, jump, tremor: see cues.py

Each speaker has a small personal baseline (rate 150–175 wpm, espeak pitch 44–56, level ±1.5 dB), each
utterance a ±1 dB level jitter and a slow (0.3–1.5 Hz) loudness drift of 2 dB RMS, so no absolute threshold
separates the manners or finds the cues for free.

The modules, in the order a clip is made: plan.py (BenchConfig, splits, one plan per clip), synth.py (the speech
engines), cues.py (drift and the local cues), gold.py (labels, explanations, synonym groups), and this module,
which renders the plans and writes the folder.

Another synthesiser (`synth="flite"`, `bench make --synth flite`): the same plans spoken by CMU Flite's voices
(synth.FLITE_VOICES) instead of espeak-ng's, the cues and levels as above. Models trained on the espeak-ng
benchmark are scored on its test split to see whether they learned the cues or the engine: voices, prosody and
artefacts they never heard. Its splits share Flite's four voices; its sentences are the espeak benchmark's
sentences for the same seed. A third engine (`synth="festival"`): Festival's `ked_diphone` voice as four speakers,
otherwise as for Flite: a test set for a model trained on espeak-ng and Flite together.

More voices in training (`train_synth=("flite",)`, `bench make --train-synth flite`): the train split's plans are
also spoken by each engine listed, in the same folder, as clips "train-<engine>-<index>" appended to train.jsonl
(val and test stay the main engine's). Each is exactly the clip `--synth <engine> --splits train` makes for the
same plan, only renamed. Trained on espeak-ng and Flite together, a model scores higher on the espeak test and on
Festival's unheard voice than trained on espeak-ng alone (BENCHMARKS.md, issue #17).

Every split in other engines (`engines=("flite", "festival")`, `bench make --engines flite,festival`): each split's
plans are also spoken by each engine listed, in the same folder, as clips "<split>-<engine>-<index>" in their own
manifests "<split>-<engine>.jsonl" (train.jsonl, val.jsonl and test.jsonl stay the main engine's). Each clip is
exactly the clip `--synth <engine>` makes for the same plan, only renamed. One folder then holds every split in
every engine: `bench run` scores each engine's test split beside the main one, and `bench run
--leave-one-engine-out` trains on all engines but one and tests on that one (bench/engines.py).

Output (all written atomically; the generator is deterministic given the seed and the parameters):

  DIR/media/<id>.wav          16 kHz mono PCM-16
  DIR/subtitles/<id>.srt      one cue per utterance, text "Name: sentence" (the manifests carry the same times inline)
  DIR/{train,val,test}.jsonl  manifests (DESIGN.md): id, media, utterances, target_speaker, labels, description
  DIR/<split>-<engine>.jsonl  the same for each engine of --engines
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
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from acoustemo.bench.cues import apply_cue, apply_drift, place_cue
from acoustemo.bench.gold import CUE_LABELS, MANNERS, NEUTRAL_LABEL, SYNONYMS, bench_groupings, describe, gold_labels
from acoustemo.bench.plan import SPLITS, BenchConfig, plan_benchmark, split_sentences
from acoustemo.bench.synth import (ACCENTS, ENGINE_VOICES, VARIANT_POOLS, BenchError, active_rms_db, check_tools,
                                   synthesize)
from acoustemo.data.media import SAMPLE_RATE_HZ
from acoustemo.errors import ConfigError

log = logging.getLogger(__name__)

GENERATOR_VERSION = "1.0"
BASE_LEVEL_DBFS = -32.0  # active-speech RMS of a plain utterance; leaves ~20 dB headroom for bursts and peaks
NOISE_DBFS = -66.0  # a faint noise floor so silence is not digital zero


def render_clip(plan: dict) -> tuple[np.ndarray, dict]:
    """The clip's waveform (float32, 16 kHz) and its record: utterance times and the cues placed on them."""
    waves = [_spoken_turn(turn) for turn in plan["turns"]]
    durations = [len(w) / SAMPLE_RATE_HZ for w in waves]
    placed = []
    for cue in plan["cues"]:
        turn_ids = [i for i, t in enumerate(plan["turns"]) if t["speaker"] == cue["speaker"]]
        k, a, b = place_cue(cue, durations, turn_ids)
        waves[k] = apply_cue(waves[k], cue, a, b)
        placed.append((cue, k, a, b))
    audio, utterances, starts = _mix(plan, waves)
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


def _spoken_turn(turn: dict) -> np.ndarray:
    """One turn spoken, brought to its planned level (active-speech RMS) and given its slow loudness drift."""
    w = synthesize(turn["text"], turn["voice"], turn["rate_wpm"], turn["pitch"])
    target_db = BASE_LEVEL_DBFS + turn["level_db"]
    w = w * 10 ** ((target_db - active_rms_db(w)) / 20)
    return apply_drift(w, turn["drift"])


def _mix(plan: dict, waves: list[np.ndarray]) -> tuple[np.ndarray, list[dict], list[float]]:
    """(audio as float64 with the noise floor, utterances, their start times in s): lead silence, then each turn
    and the gap after it (the tail after the last one)."""
    parts, utterances, starts = [np.zeros(round(plan["lead_s"] * SAMPLE_RATE_HZ), np.float32)], [], []
    for i, (turn, w) in enumerate(zip(plan["turns"], waves)):
        start = sum(len(p) for p in parts) / SAMPLE_RATE_HZ
        starts.append(start)
        utterances.append({"start": round(start, 3), "end": round(start + len(w) / SAMPLE_RATE_HZ, 3),
                           "speaker": turn["speaker"], "text": turn["text"]})
        gap = plan["gaps_s"][i] if i < len(plan["gaps_s"]) else plan["tail_s"]
        parts += [w, np.zeros(round(gap * SAMPLE_RATE_HZ), np.float32)]
    audio = np.concatenate(parts).astype(np.float64)
    audio += np.random.default_rng(plan["noise_seed"]).standard_normal(len(audio)) * 10 ** (NOISE_DBFS / 20)
    return audio, utterances, starts


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
    for engine in (cfg.synth, *cfg.train_synth, *cfg.engines):
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
    counts = {k: sum(manifest_name(p) == k for p in plans) for k in dict.fromkeys(map(manifest_name, plans))}
    return BenchSummary(out, cfg.seed, counts, len(todo), len(plans) - len(todo), seconds)


def manifest_name(plan: dict) -> str:
    """The manifest a planned clip goes to (without .jsonl): its split, or "<split>-<engine>" for --engines."""
    return f"{plan['split']}-{plan['engine']}" if "engine" in plan else plan["split"]


def _write_outputs(out: Path, cfg: BenchConfig, plans: list[dict], records: dict[str, dict]) -> None:
    lines = {s: [] for s in SPLITS if any(p["split"] == s for p in plans)}
    for p in plans:
        lines.setdefault(manifest_name(p), []).append(_manifest_line(p, records[p["id"]]))
    for split, rows in lines.items():
        _write_atomic(out / f"{split}.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode())
    test_gold = {r["id"]: r["labels"] for e in ("", *(f"-{e}" for e in cfg.engines)) for r in lines.get(f"test{e}", [])}
    _write_atomic(out / "groupings.json", (json.dumps(bench_groupings(test_gold), indent=1) + "\n").encode())
    _write_atomic(out / "meta.json", (json.dumps(_meta(cfg, plans, records, lines), indent=1, ensure_ascii=False)
                                      + "\n").encode())


def _meta(cfg: BenchConfig, plans: list[dict], records: dict[str, dict], lines: dict[str, list[dict]]) -> dict:
    sentences = split_sentences(cfg.seed, cfg.val_fraction, cfg.test_fraction)
    splits = {}
    for name in lines:
        split, _, engine = name.partition("-")
        counts: dict[str, int] = {}
        for row in lines[name]:
            for label in row["labels"]:
                counts[label] = counts.get(label, 0) + 1
        n_distract = sum(any(c["distractor"] for c in records[r["id"]]["cues"]) for r in lines[name])
        splits[name] = {"clips": len(lines[name]), "label_counts": dict(sorted(counts.items())),
                        "clips_with_distractor": n_distract,
                        "variants": list(ENGINE_VOICES.get(engine or cfg.synth, VARIANT_POOLS[split])),
                        "sentences": sentences[split], **({"engine": engine} if engine else {})}
    if cfg.train_synth and "train" in splits:  # the other engines that spoke the train plans, with their voices
        splits["train"]["train_synth"] = {e: list(ENGINE_VOICES.get(e, VARIANT_POOLS["train"]))
                                          for e in cfg.train_synth}
    clips = {}
    for p in plans:
        r = records[p["id"]]
        clips[p["id"]] = {"split": p["split"], "media": r["media"], "subtitles": r["subtitles"], "sha256": r["sha256"],
                          "duration_s": r["duration_s"], "target_speaker": p["target_speaker"], "manner": p["manner"],
                          "speakers": p["speakers"], "cues": r["cues"], "scale_db": r["scale_db"],
                          **({"engine": p["engine"]} if "engine" in p else {})}
    return {"generator": "acoustemo.bench.make", "generator_version": GENERATOR_VERSION, "seed": cfg.seed,
            "params": cfg.params(), "manners": MANNERS, "cue_labels": CUE_LABELS, "neutral_label": NEUTRAL_LABEL,
            "accents": list(ACCENTS) if "espeak" in (cfg.synth, *cfg.train_synth, *cfg.engines) else [],
            "base_level_dbfs": BASE_LEVEL_DBFS, "noise_dbfs": NOISE_DBFS,
            "synonyms": {k: list(v) for k, v in SYNONYMS.items()}, "splits": splits, "clips": clips}
