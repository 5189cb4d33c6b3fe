"""Shared fixtures: real media made with espeak-ng, sox and ffmpeg (no mocks)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from acoustemo.bench import speech
from acoustemo.data.media import SAMPLE_RATE_HZ

SR = SAMPLE_RATE_HZ  # test_cache and test_features import it from here


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (Debian: apt-get install {tool}); .ci/run installs it")


def speak(text: str, path: Path, **voice) -> np.ndarray:
    """acoustemo.bench.speech.speak (espeak-ng to a 16 kHz wav), skipping the test where espeak-ng is missing."""
    _need("espeak-ng")
    return speech.speak(text, path, **voice)


def make_dialogue(folder: Path, lines: list[tuple[str, str, str]], **timing):
    """acoustemo.bench.speech.make_dialogue (dialogue.wav, utterances), skipping the test where espeak-ng is missing."""
    _need("espeak-ng")
    return speech.make_dialogue(folder, lines, **timing)


DIALOGUE = [
    ("Anna", "en-us", "I put the keys on the kitchen table this morning."),
    ("Ben", "en-us+m3", "Then they should still be there, unless someone moved them."),
    ("Anna", "en-us", "I looked twice and they are gone."),
]


@pytest.fixture(scope="session")
def dialogue(tmp_path_factory):
    """A real three-utterance, two-speaker dialogue: (wav_path, utterances)."""
    return make_dialogue(tmp_path_factory.mktemp("dialogue"), DIALOGUE)


@pytest.fixture(scope="session")
def dialogue_video(tmp_path_factory, dialogue):
    """The dialogue muxed with a moving test pattern into an mp4 (H.264 + AAC)."""
    _need("ffmpeg")
    wav, utts = dialogue
    out = tmp_path_factory.mktemp("video") / "dialogue.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10", "-i", str(wav),
         "-shortest", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(out)],
        check=True,
    )
    return out, utts


LONG_VOICES = {"Anna": "en-us", "Ben": "en-us+m3", "Cleo": "en-gb-x-rp+f2"}
# 40 utterances in turns of 1-6 (Ben's 6-utterance turn runs past a 20 s span and must be cut inside)
LONG_SPEAKERS = ("Anna Anna Ben Anna Cleo Cleo Ben Ben Ben Ben Ben Ben Anna Cleo Anna Anna Anna Ben Cleo Cleo "
                 "Anna Ben Ben Anna Cleo Anna Ben Ben Cleo Cleo Cleo Anna Ben Anna Anna Cleo Ben Anna Cleo Anna").split()


@pytest.fixture(scope="session")
def long_dialogue(tmp_path_factory):
    """A real multi-minute (> 2 min), 40-utterance, three-speaker dialogue: (wav_path, srt_path, [Utterance])."""
    from acoustemo.bench.sentences import NEUTRAL_SENTENCES
    from acoustemo.data.segments import Utterance

    lines = [(s, LONG_VOICES[s], NEUTRAL_SENTENCES[i]) for i, s in enumerate(LONG_SPEAKERS)]
    root = tmp_path_factory.mktemp("long")
    wav, utts = make_dialogue(root, lines, gap_s=0.5)
    wav = wav.rename(root / "long_dialogue.wav")  # its own clip id in the feature cache (ids are media stems)
    srt = root / "dialogue.srt"
    srt.write_text("".join(f"{i + 1}\n{srt_time(u['start'])} --> {srt_time(u['end'])}\n{u['speaker']}: {u['text']}\n\n"
                           for i, u in enumerate(utts)))
    return wav, srt, [Utterance.from_json(u) for u in utts]


@pytest.fixture()
def write_json():
    def _write(path: Path, obj) -> Path:
        path.write_text(json.dumps(obj, indent=1))
        return path

    return _write


def srt_time(seconds: float) -> str:
    """SRT's HH:MM:SS,mmm."""
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


@pytest.fixture(scope="session")
def write_srt():
    """write_srt(path, utterances as dicts) -> path: the utterances as SRT cues "speaker: text"."""

    def _write(path: Path, utts: list[dict]) -> Path:
        path.write_text("".join(f"{i}\n{srt_time(u['start'])} --> {srt_time(u['end'])}\n{u['speaker']}: {u['text']}\n\n"
                                for i, u in enumerate(utts, 1)))
        return path

    return _write


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one thread is fastest, and on a busy shared CPU several threads spin against each other.
    Modules opt in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def untrained_predictor(features_dir: Path):
    """The real prediction stack (default encoders, feature cache, predict_clip) on an untrained debug model:
    its answers are noise, the plumbing is real."""
    import torch

    from acoustemo.config import ModelConfig
    from acoustemo.features.registry import get_acoustic_encoder
    from acoustemo.features.cache import FeatureCache
    from acoustemo.predictor import Predictor
    from acoustemo.model.acoustemo import AcoustEmoModel

    torch.manual_seed(0)
    encoder = get_acoustic_encoder("default")
    model = AcoustEmoModel(ModelConfig.preset("debug", acoustic_streams=[tuple(s) for s in encoder.streams])).eval()
    return Predictor(model, Path("debug-untrained"), FeatureCache(features_dir), encoder, None, max_new_tokens=24)


@pytest.fixture(scope="session")
def debug_model(tmp_path_factory):
    """`untrained_predictor` built once per test run (test_serve.py and test_browser.py share it)."""
    return untrained_predictor(tmp_path_factory.mktemp("features"))


# ------------------------------------------------------------------ synthetic model inputs (test_model, test_decoding)

RATE_HZ = 50.0


def make_clip(i: int, spans: list[tuple[float, float]], labels=("happy",), description=""):
    from acoustemo.data.segments import Clip, Utterance

    utts = [Utterance(a, b, "AB"[j % 2], f"u{j}") for j, (a, b) in enumerate(spans)]
    return Clip(f"clip{i}", f"clip{i}.wav", utts, "A", list(labels), description)


def features_for(clips, cfg, seed=0, visual_dim=None):
    """Random acoustic (and visual) features per clip at RATE_HZ: loaders for AcoustEmoDataset."""
    import math

    from acoustemo.features.base import Features

    acoustic, visual = {}, {}
    for c in clips:
        rng = np.random.default_rng([seed, int(c.id.removeprefix("clip"))])  # a clip's features do not depend on its batch
        duration = max(u.end_s for u in c.utterances) + 0.4
        L = math.ceil(duration * RATE_HZ)
        acoustic[c.id] = Features(rng.standard_normal((L, cfg.acoustic_dim)).astype(np.float32), RATE_HZ, "synthetic",
                                  cfg.acoustic_streams, duration)
        if visual_dim:
            T = math.ceil(duration * 2)
            visual[c.id] = Features(rng.standard_normal((T, visual_dim)).astype(np.float32), 2.0, "synthetic",
                                    [("visual", visual_dim)], duration)
    return (lambda c: acoustic[c.id]), (lambda c: visual.get(c.id))


# a one-frame utterance (0.02 s at 50 Hz), short and long ones
CLIPS = [make_clip(0, [(0.3, 1.2), (1.5, 1.52), (1.9, 3.9)], ["happy", "excited"], "She laughs."),
         make_clip(1, [(0.1, 0.5)], ["sad"], "His voice drops."),
         make_clip(2, [(0.2, 1.0), (1.3, 2.2)], ["angry"], "He shouts.")]


def build(model, cfg, clips=CLIPS, with_answers=True, visual_dim=None):
    """(dataset, collated batch) of `clips` with synthetic features."""
    from acoustemo.data.dataset import AcoustEmoDataset, collate

    load_a, load_v = features_for(clips, cfg, visual_dim=visual_dim)
    ds = AcoustEmoDataset(clips, load_a, load_v, model.tokenizer, cfg, with_answers=with_answers)
    return ds, collate([ds[i] for i in range(len(ds))], model.tokenizer.pad_token_id)


# ------------------------------------------------------------------- a tiny training corpus (train, predict)
TINY_ENCODER = "whisper-tiny.en"  # the cheapest real encoder shipped offline (384-d, 50 Hz)
CORPUS_CLIPS = [  # (id, target speaker's line, other line, labels, description)
    ("c0", "I lost my keys again.", "Check the table.", ["worried"], "Anna sounds worried."),
    ("c1", "We won the game!", "Amazing.", ["happy", "excited"], "Anna is excited."),
    ("c2", "Leave me alone.", "Fine.", ["angry"], "Anna is angry."),
    ("c3", "He is not coming back.", "I am sorry.", ["sad"], "Anna is sad."),
    ("c4", "Is that a spider?", "Yes.", ["scared"], "Anna is scared."),
]


def write_corpus(root: Path) -> dict:
    """Five two-speaker clips: c0-c2 train, c3-c4 val; features extracted once into root/features."""
    import torch

    from acoustemo.data.manifest import read_manifest
    from acoustemo.features.registry import get_acoustic_encoder
    from acoustemo.features.cache import FeatureCache
    from acoustemo.features.extract import extract

    lines = []
    for cid, mine, other, labels, desc in CORPUS_CLIPS:
        _, utts = make_dialogue(root / cid, [("Anna", "en-us", mine), ("Ben", "en-us+m3", other)], gap_s=0.2)
        lines.append({"id": cid, "media": f"{cid}/dialogue.wav", "utterances": utts, "target_speaker": "Anna",
                      "labels": labels, "description": desc})
    (root / "train.jsonl").write_text("".join(json.dumps(d) + "\n" for d in lines[:3]))
    (root / "val.jsonl").write_text("".join(json.dumps(d) + "\n" for d in lines[3:]))
    clips = read_manifest(root / "train.jsonl") + read_manifest(root / "val.jsonl")
    threads = torch.get_num_threads()
    report = extract(clips, FeatureCache(root / "features"), get_acoustic_encoder(TINY_ENCODER), progress=False)
    torch.set_num_threads(threads)  # CTranslate2 resets the OpenMP thread count; keep the tests' single thread
    assert report.ok, report.summary()
    return {"train": root / "train.jsonl", "val": root / "val.jsonl", "cache": root / "features"}


def corpus_configs(corpus: dict, **train_fields):
    """The loop's mechanics are tested on the paper's single stage (recipe "paper"); the default two-stage recipe
    has its own tests below."""
    fields = dict(recipe="paper", acoustic_encoder=TINY_ENCODER, cache_dir=str(corpus["cache"]), lr=1e-2,
                  warmup_ratio=0.1, save_every_steps=0, progress=False)
    from acoustemo.training import resolve_configs

    return resolve_configs("debug", train_overrides={**fields, **train_fields})
