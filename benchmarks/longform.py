"""Long recordings end to end (issue #14): a multi-minute espeak-ng dialogue -> emotion timeline; prints JSON.

    python benchmarks/longform.py --make bench_data/long10 --minutes 10 --utterances 150     # build it once
    python benchmarks/longform.py --run bench_data/long10 [--llm-dtype float32] [--batch-size 4] [--max-span 30]
    python benchmarks/longform.py --make bench_data/long60 --from bench_data/long10 --repeat 6   # an hour

--run times `acoustemo.timeline.predict_media` with the shipped checkpoint (int8 LLM weights, as predict on CPU)
and an empty feature cache (wall seconds, and the process's CPU seconds, which do not depend on what else a shared
machine runs): decoding, Whisper, the prosody stream (CREPE), writing the cache file, planning the
windows and the LLM (Q-Formers + generation), plus the model load, and the process's peak RSS (ru_maxrss) and its
RSS after loading the model. --llm-dtype float32 loads the LLM in float32 instead of the checkpoint's bfloat16
(ModelConfig.llm_dtype is a runtime field): on CPUs without native bf16 (AVX2 only) bf16 matmuls are far slower.
The dialogue: two speakers (bench voice pool), neutral sentences, turns of 1-3 utterances, pauses set so the
recording lasts --minutes; dialogue.wav + dialogue.srt. --repeat concatenates a made recording N times.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16_000
VOICES = {"Ana": ("en-us", 165, 55), "Ben": ("en-gb-x-rp+m3", 150, 40)}


def _srt_time(s: float) -> str:
    ms = round(s * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def write_srt(path: Path, utts: list[dict]) -> None:
    path.write_text("".join(f"{i + 1}\n{_srt_time(u['start'])} --> {_srt_time(u['end'])}\n{u['speaker']}: {u['text']}\n\n"
                            for i, u in enumerate(utts)), encoding="utf-8")


def make(out: Path, minutes: float, n_utts: int, seed: int = 0) -> dict:
    from acoustemo.bench.synth import synthesize
    from acoustemo.bench.sentences import NEUTRAL_SENTENCES

    rng = np.random.default_rng(seed)
    speakers, turn_left, who = [], 0, "Ben"
    for _ in range(n_utts):
        if turn_left == 0:
            who, turn_left = ("Ana" if who == "Ben" else "Ben"), int(rng.integers(1, 4))
        speakers.append(who)
        turn_left -= 1
    waves = [synthesize(NEUTRAL_SENTENCES[i % len(NEUTRAL_SENTENCES)], *VOICES[s]) for i, s in enumerate(speakers)]
    speech_s = sum(len(w) for w in waves) / SR
    gap_s = max(0.2, (minutes * 60 - speech_s - 0.5) / n_utts)
    parts, utts, t = [np.zeros(int(0.5 * SR), np.float32)], [], 0.5
    for i, (s, w) in enumerate(zip(speakers, waves)):
        utts.append({"start": round(t, 3), "end": round(t + len(w) / SR, 3), "speaker": s,
                     "text": NEUTRAL_SENTENCES[i % len(NEUTRAL_SENTENCES)]})
        parts += [w.astype(np.float32), np.zeros(int(gap_s * SR), np.float32)]
        t += len(w) / SR + int(gap_s * SR) / SR
    out.mkdir(parents=True, exist_ok=True)
    sf.write(out / "dialogue.wav", np.concatenate(parts), SR)
    write_srt(out / "dialogue.srt", utts)
    return {"folder": str(out), "duration_s": round(t, 1), "utterances": len(utts), "speech_s": round(speech_s, 1)}


def repeat(src: Path, out: Path, n: int) -> dict:
    from acoustemo.data.subtitles import read_subtitles

    wav, sr = sf.read(src / "dialogue.wav", dtype="float32")
    utts, _ = read_subtitles(src / "dialogue.srt")
    period = len(wav) / sr
    out.mkdir(parents=True, exist_ok=True)
    with sf.SoundFile(out / "dialogue.wav", "w", sr, 1) as f:
        for _ in range(n):
            f.write(wav)
    allu = [{"start": k * period + u.start_s, "end": k * period + u.end_s, "speaker": u.speaker, "text": u.text}
            for k in range(n) for u in utts]
    write_srt(out / "dialogue.srt", allu)
    return {"folder": str(out), "duration_s": round(n * period, 1), "utterances": len(allu)}


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s() -> float:
    """CPU seconds of this process (all threads): the work done, whatever else the shared machine runs."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def load(llm_dtype: str | None, cache: Path, int8: bool = True, drafts: bool = True):
    from acoustemo.config import ModelConfig
    from acoustemo.features.registry import get_acoustic_encoder
    from acoustemo.features.cache import FeatureCache
    from acoustemo.predictor import Predictor, resolve_model_dir
    from acoustemo.model.acoustemo import AcoustEmoModel

    folder = resolve_model_dir(None)
    cfg = ModelConfig.load(folder / "config.json")
    if llm_dtype:
        cfg.llm_dtype = llm_dtype
    model = AcoustEmoModel.from_pretrained(folder, cfg).eval()
    model.quantize_int8() if int8 else model.merge_lora()
    return Predictor(model, folder, FeatureCache(cache), get_acoustic_encoder("default"), None, 96, drafts)


def _first_windows(predictor, folder: Path, config, n: int):
    from acoustemo.data.subtitles import read_subtitles
    from acoustemo.timeline import plan_for, predict_timeline

    utts, _ = read_subtitles(folder / "dialogue.srt")
    start = time.perf_counter()
    windows = plan_for(predictor, utts, None, config)
    plan_s = time.perf_counter() - start
    tl = predict_timeline(folder / "dialogue.wav", utts, predictor, None, config, windows=windows[:n])
    tl.timings_s["plan"] = plan_s
    tl.timings_s["planned_windows"] = len(windows)
    return tl


def run(folder: Path, llm_dtype: str | None, batch_size: int, max_span_s: float, threads: int, int8: bool,
        answer_windows: int = 0, table_to: str | None = None) -> dict:
    import torch

    from acoustemo.timeline import Timeline, TimelineConfig, predict_media

    torch.set_num_threads(threads)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache:
        predictor = load(llm_dtype, Path(cache), int8)
        load_s = time.perf_counter() - start
        rss_loaded = _rss_mb()
        cpu0 = _cpu_s()
        start = time.perf_counter()
        config = TimelineConfig(max_span_s, 2, batch_size)
        if answer_windows:  # the whole file's features and plan, the LLM on the first windows only
            tl = _first_windows(predictor, folder, config, answer_windows)
        else:
            tl = predict_media(folder / "dialogue.wav", folder / "dialogue.srt", model=predictor, config=config)
        wall = time.perf_counter() - start
        cpu = _cpu_s() - cpu0
    assert isinstance(tl, Timeline)
    if table_to:
        from acoustemo.timeline import format_timeline

        Path(table_to).write_text(format_timeline(tl) + "\n" + json.dumps(tl.to_json(), indent=1) + "\n")
    t = tl.timings_s
    return {
        "recording": str(folder), "duration_s": round(tl.duration_s, 1), "utterances": len(tl.utterances),
        "windows": int(tl.timings_s.get("planned_windows", len(tl.windows))), "answered_windows": len(tl.windows), "answers": len(tl.entries), "max_span_s": max_span_s, "batch_size": batch_size,
        "llm_dtype": llm_dtype or predictor.model.cfg.llm_dtype, "int8": int8, "torch_threads": threads,
        "end_to_end_s": round(wall, 1), "end_to_end_cpu_s": round(cpu, 1), "model_load_s": round(load_s, 1),
        "load_average_1min": round(os.getloadavg()[0], 1),
        "parts_s": {"decode": round(t.get("decode", 0), 1), "whisper": round(t.get("whisper", 0), 1),
                    "prosody": round(t.get("prosody", 0), 1), "write_cache": round(t.get("write", 0), 1),
                    "features_total": round(t.get("features", 0), 1), "plan": round(t.get("plan", 0), 2),
                    "llm": round(t.get("llm", 0), 1)},
        "llm_s_per_answer": round(t.get("llm", 0) / max(len(tl.entries), 1), 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_after_model_load_mb": round(rss_loaded),
        "summary": {s: v.to_json() for s, v in tl.summary().items()},
    }


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--make", type=Path)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--utterances", type=int, default=150)
    ap.add_argument("--from", dest="src", type=Path, help="with --make: repeat this made recording")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--run", type=Path)
    ap.add_argument("--llm-dtype", choices=("float32", "bfloat16"))
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-span", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-int8", action="store_true")
    ap.add_argument("--table", metavar="OUT.txt", help="also write the terminal table and the timeline JSON here")
    ap.add_argument("--answer-windows", type=int, default=0, help="answer only the first N windows (features and the "
                    "plan still cover the whole file): for the memory of a long file without hours of LLM time")
    args = ap.parse_args()
    out = {"cpu_capability": torch.backends.cpu.get_cpu_capability(),
           "native_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()), "cpus": os.cpu_count()}
    if args.make:
        out["made"] = repeat(args.src, args.make, args.repeat) if args.src else make(args.make, args.minutes, args.utterances)
    if args.run:
        out["run"] = run(args.run, args.llm_dtype, args.batch_size, args.max_span, args.threads, not args.no_int8,
                         args.answer_windows, args.table)
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
