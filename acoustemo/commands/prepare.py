"""`acoustemo prepare`: a manifest from a media folder, or from the field's CSVs joined by name."""

from __future__ import annotations

import argparse
import logging

from acoustemo.data.prepare import prepare_csv, prepare_folder

log = logging.getLogger("acoustemo.prepare")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", help="folder of media files (subtitles with the same name beside them are used)")
    p.add_argument("-o", "--out", required=True, help="manifest to write (JSONL)")
    p.add_argument("--segment", action="store_true",
                   help="run VAD + ASR now for media without subtitles and write the times (default: at extraction)")
    p.add_argument("--descriptions", help="CSV `name, chinese, english` (EMER-Fine descriptions)")
    p.add_argument("--labels", help="CSV `name, openset` (open-vocabulary labels as a Python-list string)")
    p.add_argument("--subtitles", help="CSV `name, english` | `name, sentence` | `name, chinese, english`")


def run(args: argparse.Namespace) -> int:
    if args.descriptions or args.labels or args.subtitles:
        report = prepare_csv(args.folder, args.out, descriptions=args.descriptions, labels=args.labels,
                             subtitles=args.subtitles)
    else:
        report = prepare_folder(args.folder, args.out, segment=args.segment)
    for warning in report.warnings:
        log.warning(warning)
    print(report.summary())
    return 0
