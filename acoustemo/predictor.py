"""A trained model loaded for prediction, and its answer for clips whose utterances are known.

    predictor = load_predictor("runs/exp1")                       # a run folder, its best/ or any saved model
    p = predict_clip("talk.mp4", subtitles="talk.srt", speaker="Anna", model=predictor)
    p.emotions, p.explanation, p.utterances, p.timestamps_source

One path for every caller (predict_clip here, acoustemo.timeline for long recordings, acoustemo.batch for
manifests): a Clip (utterances from the manifest, the subtitles, or VAD + ASR) -> cached features (the encoder the
model was trained with, read from its train_config.json) -> AcoustEmoDataset without answers ->
AcoustEmoModel.generate (greedy) -> parse_answer.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from acoustemo.data.media import Media, open_media
from acoustemo.data.segments import Clip, Utterance
from acoustemo.errors import ConfigError

log = logging.getLogger(__name__)

# The file a training run writes its TrainConfig to (acoustemo.training.checkpoint); read here as plain JSON, so
# that prediction does not load the training code.
TRAIN_CONFIG_NAME = "train_config.json"


@dataclass
class Prediction:
    id: str
    emotions: list[str]
    explanation: str
    answer: str  # the generated text parse_answer read
    utterances: list[Utterance]
    timestamps_source: str  # "manifest", "subtitles", "vad", "asr" or "aligned"
    model: str  # the model folder
    warnings: list[str] = field(default_factory=list)
    target_speaker: str | None = None  # whom the question asked about (None: "the main speaker")

    def to_json(self) -> dict:
        """What `acoustemo predict --json` writes."""
        return {"id": self.id, "emotions": self.emotions, "explanation": self.explanation, "answer": self.answer,
                "utterances": [u.to_json() for u in self.utterances], "timestamps_source": self.timestamps_source,
                "model": self.model, "warnings": self.warnings}


# The checkpoint shipped inside the package (trained on the acoustic-cue benchmark; see its README.md).
DEFAULT_MODEL_DIR = Path(__file__).parent / "assets" / "default"


def resolve_model_dir(path: str | os.PathLike | None) -> Path:
    """A saved model folder: `path` itself, else its best/, else its last/model/ (a run killed early).

    None means the shipped default checkpoint."""
    if path is None:
        if not (DEFAULT_MODEL_DIR / "config.json").is_file():
            raise ConfigError(f"the shipped default checkpoint is missing from {DEFAULT_MODEL_DIR}; reinstall acoustemo "
                              f"or pass --model DIR (a training run folder or its best/ folder)")
        return DEFAULT_MODEL_DIR
    path = Path(path)
    for cand in (path, path / "best", path / "last" / "model"):
        if (cand / "config.json").is_file() and (cand / "acoustemo.safetensors").is_file():
            return cand
    raise ConfigError(f"{path} holds no trained AcoustEmo model (looked for config.json + acoustemo.safetensors in "
                      f"it, best/ and last/model/); give a training run folder or its best/ folder")


@dataclass
class Predictor:
    """A loaded model with the encoders and feature cache it needs; reuse it across calls."""

    model: object  # AcoustEmoModel
    model_dir: Path
    cache: object  # FeatureCache
    acoustic: object  # AcousticEncoder
    visual: object | None
    max_new_tokens: int = 96  # gold answers of the acoustic-cue benchmark run up to 70 tokens
    drafts: bool = True  # one clip at a time: greedy with checked n-gram drafts (acoustemo/model/decoding.py)

    def load_acoustic(self, clip: Clip, media: Media | None = None):
        """The clip's acoustic features from the cache (computed on a miss); `media`: the clip's file already
        opened, whose hash and decoded audio are then reused."""
        features = self.cache.get_or_compute(media or clip.media, self.acoustic, clip.id)
        release = getattr(self.acoustic, "release", None)
        if release is not None:  # e.g. the Whisper runtime, which slows the LLM's decoding while it is loaded
            release()
        return features

    def load_visual(self, clip: Clip, media: Media | None = None):
        if self.visual is None:
            return None
        return self.cache.get_or_compute(media or clip.media, self.visual, clip.id)

    def predict(self, clips: list[Clip], load_acoustic=None, load_visual=None) -> list[Prediction]:
        """One batch of clips (utterances already set) -> their predictions, in order. `load_acoustic` /
        `load_visual` (Clip -> Features) replace the feature cache, e.g. with windows sliced from one extraction
        of a long recording (acoustemo.timeline)."""
        from acoustemo.data.dataset import AcoustEmoDataset, collate
        from acoustemo.data.prompt import parse_answer

        ds = AcoustEmoDataset(clips, load_acoustic or self.load_acoustic, load_visual or self.load_visual,
                              self.model.tokenizer, self.model.cfg, with_answers=False)
        batch = collate([ds[i] for i in range(len(ds))], self.model.tokenizer.pad_token_id)
        texts = self.model.generate(batch, max_new_tokens=self.max_new_tokens, drafts=self.drafts)
        out = []
        for clip, text in zip(clips, texts):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                emotions, explanation = parse_answer(text)
            out.append(Prediction(clip.id, emotions, explanation, text, list(clip.utterances),
                                  clip.timestamps_source, str(self.model_dir), [str(w.message) for w in caught],
                                  clip.target_speaker))
        return out


def load_predictor(model_dir: str | os.PathLike | None, cache_dir: str | os.PathLike | None = None,
                   device: str | None = None, acoustic_encoder: str | None = None,
                   max_new_tokens: int = 96, int8: bool | None = None, drafts: bool = True,
                   llm_dtype: str | None = None) -> Predictor:
    """Load a trained model for prediction, with the encoder it was trained on (from its train_config.json).

    LoRA is merged into the LLM. `int8` (default: on a CPU when the LLM computes in bf16, see
    acoustemo.hardware.int8_by_default) also gives the LLM's linear layers int8 weights, which decodes 1.5-2x
    faster there (AcoustEmoModel.quantize_int8); False keeps the LLM's dtype.
    `drafts` (default on) decodes a single clip with checked n-gram drafts: 3.8 tokens per LLM pass on the
    benchmark, ~1.7x faster, for the same greedy answer (acoustemo/model/decoding.py); batches of clips always go
    through HF generate.
    `llm_dtype` (None: the checkpoint's where this hardware runs it natively, else the hardware's choice; "auto":
    the hardware's choice; or float32 / bfloat16 / float16) is the LLM's compute dtype (acoustemo/hardware.py).

    Features go to `cache_dir`, by default the training run's feature cache if it still exists, else
    $ACOUSTEMO_CACHE/features (~/.cache/acoustemo/features).
    """
    from acoustemo.features.cache import FeatureCache
    from acoustemo.features.registry import get_visual_encoder
    from acoustemo.hardware import default_device, int8_by_default, runs_natively
    from acoustemo.model.acoustemo import AcoustEmoModel

    if max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens={max_new_tokens} must be >= 1 (--max-new-tokens; default 96)")
    folder = resolve_model_dir(model_dir)
    trained = read_train_record(folder)
    if cache_dir is None:
        run_cache = Path(trained["cache_dir"]) if trained and trained.get("cache_dir") else None
        cache_dir = run_cache if run_cache is not None and run_cache.is_dir() else default_features_dir()
    acoustic = trained_acoustic_encoder(trained, acoustic_encoder)
    _check_streams(folder, acoustic)
    device = torch.device(device) if device else default_device()
    model = AcoustEmoModel.from_pretrained(folder, llm_dtype=llm_dtype, device=device)
    model.to(device).eval()
    if llm_dtype is None and model.cfg.llm_dtype == "float32" and device.type == "cpu" and runs_natively("bfloat16"):
        log.info("the LLM runs in float32, the dtype its weights were trained in; on this CPU --llm-dtype auto runs "
                 "it in bf16 with int8 weights, 2.3x the clips per second on a manifest, with the same emotion sets "
                 "on 200 / 200 benchmark clips (BENCHMARKS.md #15)")
    if int8 or (int8 is None and int8_by_default(model.cfg.llm_dtype, model.device)):
        model.quantize_int8()  # merges LoRA first
    else:
        model.merge_lora()
    visual_name = trained.get("visual_encoder") if trained else None
    if model.cfg.visual_dim is not None and visual_name is None:
        visual_name = "default"
    visual = get_visual_encoder(visual_name) if visual_name else None
    return Predictor(model, folder, FeatureCache(cache_dir), acoustic, visual, max_new_tokens, drafts)


def default_features_dir() -> Path:
    """$ACOUSTEMO_CACHE/features (~/.cache/acoustemo/features): features of models without a run cache."""
    from acoustemo.offline import cache_dir

    return cache_dir() / "features"


def read_train_record(folder: str | os.PathLike) -> dict | None:
    """What a model folder's train_config.json says prediction needs (acoustic_encoder, acoustic_options,
    visual_encoder, cache_dir), read as JSON; None when the folder has none. A run saved before the encoder's
    options were recorded made its Whisper features in int8, the default then."""
    from acoustemo.features.registry import WHISPER_BASED, default_acoustic_options

    path = Path(folder) / TRAIN_CONFIG_NAME
    if not path.is_file():
        return None
    try:
        d = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read train config {path}: {e}") from e
    if not isinstance(d, dict):
        raise ConfigError(f"train config {path} must hold a JSON object; re-save the model with `acoustemo train`")
    name = d.get("acoustic_encoder") or "default"
    if "acoustic_options" not in d:
        options = {"compute_type": "int8"} if name in WHISPER_BASED else {}
    else:
        options = d["acoustic_options"] if d["acoustic_options"] is not None else default_acoustic_options(name)
    if not isinstance(options, dict):
        raise ConfigError(f"{path}: acoustic_options={options!r} must be a JSON object of the encoder's options, "
                          f"e.g. {{\"compute_type\": \"int8\"}}")
    return {"acoustic_encoder": name, "acoustic_options": options, "visual_encoder": d.get("visual_encoder"),
            "cache_dir": d.get("cache_dir")}


def trained_acoustic_encoder(trained, name: str | None = None):
    """The acoustic encoder a checkpoint was trained on (`name` overrides it), built with the options its features
    were made with (acoustic_options, e.g. Whisper's compute type; int8 for runs saved before they were recorded),
    so that a later release's defaults cannot change its features. `trained`: read_train_record's dict, or any
    object with `acoustic_encoder` and `acoustic_options` attributes (a TrainConfig), or None (the defaults)."""
    from acoustemo.features.registry import get_acoustic_encoder

    if trained is not None and not isinstance(trained, dict):
        trained = {"acoustic_encoder": trained.acoustic_encoder, "acoustic_options": trained.acoustic_options}
    name = name or (trained["acoustic_encoder"] if trained else "default")
    trained_on = trained is not None and name == trained["acoustic_encoder"]
    return get_acoustic_encoder(name, **(trained["acoustic_options"] if trained_on else {}))


def _check_streams(folder: Path, acoustic) -> None:
    """Fail before any model or media is loaded when the checkpoint was trained on other acoustic streams."""
    from acoustemo.config import ModelConfig

    if not (folder / "config.json").is_file():
        return  # from_pretrained names the missing file
    saved = ModelConfig.load(folder / "config.json").acoustic_streams  # (name, width) tuples
    produced = [tuple(s) for s in acoustic.streams]
    if saved == produced:
        return
    raise ConfigError(
        f"{folder} was trained on acoustic streams {saved}, but the encoder '{acoustic.id}' of "
        f"this acoustemo produces {produced} (the prosody stream has 13 channels since "
        f"its version 2, 14 since its version 3); retrain on features of this encoder (`acoustemo train ... --encoder {acoustic.id}`), or "
        f"predict with the acoustemo release that trained it")


def as_predictor(model=None, cache_dir: str | os.PathLike | None = None, int8: bool | None = None) -> Predictor:
    """load_predictor(model) for a model folder (None: the shipped default), else `model` itself: a loaded
    Predictor, or an object with its interface (a test's stub)."""
    if model is None or isinstance(model, (str, os.PathLike)):
        return load_predictor(model, cache_dir, int8=int8)
    return model


def predict_clip(media, subtitles: str | os.PathLike | None = None, speaker: str | None = None,
                 model: Predictor | str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                 clip_id: str | None = None) -> Prediction:
    """Emotions and an explanation for one media file (a path or an opened Media), answered as one window.

    Utterances come from `subtitles` (timed: SRT / WebVTT / JSON; untimed .txt lines are aligned to ASR words)
    or, without subtitles, from VAD + ASR (acoustemo.data.segmentation). `speaker` is the target speaker the
    question asks about (default: "the main speaker"). A recording of any length: acoustemo.timeline.predict_media.
    """
    from acoustemo.data.segmentation import utterances_for

    predictor = as_predictor(model, cache_dir)
    media = open_media(media)
    utts, source, notes = utterances_for(media, subtitles)
    if speaker and utts and all(u.speaker for u in utts) and speaker not in {u.speaker for u in utts}:
        notes.append(f"speaker {speaker!r} does not appear in the utterances ({sorted({u.speaker for u in utts})})")
    clip = Clip(clip_id or media.path.stem, str(media.path), utts, target_speaker=speaker or None,
                timestamps_source=source)
    return answer_clip(predictor, clip, media, notes)


def answer_clip(predictor: Predictor, clip: Clip, media: Media, notes: list[str] = ()) -> Prediction:
    """The prediction for one clip of an opened media file (its hash and audio are reused for the features);
    `notes` (e.g. the subtitles' warnings) come first among its warnings."""
    pred = predictor.predict([clip], load_acoustic=lambda c: predictor.load_acoustic(c, media),
                             load_visual=lambda c: predictor.load_visual(c, media))[0]
    pred.warnings = list(notes) + pred.warnings
    return pred
