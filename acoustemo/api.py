"""The Python API: load a model once, then answer media files, manifests and score predictions.

    import acoustemo

    model = acoustemo.load_model()                   # the shipped checkpoint; or load_model("runs/exp1")
    result = model.predict("examples/sample.wav", subtitles="examples/sample.srt", speaker="Sami")
    result.emotions, result.explanation              # a Prediction for a clip that fits one window ...
    tl = model.predict("meeting.mp4")                # ... a Timeline for a long recording
    tl.summary()["Anna"].emotions[0].share_time      # per-speaker shares of speaking time

    acoustemo.predict_manifest("test.jsonl", "preds.jsonl", model=model)           # one line per clip
    acoustemo.evaluate_predictions("test.jsonl", "preds.jsonl")["avg"]               # set-level scores, percent

`acoustemo predict` calls these same functions. Everything here is importable lazily from the package root
(`acoustemo.load_model`), so `import acoustemo` stays light.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from acoustemo.batch import PredictReport
from acoustemo.batch import predict_manifest as _predict_manifest
from acoustemo.predictor import Prediction, Predictor
from acoustemo.timeline import Timeline, TimelineConfig, predict_media

__all__ = ["Model", "load_model", "predict_manifest", "evaluate_predictions", "Prediction", "Timeline",
           "PredictReport"]


class Model:
    """A loaded model (load_model): its LLM, encoders and feature cache, reused across calls."""

    def __init__(self, predictor: Predictor):
        self.predictor = predictor

    def __repr__(self) -> str:
        return f"acoustemo.Model({str(self.predictor.model_dir)!r})"

    @property
    def path(self) -> Path:
        """The model folder the weights came from."""
        return Path(self.predictor.model_dir)

    def predict(self, media: str | os.PathLike, subtitles: str | os.PathLike | None = None,
                speaker: str | None = None, *, max_span_s: float = 30.0, context_utterances: int = 2,
                batch_size: int = 4, progress: Callable[[int, int], None] | None = None) -> Prediction | Timeline:
        """Emotions and an explanation for one audio or video file.

        `subtitles`: SRT / WebVTT / JSON with times, or untimed .txt lines (aligned to ASR words); without them the
        utterances come from VAD + ASR. `speaker`: the target speaker the question asks about (default: the main
        speaker of a short clip, every speaker of a long recording).
        Returns a Prediction (emotions, explanation, utterances, target_speaker, answer, timestamps_source,
        warnings; `.to_json()` is what `acoustemo predict --json` writes) when the dialogue fits one context
        window, else a Timeline (entries per window and speaker, `.summary()` per speaker, `.to_json()`), with
        windows of at most `max_span_s` seconds of dialogue and `context_utterances` before each."""
        config = TimelineConfig(max_span_s, context_utterances, batch_size)
        return predict_media(media, subtitles, speaker, model=self.predictor, config=config, progress=progress)

    def predict_manifest(self, manifest: str | os.PathLike, out: str | os.PathLike, **options) -> PredictReport:
        """predict_manifest with this model."""
        return predict_manifest(manifest, out, model=self, **options)


def load_model(path: str | os.PathLike | None = None, *, llm_dtype: str | None = None, int8: bool | None = None,
               device: str | None = None, cache_dir: str | os.PathLike | None = None, max_new_tokens: int = 96,
               drafts: bool = True) -> Model:
    """Load a model: None for the checkpoint shipped with acoustemo, or a folder (a training run, its best/, or
    an exported model).

    `llm_dtype`: None (default) keeps the checkpoint's dtype where this machine runs it natively, else "auto"
    (bfloat16 on CPUs with native bf16, float32 on others); or "float32" / "bfloat16" / "float16". `int8`: int8
    LLM weights (default: on a CPU where bf16 is native). `device`: a torch device (default cuda if there is one).
    `cache_dir`: the feature cache (default: the run's cache, else $ACOUSTEMO_CACHE/features).
    `max_new_tokens` caps the answer; `drafts` decodes one clip with checked n-gram drafts (same greedy answer)."""
    from acoustemo.predictor import load_predictor

    return Model(load_predictor(path, cache_dir, device, max_new_tokens=max_new_tokens, int8=int8, drafts=drafts,
                                llm_dtype=llm_dtype))


def predict_manifest(manifest: str | os.PathLike, out: str | os.PathLike, *,
                     model: Model | Predictor | str | os.PathLike | None = None, batch_size: int = 8,
                     progress: bool = True, max_span_s: float = 30.0, context_utterances: int = 2,
                     cache_dir: str | os.PathLike | None = None) -> PredictReport:
    """Every clip of a manifest (JSONL: id, media, utterances or subtitles, target_speaker) into `out`: one
    {"id", "emotions", "explanation"} line per clip, in manifest order, resumable. `model`: a Model, a folder, or
    None for the shipped checkpoint. A clip longer than one window is answered in windows of at most
    `max_span_s` seconds (its line adds "windows"). Returns the counts (predicted, skipped, failed, split)."""
    predictor = model.predictor if isinstance(model, Model) else model
    return _predict_manifest(manifest, predictor, out, cache_dir, batch_size, progress=progress,
                             timeline=TimelineConfig(max_span_s, context_utterances))


def evaluate_predictions(gold: str | os.PathLike, pred: str | os.PathLike, **options) -> dict:
    """Set-level scores of a predictions file against a gold manifest, in percent (accuracy_s, recall_s, avg,
    ...): what `acoustemo evaluate` prints. `options` are acoustemo.evaluate.report.evaluate's (groupings,
    wheel, grouping, threshold, without_grouping)."""
    from acoustemo.evaluate.report import evaluate

    report, _, _ = evaluate(gold, pred, **options)
    return report
