"""`acoustemo predict`: one media file, or every clip of a manifest.

    acoustemo predict talk.mp4 --model runs/exp1 [--subtitles talk.srt] [--speaker Anna] [--json answer.json]
    acoustemo predict --manifest test.jsonl --model runs/exp1 --out preds.jsonl     # resumable, batched
    acoustemo predict meeting.mp4 --subtitles meeting.srt [--max-span 30] --json timeline.json --plot lanes.png

A recording whose dialogue does not fit one window (the token budget or --max-span) becomes an emotion timeline
per speaker (acoustemo.timeline): the terminal shows a compact table and the summary, --json the full timeline.

Without subtitles the utterances come from VAD + ASR; with untimed subtitles (.txt) the lines are aligned to
the ASR words. --model takes a training run folder (its best/ is used) or a saved model folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from acoustemo.errors import ConfigError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("media", nargs="?", metavar="MEDIA", help="one audio / video file (or use --manifest)")
    p.add_argument("--manifest", metavar="M.jsonl", help="predict every clip of this manifest (needs --out)")
    p.add_argument("--out", metavar="PREDS.jsonl", help="with --manifest: one {id, emotions, explanation} per line")
    p.add_argument("--model", metavar="DIR", help="training run folder (uses DIR/best) or a saved model folder "
                   "(default: the checkpoint shipped with acoustemo)")
    p.add_argument("--subtitles", metavar="FILE", help="with MEDIA: SRT / WebVTT / JSON, or untimed .txt lines")
    p.add_argument("--speaker", metavar="NAME", help="with MEDIA: the target speaker to ask about")
    p.add_argument("--json", metavar="OUT", help="with MEDIA: write the full prediction as JSON ('-' = stdout)")
    p.add_argument("--plot", metavar="OUT.png", help="with MEDIA: draw the timeline (waveform, pitch, utterances, "
                                                    "the utterance Q-Former's attention) to this PNG")
    p.add_argument("--batch-size", type=int, default=None, help="clips (--manifest, default 8) or windows x speakers "
                   "of a long recording (default 4) per generation batch")
    p.add_argument("--max-span", type=float, default=30.0, metavar="S", help="a recording (or manifest clip) longer "
                   "than one window is answered in context windows of at most S seconds of dialogue, cut at turn "
                   "boundaries (default 30; 30-60 suits the shipped checkpoint)")
    p.add_argument("--context", type=int, default=2, metavar="N", help="preceding utterances shown before each "
                   "window's own, where they fit (default 2)")
    p.add_argument("--cache-dir", metavar="DIR", help="feature cache (default: the training run's cache, else "
                                                       "$ACOUSTEMO_CACHE/features)")
    p.add_argument("--max-new-tokens", type=int, default=96, help="answer length limit in tokens (default 96)")
    p.add_argument("--device", help="torch device (default cuda if available, else cpu)")
    p.add_argument("--int8", action=argparse.BooleanOptionalAction, default=None, help="int8 LLM weights on a "
                   "CPU (default: on where bf16 is native; --no-int8 decodes in the LLM's own dtype, 1.5-2x slower, "
                   "the emotions differ on a few clips). On CPUs without native bf16, --int8 makes long recordings' "
                   "batched windows ~1.5x faster to answer and one short clip slower (BENCHMARKS.md #14, #15)")
    p.add_argument("--llm-dtype", choices=("auto", "float32", "bfloat16", "float16"), help="the LLM's compute "
                   "dtype (default: the checkpoint's where this machine runs it natively, else 'auto': bfloat16 on "
                   "CPUs with native bf16, float32 on others)")
    p.add_argument("--no-drafts", action="store_true", help="decode one clip with HF generate, one token per LLM "
                   "pass, instead of checking n-gram drafts (~1.7x slower; explanations can differ by bf16 rounding, "
                   "see BENCHMARKS.md)")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    if (args.media is None) == (args.manifest is None):
        raise ConfigError("give either one MEDIA file or --manifest M.jsonl (with --out), not both / neither")
    if args.manifest is not None:
        return _run_manifest(args)
    return _run_media(args)


def _model(args):
    from acoustemo.api import load_model

    return load_model(args.model, cache_dir=args.cache_dir, device=args.device, max_new_tokens=args.max_new_tokens,
                      int8=args.int8, drafts=not args.no_drafts, llm_dtype=args.llm_dtype)


def _run_manifest(args) -> int:
    from acoustemo.api import predict_manifest
    from acoustemo.timeline import TimelineConfig

    misplaced = [f for f in ("subtitles", "speaker", "json", "plot") if getattr(args, f) is not None]
    if misplaced:
        raise ConfigError(f"--{', --'.join(misplaced)} apply to a single MEDIA file; a manifest gives them per clip")
    if args.out is None:
        raise ConfigError("--manifest needs --out PREDS.jsonl")
    config = TimelineConfig(args.max_span, args.context)  # checks --max-span / --context before the model loads
    report = predict_manifest(args.manifest, args.out, model=_model(args), batch_size=args.batch_size or 8,
                              progress=not args.no_progress, max_span_s=config.max_span_s,
                              context_utterances=config.context_utterances)
    print(f"{report.out}: {report.predicted} predicted, {report.skipped} already there, {len(report.failed)} failed "
          f"of {report.total} clips ({report.clips_per_s:.2f} clips/s)", file=sys.stderr)
    if report.split:
        print(f"{len(report.split)} clip(s) longer than one window (token budget or --max-span {config.max_span_s:g} s) "
              f"were split into context windows; their lines add \"windows\":", file=sys.stderr)
        for clip_id, n in report.split:
            print(f"  SPLIT {clip_id}: {n} windows", file=sys.stderr)
    for clip_id, reason in report.failed:
        print(f"  FAILED {clip_id}: {reason}", file=sys.stderr)
    return 1 if report.failed else 0


def _run_media(args) -> int:
    from acoustemo.timeline import Timeline, TimelineConfig

    if args.out is not None:
        raise ConfigError("--out is for --manifest; with one MEDIA file use --json OUT")
    config = TimelineConfig(args.max_span, args.context, **({"batch_size": args.batch_size} if args.batch_size else {}))
    from acoustemo.data.media import open_media

    model = _model(args)
    predictor = model.predictor
    media = open_media(args.media)  # probed, hashed and decoded once, for the answer and the plot
    bar = _Bar(not args.no_progress)
    try:
        pred = model.predict(media, args.subtitles, args.speaker, max_span_s=config.max_span_s,
                             context_utterances=config.context_utterances, batch_size=config.batch_size,
                             progress=bar)
    finally:
        bar.close()
    for note in pred.warnings:
        print(f"warning: {note}", file=sys.stderr)
    if args.plot:
        from acoustemo.plot import plot_prediction, plot_recording_timeline

        path = (plot_recording_timeline(args.plot, pred) if isinstance(pred, Timeline)
                else plot_prediction(args.plot, media, pred, predictor, args.speaker))
        print(f"timeline: {path}", file=sys.stderr)
    if args.json == "-":
        print(json.dumps(pred.to_json(), indent=2, ensure_ascii=False))
        return 0
    if args.json:
        from acoustemo.data.manifest import write_text_atomic

        write_text_atomic(Path(args.json), json.dumps(pred.to_json(), indent=2, ensure_ascii=False) + "\n")
    if isinstance(pred, Timeline):
        from acoustemo.timeline import format_timeline

        print(format_timeline(pred))
        print(f"Model: {pred.model}" + ("" if args.json else "  (--json OUT for the explanations)"))
        return 0
    print(f"Utterances ({pred.timestamps_source}):")
    for u in pred.utterances:
        print(f"  [{u.start_s:.2f}-{u.end_s:.2f} s] {u.speaker or '?'}: {u.text}")
    print(f"Emotions: {', '.join(pred.emotions) or '(none)'}")
    print(f"Explanation: {pred.explanation}")
    print(f"Model: {pred.model}")
    return 0


class _Bar:
    """tqdm over a long recording's windows x speakers, opened at the first progress call (short clips: none)."""

    def __init__(self, enabled: bool):
        self.enabled, self.bar = enabled, None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="answer", desc="windows", dynamic_ncols=True)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
