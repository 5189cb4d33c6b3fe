"""The parts of a warm predict, measured one by one on the 30 s, 4-utterance latency clip; prints JSON (issue #7).

    python benchmarks/latency_parts.py [--repeats 3]

- "encoders": reloading and running the Whisper-base encoder; CREPE-tiny as ProsodyEncoder.pitch runs it (one
  network call for all windows of digital silence, their share given) and over every frame (the path before
  2026-12-02, commit 0b1f14f), whether the two give bit-identical F0 / periodicity (also on examples/sample.wav),
  and CREPE in bf16 over every frame;
- "llm_pass_ms": one forward pass of the shipped checkpoint's LLM as predict loads it (LoRA merged, int8 on CPU)
  over a 270-token KV cache, by the number of new tokens, with HF's attention and with the float64 attention of
  acoustemo/model/decoding.py; and the 270-token prefill.
Best of --repeats for each figure.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from acoustemo.bench.speech import latency_clip  # the 30 s, 4-utterance clip of predict_latency.py


def best_s(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def crepe_every_frame(enc, audio: np.ndarray, length: int, precision: str = "float32"):
    """CREPE over every frame, silent or not: ProsodyEncoder.pitch before 2026-12-02 (commit 0b1f14f)."""
    from acoustemo.features.prosody import _CREPE_WINDOW, _frames, _weighted_argmax

    net = enc._load().to(getattr(torch, precision))
    frames = _frames(audio, length, _CREPE_WINDOW)
    frames = frames - frames.mean(axis=1, keepdims=True)
    frames = frames / np.maximum(frames.std(axis=1, keepdims=True), 1e-10)
    with torch.inference_mode():
        probs = np.concatenate([net(torch.from_numpy(frames[i : i + 2048]).to(net.conv1.weight.dtype)).float().numpy()
                                for i in range(0, length, 2048)])
    net.float()
    return _weighted_argmax(probs, enc.fmin_hz, enc.fmax_hz)


def encoder_parts(audio: np.ndarray, repeats: int) -> dict:
    from acoustemo.data.media import load_audio
    from acoustemo.features.base import num_frames
    from acoustemo.features.registry import get_acoustic_encoder
    from acoustemo.features.prosody import _CREPE_WINDOW, _frames

    stack = get_acoustic_encoder("default")
    whisper, prosody = stack.whisper, stack.prosody
    length = num_frames(len(audio), 50.0)

    def reload():
        whisper.release()
        whisper._load()

    same = {}
    for name, wav in (("latency_clip", audio), ("sample", load_audio("examples/sample.wav"))):
        n = num_frames(len(wav), 50.0)
        a, b = prosody.pitch(wav, n), crepe_every_frame(prosody, wav, n)
        same[name] = bool(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]))
    return {
        "whisper_reload_s": round(best_s(reload, repeats), 3),
        "whisper_encode_s": round(best_s(lambda: whisper.encode(audio), repeats), 3),
        "crepe_pitch_s": round(best_s(lambda: prosody.pitch(audio, length), repeats), 3),
        "crepe_every_frame_s": round(best_s(lambda: crepe_every_frame(prosody, audio, length), repeats), 3),
        "crepe_every_frame_bf16_s": round(best_s(lambda: crepe_every_frame(prosody, audio, length, "bfloat16"),
                                                 repeats), 3),
        "silent_window_share": round(float((~_frames(audio, length, _CREPE_WINDOW).any(axis=1)).mean()), 3),
        "pitch_bit_identical": same,
    }


def llm_passes(repeats: int) -> dict:
    from transformers import DynamicCache

    from acoustemo.predictor import load_predictor
    from acoustemo.model.decoding import _float64_attention

    llm = load_predictor(None).model.llm
    ids = torch.randint(100, 5000, (1, 270), generator=torch.Generator().manual_seed(0))
    original = llm.config._attn_implementation
    out = {}
    with torch.inference_mode():
        out["prefill_270_s"] = round(best_s(lambda: llm(input_ids=ids, past_key_values=DynamicCache(),
                                                        use_cache=True, logits_to_keep=1), repeats), 3)
        for name, implementation in (("hf_attention", original), ("float64_attention", _float64_attention(original))):
            llm.config._attn_implementation = implementation
            row = {}
            for k in (1, 4, 8, 16):
                new = torch.randint(100, 5000, (1, k), generator=torch.Generator().manual_seed(k))
                times = []
                for _ in range(repeats + 1):
                    cache = DynamicCache()
                    llm(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
                    t = time.perf_counter()
                    llm(input_ids=new, past_key_values=cache, use_cache=True)
                    times.append(time.perf_counter() - t)
                row[str(k)] = round(1000 * min(times[1:]), 1)
            out[name] = row
        llm.config._attn_implementation = original
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from acoustemo.data.media import load_audio

    with tempfile.TemporaryDirectory() as tmp:
        audio = load_audio(latency_clip(Path(tmp) / "clip")[0])
    print(json.dumps({"machine": {"cpus": __import__("os").cpu_count(), "torch_threads": torch.get_num_threads()},
                      "encoders": encoder_parts(audio, args.repeats),
                      "llm_pass_ms": llm_passes(args.repeats)}, indent=1))


if __name__ == "__main__":
    main()
