"""Real-time factor of each offline encoder on this machine; prints JSON.

    python benchmarks/encoders.py [--clips 8] [--repeats 3]

"x_rt" = seconds of media encoded per wall-clock second (best of `repeats` passes over the same clips,
after one warm-up pass). Clips are espeak-ng sentences of ~5-8 s; the video is a 10 s ffmpeg test pattern.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from acoustemo.bench.speech import speak  # the same real speech the tests use
from acoustemo.features.registry import get_acoustic_encoder, get_visual_encoder

TEXT = ("The weather changed quickly that afternoon, and by the time we reached the station the platform was "
        "already crowded with people waiting for the last train home.")
VOICES = ["en-us", "en-us+m3", "en-us+f2", "en", "en-us+m7", "en-us+f4"]


def clips(folder: Path, n: int) -> list[np.ndarray]:
    return [speak(TEXT, folder / f"c{i}.wav", voice=VOICES[i % len(VOICES)], rate_wpm=170 + 10 * (i % 4)) for i in range(n)]


def rtf(encode, items, seconds: float, repeats: int) -> float:
    for x in items[:1]:
        encode(x)  # warm-up: model load, first-call allocations
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for x in items:
            encode(x)
        best = min(best, time.perf_counter() - start)
    return round(seconds / best, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import torch

    from acoustemo.hardware import hardware_report

    out = {"machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "cpu": platform.processor(),
                       **hardware_report()}}
    with tempfile.TemporaryDirectory() as tmp:
        wavs = clips(Path(tmp), args.clips)
        seconds = sum(len(w) for w in wavs) / 16000
        out["audio"] = {"clips": len(wavs), "total_s": round(seconds, 1), "mean_clip_s": round(seconds / len(wavs), 2)}
        for name, options in [("whisper-base", {}), ("whisper-base", {"pad_last_window": False}), ("whisper-tiny.en", {}),
                              ("prosody", {}), ("prosody", {"precision": "bfloat16"}), ("default", {}),
                              ("default", {"prosody_precision": "bfloat16"}), ("default", {"pad_last_window": True}),
                              ("opensmile-egemaps", {})]:
            label = name + "".join(f"[{k}={v}]" for k, v in options.items())
            try:
                enc = get_acoustic_encoder(name, **options)
                out[label] = {"x_rt": rtf(enc.encode, wavs, seconds, args.repeats), "dim": enc.dim, "frame_rate_hz": enc.frame_rate_hz}
            except Exception as e:  # e.g. the optional opensmile extra is absent
                out[label] = {"error": f"{type(e).__name__}: {e}"[:200]}
        video = Path(tmp) / "v.mp4"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=25", "-t", "10",
                        "-c:v", "libx264", "-pix_fmt", "yuv420p", str(video)], check=True)
        from acoustemo.data.media import load_frames

        vis = get_visual_encoder("default")
        frames, _ = load_frames(video, 25.0, max_side_px=vis.max_side_px)
        vis.encode_frames(frames[:2])
        start = time.perf_counter()
        vis.encode_frames(frames)
        per_frame = (time.perf_counter() - start) / len(frames)
        start = time.perf_counter()
        sampled, _ = load_frames(video, vis.frame_rate_hz, max_side_px=vis.max_side_px)
        vis.encode_frames(sampled)
        clip_wall = time.perf_counter() - start
        out["visual-default"] = {"frames_per_s": round(1 / per_frame, 1), "fps_setting": vis.frame_rate_hz,
                                 "x_rt_incl_decode_10s_640x360": round(10 / clip_wall, 1),
                                 "note": "test pattern (no faces): detector only; a face adds one FER crop (~3500/s)"}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
