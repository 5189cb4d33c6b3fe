"""The default acoustic stack on the 30 s latency clip, before and after issue #15's encoder changes; prints JSON.

    python benchmarks/encoder_overlap.py [--rounds 5]

Three variants, interleaved round by round in one process so that a machine whose speed drifts (a shared VM)
affects them alike; min and median seconds of `--rounds` encodes each, the Whisper runtime reloaded in every
encode as prediction does:
- "before": Whisper (CTranslate2 on every core) then the prosody stream, CREPE's convolutions on whole blocks;
- "crepe_chunks": the same with CREPE's convolutions in chunks of 128 windows (ProsodyEncoder.crepe_hidden);
- "default_now": chunks, and Whisper in a worker thread on one core beside CREPE's convolutions on the other
  (DefaultAcousticStack.whisper_and_pitch).
It also reports how far the three's features are apart (bit-identical with int8 Whisper; with float32 Whisper, its
default since session 12, the thread split moves them by ~2e-4). With --predict, the same rounds time the whole warm
`predict_clip` (the shipped checkpoint, the clip new to the feature cache each time) under each variant instead.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from predict_latency import make_clip  # noqa: E402  (the 30 s, 4-utterance clip)

VARIANTS = {"before": (False, 2048), "crepe_chunks": (False, 128), "default_now": (True, 128)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--predict", action="store_true", help="time the whole warm predict_clip, not the encoders")
    args = ap.parse_args()

    import acoustemo.features.prosody as prosody
    from acoustemo.data.media import load_audio
    from acoustemo.features.base import get_acoustic_encoder
    from acoustemo.hardware import hardware_report

    tmp = Path(tempfile.mkdtemp(prefix="acoustemo-overlap-"))
    media, srt = make_clip(tmp / "clip")
    audio = load_audio(media)
    if args.predict:
        from acoustemo.features.cache import FeatureCache
        from acoustemo.infer import load_predictor, predict_clip

        predictor = load_predictor(None, cache_dir=tmp / "features")
        predict_clip(media, srt, "Ana", model=predictor)  # warm-up
        stack, runs = predictor.acoustic, iter(range(10**6))

        def run():
            predictor.cache = FeatureCache(tmp / f"features-{next(runs)}")  # the clip is new each time
            return predict_clip(media, srt, "Ana", model=predictor).answer
    else:
        stack = get_acoustic_encoder("default")

        def run():
            return stack.encode(audio)
    times: dict[str, list[float]] = {k: [] for k in VARIANTS}
    outs, whisper_threads = {}, stack.whisper.threads  # its share of the cores when the two run at once
    try:
        for _ in range(args.rounds):
            for name, (concurrent, chunk) in VARIANTS.items():
                stack.concurrent, prosody._CONV_CHUNK = concurrent, chunk
                stack.whisper.threads = whisper_threads if concurrent else 0  # 0: CTranslate2's default
                stack.release()
                start = time.perf_counter()
                outs[name] = run()
                times[name].append(time.perf_counter() - start)
    finally:
        prosody._CONV_CHUNK = VARIANTS["default_now"][1]
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({
        "machine": {"cpus": os.cpu_count(), **hardware_report(), "load_avg_1m": round(os.getloadavg()[0], 2)},
        "rounds": args.rounds,
        "what": "warm predict_clip" if args.predict else "DefaultAcousticStack.encode",
        "seconds": {k: {"min": round(min(v), 3), "median": round(statistics.median(v), 3)} for k, v in times.items()},
        # features: max abs difference (float32 Whisper sums in an order that follows its thread count, ~2e-4);
        # --predict: whether the answer is the same
        "same_as_before": {k: round(float(np.abs(o - outs["before"]).max()), 6) if not args.predict
                           else o == outs["before"] for k, o in outs.items()},
    }, indent=1))


if __name__ == "__main__":
    main()
