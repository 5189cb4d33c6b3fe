"""Does a loaded CTranslate2 Whisper model slow the LLM's greedy decoding in the same process? Prints JSON.

    python benchmarks/whisper_runtime.py

Times 20 greedy tokens (271-token prompt, batch 1) of the shipped checkpoint's LLM as `load_predictor` loads it
(LoRA merged, int8 on CPU): before any Whisper encode, after encoding a 30 s clip with the default stack (the
CTranslate2 model stays loaded), after `release()` frees it; and the cost of reloading it on the next encode.
This is why prediction releases the Whisper runtime after each clip (WhisperEncoder.release).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from predict_latency import make_clip  # noqa: E402  (the 30 s, 4-utterance clip)


def decode_s(llm) -> float:
    ids = torch.randint(100, 5000, (1, 271), generator=torch.Generator().manual_seed(0))
    run = lambda: llm.generate(input_ids=ids, max_new_tokens=20, min_new_tokens=20, do_sample=False, pad_token_id=0)
    with torch.inference_mode():
        run()
        best = float("inf")
        for _ in range(2):
            t = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - t)
    return round(best, 3)


def main() -> None:
    from acoustemo.data.media import load_audio
    from acoustemo.infer import load_predictor

    predictor = load_predictor(None)
    llm, whisper = predictor.model.llm, predictor.acoustic.whisper
    with tempfile.TemporaryDirectory() as tmp:
        audio = load_audio(make_clip(Path(tmp) / "clip")[0])
    out = {"before_any_encode_s": decode_s(llm)}
    whisper.encode(audio)
    out["whisper_loaded_s"] = decode_s(llm)
    whisper.release()
    out["after_release_s"] = decode_s(llm)
    t = time.perf_counter()
    whisper._load()
    out["whisper_reload_s"] = round(time.perf_counter() - t, 3)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
