"""Prediction: emotions and an explanation for one media file or every clip of a manifest.

    predictor = load_predictor("runs/exp1")                       # a run folder, its best/ or any saved model
    p = predict_clip("talk.mp4", subtitles="talk.srt", speaker="Anna", model=predictor)
    p.emotions, p.explanation, p.utterances, p.timestamps_source

    predict_manifest("test.jsonl", "runs/exp1", "preds.jsonl")     # one line per clip {"id", "emotions", "explanation"}

Both forms share one path: a Clip (utterances from the manifest, the subtitles, or VAD + ASR) -> cached features
(the encoder the model was trained with, read from its train_config.json) -> AcoustEmoDataset without answers ->
AcoustEmoModel.generate (greedy) -> parse_answer.

predict_manifest is resumable: finished lines go to `<out>.partial` as each batch completes; a rerun skips the ids
already there (or already in `<out>`), and the complete file is written atomically, in manifest order, at the end.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from acoustemo.data.segments import Clip, Utterance
from acoustemo.errors import ConfigError

log = logging.getLogger(__name__)

OUTPUT_KEYS = ("id", "emotions", "explanation")
HEADS_MODES = ("auto", "veto", "off")  # load_predictor(heads=...)


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
    vetoed: list[str] = field(default_factory=list)  # the LLM's emotions its stage-1 heads vetoed (heads="veto")

    def to_json(self) -> dict:
        return {"id": self.id, "emotions": self.emotions, "explanation": self.explanation, "answer": self.answer,
                "utterances": [u.to_json() for u in self.utterances], "timestamps_source": self.timestamps_source,
                "model": self.model, "warnings": self.warnings, "vetoed": self.vetoed}


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
    heads: str = "off"  # "veto": keep only the LLM's emotions its stage-1 heads also give (load_predictor resolves "auto")

    def load_acoustic(self, clip: Clip):
        features = self.cache.get_or_compute(clip.media, self.acoustic, clip.id)
        release = getattr(self.acoustic, "release", None)
        if release is not None:  # e.g. the Whisper runtime, which slows the LLM's decoding while it is loaded
            release()
        return features

    def load_visual(self, clip: Clip):
        return self.cache.get_or_compute(clip.media, self.visual, clip.id) if self.visual is not None else None

    def predict(self, clips: list[Clip], load_acoustic=None, load_visual=None) -> list[Prediction]:
        """One batch of clips (utterances already set) -> their predictions, in order. `load_acoustic` /
        `load_visual` (Clip -> Features) replace the feature cache, e.g. with windows sliced from one extraction
        of a long recording (acoustemo.timeline)."""
        from acoustemo.data.dataset import AcoustEmoDataset, collate
        from acoustemo.data.prompt import drop_label_clauses, parse_answer
        from acoustemo.training.align import heads_answer, heads_veto

        ds = AcoustEmoDataset(clips, load_acoustic or self.load_acoustic, load_visual or self.load_visual,
                              self.model.tokenizer, self.model.cfg, with_answers=False)
        examples = [ds[i] for i in range(len(ds))]
        batch = collate(examples, self.model.tokenizer.pad_token_id)
        texts = self.model.generate(batch, max_new_tokens=self.max_new_tokens, drafts=self.drafts)
        heads = (heads_answer(self.model, batch, clips, [len(e["windows"]) for e in examples])
                 if self.heads == "veto" else [None] * len(clips))
        out = []
        for clip, text, given in zip(clips, texts, heads):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                emotions, explanation = parse_answer(text)
            emotions, vetoed = heads_veto(emotions, given)
            out.append(Prediction(clip.id, emotions, drop_label_clauses(explanation, vetoed), text,
                                  list(clip.utterances), clip.timestamps_source, str(self.model_dir),
                                  [str(w.message) for w in caught], vetoed))
        return out


def load_predictor(model_dir: str | os.PathLike | None, cache_dir: str | os.PathLike | None = None,
                   device: str | None = None, acoustic_encoder: str | None = None,
                   max_new_tokens: int = 96, int8: bool | None = None, drafts: bool = True,
                   llm_dtype: str | None = None, heads: str = "off") -> Predictor:
    """Load a trained model for prediction, with the encoder it was trained on (from its train_config.json).

    LoRA is merged into the LLM. `int8` (default: on a CPU when the LLM computes in bf16, see
    acoustemo.hardware.int8_by_default) also gives the LLM's linear layers int8 weights, which decodes 1.5-2x
    faster there (AcoustEmoModel.quantize_int8); False keeps the LLM's dtype.
    `drafts` (default on) decodes a single clip with checked n-gram drafts: 3.8 tokens per LLM pass on the
    benchmark, ~1.7x faster, for the same greedy answer (acoustemo/model/decoding.py); batches of clips always go through HF generate.
    `llm_dtype` (None: the checkpoint's where this hardware runs it natively, else the hardware's choice; "auto":
    the hardware's choice; or float32 / bfloat16 / float16) is the LLM's compute dtype (acoustemo/hardware.py).
    `heads` "veto" (beyond the paper): the model's stage-1 label heads (saved with it as stage1_heads.json) answer
    each clip from its acoustic tokens too, and the LLM's emotions they do not give are dropped, with the
    explanation's clauses that name them, unless that would drop them all (BENCHMARKS.md #17). "auto": "veto" when
    the model has the heads, else "off". "off" (default): the LLM's answer as it is, the paper's path. The veto
    gains on the benchmark's own voices and loses on another engine's (BENCHMARKS.md #17, session 17), so it is
    not the default.

    Features go to `cache_dir`, by default the training run's feature cache if it still exists, else
    $ACOUSTEMO_CACHE/features (~/.cache/acoustemo/features).
    """
    from acoustemo.features.registry import get_visual_encoder
    from acoustemo.features.cache import FeatureCache
    from acoustemo.hardware import int8_by_default, runs_natively
    from acoustemo.model.acoustemo import AcoustEmoModel
    from acoustemo.training import TRAIN_CONFIG_NAME, TrainConfig

    if max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens={max_new_tokens} must be >= 1 (--max-new-tokens; default 96)")
    if heads not in HEADS_MODES:
        raise ConfigError(f"heads={heads!r}: choose one of {', '.join(HEADS_MODES)} (--heads)")
    folder = resolve_model_dir(model_dir)
    train_cfg = TrainConfig.load(folder / TRAIN_CONFIG_NAME) if (folder / TRAIN_CONFIG_NAME).is_file() else None
    if cache_dir is None:
        trained = Path(train_cfg.cache_dir) if train_cfg and train_cfg.cache_dir else None
        if trained is not None and trained.is_dir():
            cache_dir = trained
        else:
            from acoustemo.offline import cache_dir as user_cache

            cache_dir = user_cache() / "features"
    acoustic = trained_acoustic_encoder(train_cfg, acoustic_encoder)
    _check_streams(folder, acoustic)
    device = torch.device(device) if device else _default_device()
    model = AcoustEmoModel.from_pretrained(folder, llm_dtype=llm_dtype, device=device)
    model.to(device).eval()
    if llm_dtype is None and model.cfg.llm_dtype == "float32" and device.type == "cpu" and runs_natively("bfloat16"):
        log.info("the LLM runs in float32, the dtype its weights were trained in; on this CPU --llm-dtype auto runs "
                 "it in bf16 with int8 weights, 2.3x the clips per second on a manifest, with the same emotion sets "
                 "on 200 / 200 benchmark clips (BENCHMARKS.md #15)")
    if heads == "auto":
        heads = "veto" if model.label_heads is not None else "off"
        log.info("stage-1 heads veto: %s (%s)", heads, "the model's stage1_heads.json" if heads == "veto"
                 else "the model has no stage1_heads.json")
    if heads == "veto" and model.label_heads is None:
        raise ConfigError(f"--heads veto needs the model's stage-1 label heads ({folder}/stage1_heads.json), which "
                          f"this model lacks: it was trained without stage 1 in 'labels' mode, with the LM stage "
                          f"training the Q-Formers, or before acoustemo saved the heads (the packaged default ships "
                          f"without them: its LLM alone scored as well). Retrain it with the default recipe, or "
                          f"predict with --heads auto / off")
    if int8 or (int8 is None and int8_by_default(model.cfg.llm_dtype, model.device)):
        model.quantize_int8()  # merges LoRA first
    else:
        model.merge_lora()
    visual_name = train_cfg.visual_encoder if train_cfg else None
    if model.cfg.visual_dim is not None and visual_name is None:
        visual_name = "default"
    visual = get_visual_encoder(visual_name) if visual_name else None
    return Predictor(model, folder, FeatureCache(cache_dir), acoustic, visual, max_new_tokens, drafts, heads)


def trained_acoustic_encoder(train_cfg, name: str | None = None):
    """The acoustic encoder a checkpoint was trained on (`name` overrides it), built with the options its features
    were made with (TrainConfig.acoustic_options, e.g. Whisper's compute type; int8 for runs saved before they
    were recorded), so that a later release's defaults cannot change its features."""
    from acoustemo.features.registry import get_acoustic_encoder

    name = name or (train_cfg.acoustic_encoder if train_cfg else "default")
    trained_on = train_cfg is not None and name == train_cfg.acoustic_encoder
    return get_acoustic_encoder(name, **(train_cfg.acoustic_options if trained_on else {}))


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


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _as_predictor(model, cache_dir=None, int8: bool | None = None) -> Predictor:
    if isinstance(model, Predictor):
        return model
    return load_predictor(model, cache_dir, int8=int8)  # None -> the shipped default checkpoint


def predict_clip(media: str | os.PathLike, subtitles: str | os.PathLike | None = None, speaker: str | None = None,
                 model: Predictor | str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                 clip_id: str | None = None) -> Prediction:
    """Emotions and an explanation for one media file.

    Utterances come from `subtitles` (timed: SRT / WebVTT / JSON; untimed .txt lines are aligned to ASR words)
    or, without subtitles, from VAD + ASR (acoustemo.data.segmentation). `speaker` is the target speaker the
    question asks about (default: "the main speaker").
    """
    from acoustemo.data.media import probe
    from acoustemo.data.segmentation import utterances_for

    predictor = _as_predictor(model, cache_dir)
    media = Path(media).resolve()
    duration_s = probe(media).duration_s
    utts, source, notes = utterances_for(media, subtitles, duration_s)
    if speaker and utts and all(u.speaker for u in utts) and speaker not in {u.speaker for u in utts}:
        notes.append(f"speaker {speaker!r} does not appear in the utterances ({sorted({u.speaker for u in utts})})")
    clip = Clip(clip_id or media.stem, str(media), utts, target_speaker=speaker or None, timestamps_source=source)
    pred = predictor.predict([clip])[0]
    pred.warnings = list(notes) + pred.warnings
    return pred


@dataclass
class PredictReport:
    out: Path
    total: int  # clips in the manifest
    skipped: int  # already in the output from an earlier run
    predicted: int
    failed: list[tuple[str, str]] = field(default_factory=list)  # (clip id, reason)
    split: list[tuple[str, int]] = field(default_factory=list)  # (clip id, windows): clips longer than one window
    wall_s: float = 0.0

    @property
    def clips_per_s(self) -> float:
        return self.predicted / self.wall_s if self.wall_s > 0 else 0.0


def predict_manifest(manifest: str | os.PathLike, model_dir: Predictor | str | os.PathLike, out: str | os.PathLike,
                     cache_dir: str | os.PathLike | None = None, batch_size: int = 8,
                     progress: bool = True, int8: bool | None = None, timeline=None) -> PredictReport:
    """Predict every clip of `manifest` into `out` (JSONL, one {"id", "emotions", "explanation"} per clip, plus
    "custom": the line's own metadata keys when it has any, and "vetoed" when the predictor's heads veto is on).
    `int8` is load_predictor's (ignored when `model_dir` is a Predictor already).

    A clip whose dialogue does not fit one window (token budget or `timeline.max_span_s`, a
    acoustemo.timeline.TimelineConfig) is split into context windows like a long recording; its line adds
    "windows" and the report lists it in `split`."""
    import time

    from acoustemo.data.manifest import read_manifest

    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size} must be >= 1")
    start = time.perf_counter()
    out = Path(out)
    clips = read_manifest(manifest)
    custom = {c.id: c.custom for c in clips if c.custom}  # the manifest's own metadata rides along
    done = _read_done(out)
    todo = [c for c in clips if c.id not in done]
    report = PredictReport(out, len(clips), len(clips) - len(todo), 0)
    partial = out.with_name(out.name + ".partial")
    if todo:
        predictor = _as_predictor(model_dir, cache_dir, int8)
        out.parent.mkdir(parents=True, exist_ok=True)
        _write_lines(partial, list(done.values()))  # the ids kept so far, whichever file they came from
        bar = _progress(len(clips), len(clips) - len(todo), progress)
        with open(partial, "a", encoding="utf-8") as f:
            for i in range(0, len(todo), batch_size):
                short, lines = _split_long(predictor, todo[i : i + batch_size], timeline, report)
                preds = _predict_batch(predictor, short, report) if short else []
                lines += [{"id": p.id, "emotions": p.emotions, "explanation": p.explanation,
                           **({"vetoed": p.vetoed} if predictor.heads != "off" else {})} for p in preds]
                for line in lines:
                    if line["id"] in custom:
                        line["custom"] = custom[line["id"]]
                    done[line["id"]] = line
                    f.write(json.dumps(line, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
                report.predicted += len(lines)
                bar.update(len(todo[i : i + batch_size]))
                bar.set_postfix(failed=len(report.failed), refresh=False)
        bar.close()
    order = {c.id: k for k, c in enumerate(clips)}
    lines = [{**d, **({"custom": custom[d["id"]]} if d["id"] in custom else {})} for d in done.values()]
    _write_lines(out, sorted((d for d in lines if d["id"] in order), key=lambda d: order[d["id"]]))
    partial.unlink(missing_ok=True)
    report.wall_s = time.perf_counter() - start
    return report


def heads_answers(predictor: Predictor, clips: list[Clip], batch_size: int = 16) -> dict[str, list[str] | None]:
    """What the model's stage-1 heads alone answer for each clip (training/align.py heads_answer), built into
    batches as `Predictor.predict` builds them, without generating."""
    from acoustemo.data.dataset import AcoustEmoDataset, collate
    from acoustemo.training.align import heads_answer

    if predictor.model.label_heads is None:
        raise ConfigError(f"{predictor.model_dir} has no stage-1 heads (stage1_heads.json); see --heads veto")
    clips = [_with_utterances(c) for c in clips]
    ds = AcoustEmoDataset(clips, predictor.load_acoustic, predictor.load_visual, predictor.model.tokenizer,
                          predictor.model.cfg, with_answers=False)
    out: dict[str, list[str] | None] = {}
    for i in range(0, len(clips), batch_size):
        examples = [ds[j] for j in range(i, min(i + batch_size, len(clips)))]
        batch = collate(examples, predictor.model.tokenizer.pad_token_id)
        part = clips[i : i + len(examples)]
        out.update(zip((c.id for c in part), heads_answer(predictor.model, batch, part,
                                                          [len(e["windows"]) for e in examples])))
    return out


def veto_predictions(predictor: Predictor, manifest: str | os.PathLike, preds: str | os.PathLike,
                     out: str | os.PathLike, answers: dict[str, list[str] | None] | None = None) -> int:
    """Apply the heads veto (`heads="veto"`) afterwards to a predictions file of the LLM's answers for `manifest`'s
    clips, as prediction would have, without generating again: writes `out` atomically ({id, emotions,
    explanation, vetoed} per line) and returns how many clips lost a label. `answers`: the heads' answers for
    those clips when the caller has them already (heads_answers), else they are computed here."""
    from acoustemo.data.manifest import read_manifest
    from acoustemo.data.prompt import drop_label_clauses
    from acoustemo.training.align import heads_veto

    if answers is None:
        answers = heads_answers(predictor, read_manifest(manifest))
    lines, vetoed = [], 0
    for line in map(json.loads, Path(preds).read_text(encoding="utf-8").splitlines()):
        if line["id"] not in answers:
            raise ConfigError(f"{preds} answers clip {line['id']!r}, which {manifest} lacks; give the manifest the "
                              f"predictions were made for")
        kept, dropped = heads_veto(line["emotions"], answers[line["id"]])
        vetoed += bool(dropped)
        lines.append({**line, "emotions": kept, "explanation": drop_label_clauses(line["explanation"], dropped),
                      "vetoed": dropped})
    _write_lines(Path(out), lines)
    return vetoed


def _split_long(predictor: Predictor, clips: list[Clip], config, report: PredictReport) -> tuple[list[Clip], list[dict]]:
    """(clips that fit one window, the finished lines of those that did not and were split into windows)."""
    from acoustemo.timeline import manifest_line, split_clip

    short, lines = [], []
    for clip in clips:
        try:
            clip = _with_utterances(clip)
            tl = split_clip(predictor, clip, config)
        except Exception as e:
            report.failed.append((clip.id, f"{type(e).__name__}: {e}"))
            log.warning("clip %s failed: %s", clip.id, e)
            continue
        if tl is None:
            short.append(clip)
        else:
            lines.append(manifest_line(tl))
            report.split.append((clip.id, len(tl.windows)))
    return short, lines


def _predict_batch(predictor: Predictor, clips: list[Clip], report: PredictReport) -> list[Prediction]:
    """A batch, falling back to clip by clip when it fails, so one bad media file costs only its own line."""
    try:
        return predictor.predict([_with_utterances(c) for c in clips])
    except Exception as e:
        if len(clips) == 1:
            report.failed.append((clips[0].id, f"{type(e).__name__}: {e}"))
            log.warning("clip %s failed: %s", clips[0].id, e)
            return []
    return [p for c in clips for p in _predict_batch(predictor, [c], report)]


def _with_utterances(clip: Clip) -> Clip:
    if clip.utterances:
        return clip
    from acoustemo.data.segmentation import utterances_for

    utts, source, _ = utterances_for(clip.media)
    return replace(clip, utterances=utts, timestamps_source=source)


def _read_done(out: Path) -> dict[str, dict]:
    """Lines already predicted: from `out` and `out.partial` (a cut last line is ignored)."""
    done: dict[str, dict] = {}
    for path in (out, out.with_name(out.name + ".partial")):
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(d, dict) and all(k in d for k in OUTPUT_KEYS):
                done[d["id"]] = {k: d[k] for k in OUTPUT_KEYS + ("windows", "vetoed") if k in d}
    return done


def _write_lines(path: Path, lines: list[dict]) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in lines), encoding="utf-8")
    os.replace(tmp, path)


def _progress(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="clip", desc="predict", disable=not enabled, dynamic_ncols=True)
