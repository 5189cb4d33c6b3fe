"""Every clip of a manifest: one predictions line per clip, resumable.

    report = predict_manifest("test.jsonl", "runs/exp1", "preds.jsonl")  # {"id", "emotions", "explanation"} a line

Clips go through acoustemo.predictor in batches. A clip whose dialogue does not fit one window is answered in
context windows like a long recording (acoustemo.timeline.split_clip) and its line adds "windows".
Finished lines go to `<out>.partial` as each batch completes; a rerun skips the ids already there (or already in
`<out>`), and the complete file is written atomically, in manifest order, at the end.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from acoustemo.data.media import Media, open_media
from acoustemo.data.segments import Clip
from acoustemo.errors import ConfigError
from acoustemo.predictor import Prediction, Predictor, as_predictor
from acoustemo.timeline import TimelineConfig, manifest_line, split_clip

log = logging.getLogger(__name__)

OUTPUT_KEYS = ("id", "emotions", "explanation")


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


def predict_manifest(manifest: str | os.PathLike, model_dir: Predictor | str | os.PathLike | None,
                     out: str | os.PathLike, cache_dir: str | os.PathLike | None = None, batch_size: int = 8,
                     progress: bool = True, int8: bool | None = None,
                     timeline: TimelineConfig | None = None) -> PredictReport:
    """Predict every clip of `manifest` into `out` (JSONL, one {"id", "emotions", "explanation"} per clip, plus
    "custom": the line's own metadata keys when it has any). `model_dir`: a loaded Predictor, a model folder, or
    None for the shipped default; `int8` is load_predictor's (ignored for a Predictor).

    A clip whose dialogue does not fit one window (token budget or `timeline.max_span_s`) is split into context
    windows like a long recording; its line adds "windows" and the report lists it in `split`."""
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
        predictor = as_predictor(model_dir, cache_dir, int8)
        out.parent.mkdir(parents=True, exist_ok=True)
        _write_lines(partial, list(done.values()))  # the ids kept so far, whichever file they came from
        bar = _progress(len(clips), len(clips) - len(todo), progress)
        with open(partial, "a", encoding="utf-8") as f:
            for i in range(0, len(todo), batch_size):
                batch = todo[i : i + batch_size]
                opened = {c.id: open_media(c.media) for c in batch}  # each file probed, hashed, decoded once
                short, lines = _split_long(predictor, batch, opened, timeline, report)
                preds = _predict_batch(predictor, short, opened, report) if short else []
                lines += [{"id": p.id, "emotions": p.emotions, "explanation": p.explanation} for p in preds]
                for line in lines:
                    if line["id"] in custom:
                        line["custom"] = custom[line["id"]]
                    done[line["id"]] = line
                    f.write(json.dumps(line, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
                report.predicted += len(lines)
                bar.update(len(batch))
                bar.set_postfix(failed=len(report.failed), refresh=False)
        bar.close()
    order = {c.id: k for k, c in enumerate(clips)}
    lines = [{**d, **({"custom": custom[d["id"]]} if d["id"] in custom else {})} for d in done.values()]
    _write_lines(out, sorted((d for d in lines if d["id"] in order), key=lambda d: order[d["id"]]))
    partial.unlink(missing_ok=True)
    report.wall_s = time.perf_counter() - start
    return report


def _split_long(predictor: Predictor, clips: list[Clip], opened: dict[str, Media], config,
                report: PredictReport) -> tuple[list[Clip], list[dict]]:
    """(clips that fit one window, the finished lines of those that did not and were split into windows)."""
    short, lines = [], []
    for clip in clips:
        try:
            clip = with_utterances(clip, opened[clip.id])
            tl = split_clip(predictor, clip, config, media=opened[clip.id])
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


def _predict_batch(predictor: Predictor, clips: list[Clip], opened: dict[str, Media],
                   report: PredictReport) -> list[Prediction]:
    """A batch, falling back to clip by clip when it fails, so one bad media file costs only its own line."""
    try:
        return predictor.predict(clips, load_acoustic=lambda c: predictor.load_acoustic(c, opened[c.id]),
                                 load_visual=lambda c: predictor.load_visual(c, opened[c.id]))
    except Exception as e:
        if len(clips) == 1:
            report.failed.append((clips[0].id, f"{type(e).__name__}: {e}"))
            log.warning("clip %s failed: %s", clips[0].id, e)
            return []
    return [p for c in clips for p in _predict_batch(predictor, [c], opened, report)]


def with_utterances(clip: Clip, media: Media | None = None) -> Clip:
    """The clip itself if it has utterances, else a copy with utterances from VAD + ASR of its media."""
    if clip.utterances:
        return clip
    from acoustemo.data.segmentation import utterances_for

    utts, source, _ = utterances_for(media or clip.media)
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
                done[d["id"]] = {k: d[k] for k in OUTPUT_KEYS + ("windows",) if k in d}
    return done


def _write_lines(path: Path, lines: list[dict]) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in lines), encoding="utf-8")
    os.replace(tmp, path)


def _progress(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="clip", desc="predict", disable=not enabled, dynamic_ncols=True)
