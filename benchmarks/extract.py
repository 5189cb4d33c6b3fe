"""Throughput of `extract` over a manifest of espeak-ng clips (~5-8 s each); prints JSON.

    python benchmarks/extract.py [--clips 100] [--acoustic default] [--keep DIR]

Clips are synthesised once into a temporary folder (or DIR with --keep, reused on the next run);
the feature cache starts empty for the timed pass, then a second pass measures the all-cached skip path.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from acoustemo.bench.speech import speak
from acoustemo.data.manifest import read_manifest
from acoustemo.features.registry import get_acoustic_encoder
from acoustemo.features.cache import FeatureCache
from acoustemo.features.extract import extract

WORDS = ("the morning train was late again and everyone on the platform kept checking the board while a child "
         "sang quietly near the stairs and the wind pushed old newspapers along the tracks").split()
VOICES = ["en-us", "en-us+m3", "en-us+f2", "en-us+m7", "en-us+f4", "en"]


def make_clips(folder: Path, n: int) -> Path:
    manifest = folder / "manifest.jsonl"
    if manifest.is_file() and len(manifest.read_text().splitlines()) == n:
        return manifest
    rows = []
    for i in range(n):
        words = WORDS[i % 7 :] + WORDS[: i % 7]
        text = " ".join(words[: 14 + (i % 8)])  # ~5-8 s at 150-190 wpm
        speak(text, folder / f"c{i:03d}.wav", voice=VOICES[i % len(VOICES)], rate_wpm=150 + 10 * (i % 5))
        rows.append(json.dumps({"id": f"c{i:03d}", "media": f"c{i:03d}.wav"}))
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=100)
    ap.add_argument("--acoustic", default="default")
    ap.add_argument("--keep", type=Path, default=None, help="keep the synthesised clips here for the next run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.keep or Path(tmp) / "data"
        data.mkdir(parents=True, exist_ok=True)
        clips = read_manifest(make_clips(data, args.clips))
        encoder = get_acoustic_encoder(args.acoustic)
        cache = FeatureCache(Path(tmp) / "cache")
        start = time.perf_counter()
        encoder.encode(__import__("numpy").zeros(16000, "float32"))  # model load, outside the timed pass
        load_s = time.perf_counter() - start
        first = extract(clips, cache, encoder, progress=False)
        second = extract(clips, cache, encoder, progress=False)
    print(json.dumps({
        "encoder": args.acoustic, "clips": len(clips), "media_s": round(first.audio_s, 1),
        "mean_clip_s": round(first.audio_s / max(len(clips), 1), 2), "model_load_s": round(load_s, 1),
        "extract_wall_s": round(first.wall_s, 1), "clips_per_s": round(len(first.computed) / first.wall_s, 2),
        "x_rt": round(first.audio_s / first.wall_s, 1), "failed": len(first.failed),
        "rerun_all_cached_wall_s": round(second.wall_s, 2), "rerun_skipped": len(second.skipped),
    }, indent=1))


if __name__ == "__main__":
    main()
