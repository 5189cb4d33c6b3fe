"""`acoustemo validate`: every problem of a manifest with its line number; exit 1 if there is any. Notes (keys
kept as custom metadata, a line with both utterances and subtitles) are listed too but are not problems."""

from __future__ import annotations

import argparse

from acoustemo.data.manifest import check_manifest


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", help="manifest to check (JSONL)")
    p.add_argument("--no-media-check", action="store_true", help="only check that media files exist; do not open them")


def run(args: argparse.Namespace) -> int:
    problems, notes = check_manifest(args.manifest, check_media=not args.no_media_check)
    for note in notes:
        where = f"[{note.clip_id}] " if note.clip_id else ""
        print(f"{args.manifest}:{note.line}: note: {where}{note.message}")
    for problem in problems:
        where = f"[{problem.clip_id}] " if problem.clip_id else ""
        print(f"{args.manifest}:{problem.line}: {where}{problem.message}")
    if problems:
        print(f"{len(problems)} problem(s)")
        return 1
    print(f"{args.manifest}: ok" + (f" ({len(notes)} note(s))" if notes else ""))
    return 0
