"""`acoustemo serve`: a local web page to upload a video or audio file (and subtitles) and see the emotions,
the explanation, the utterances and the timeline plot.

    acoustemo serve --model runs/exp1 [--host 127.0.0.1] [--port 8000] [--max-upload-mb 200] [--max-span 30]

A recording longer than one context window is answered as an emotion timeline per speaker, with its progress
on the page (acoustemo.timeline, as `acoustemo predict` does). Binds to this machine only unless --host says
otherwise; the model is loaded once and answers one upload at a time (others wait in line). Other programs post
to /api/predict (or to /api/jobs, then follow the job); /openapi.json describes it, /docs shows it as a page.
"""

from __future__ import annotations

import argparse

from acoustemo.errors import ConfigError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="DIR", help="training run folder (uses DIR/best) or a saved model folder "
                   "(default: the checkpoint shipped with acoustemo)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 = any free port)")
    p.add_argument("--max-upload-mb", type=float, default=200, help="largest accepted upload in MB (default 200)")
    p.add_argument("--cache-dir", metavar="DIR", help="feature cache (default: the training run's cache, else "
                                                       "$ACOUSTEMO_CACHE/features)")
    p.add_argument("--max-span", type=float, default=30.0, metavar="S", help="an upload longer than one window is "
                   "answered in context windows of at most S seconds of dialogue, cut at turn boundaries, as by "
                   "`predict --max-span` (default 30)")
    p.add_argument("--context", type=int, default=2, metavar="N", help="preceding utterances shown before each "
                   "window's own, where they fit (default 2)")
    p.add_argument("--device", help="torch device (default cuda if available, else cpu)")


def run(args: argparse.Namespace) -> int:
    from acoustemo.serve import serve
    from acoustemo.timeline import TimelineConfig

    if args.max_upload_mb <= 0:
        raise ConfigError(f"--max-upload-mb must be positive, got {args.max_upload_mb}")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be 0..65535, got {args.port}")
    timeline = TimelineConfig(args.max_span, args.context)
    try:
        serve(args.model, args.host, args.port, args.max_upload_mb, args.cache_dir, args.device, timeline)
    except KeyboardInterrupt:  # Ctrl+C is how a server is stopped
        pass
    return 0
