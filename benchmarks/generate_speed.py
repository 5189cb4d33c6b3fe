"""Greedy decoding speed of the shipped checkpoint's LLM on CPU, and what does not speed it up; prints JSON.

    python benchmarks/generate_speed.py

A 220-token prompt (about what a 30 s, 4-utterance clip gives) and exactly 43 new tokens (the length of the
shipped checkpoint's answer on that clip), batch 1, best of 2 after a warm-up, for: the checkpoint as predict
ran it before session 3 (peft LoRA, bf16, all threads), LoRA merged into the weights, one thread, the LLM in
float32, and LoRA merged + int8 weights (what predict loads on CPU since session 3: AcoustEmoModel.quantize_int8).
"""

from __future__ import annotations

import json
import time

import torch

from acoustemo.infer import DEFAULT_MODEL_DIR
from acoustemo.model.acoustemo import AcoustEmoModel

PROMPT, NEW = 220, 43


def seconds(llm) -> float:
    ids = torch.randint(100, 5000, (1, PROMPT), generator=torch.Generator().manual_seed(0))
    run = lambda: llm.generate(input_ids=ids, max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False, pad_token_id=0)
    with torch.inference_mode():
        run()
        best = float("inf")
        for _ in range(2):
            t = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - t)
    return round(best, 3)


def main() -> None:
    threads = torch.get_num_threads()
    out = {"prompt_tokens": PROMPT, "new_tokens": NEW, "threads": threads}
    model = AcoustEmoModel.from_pretrained(DEFAULT_MODEL_DIR).eval()
    out["bf16_lora_s"] = seconds(model.llm)
    torch.set_num_threads(1)
    out["bf16_lora_1_thread_s"] = seconds(model.llm)
    torch.set_num_threads(threads)
    model.llm.merge_adapter()
    out["bf16_lora_merged_s"] = seconds(model.llm)
    model.llm.unmerge_adapter()
    out["int8_merged_s"] = seconds(AcoustEmoModel.from_pretrained(DEFAULT_MODEL_DIR).quantize_int8().eval().llm)
    fp32 = AcoustEmoModel.from_pretrained(DEFAULT_MODEL_DIR, model.cfg.__class__(**{**model.cfg.to_json(), "llm_dtype": "float32"}))
    out["float32_lora_s"] = seconds(fp32.eval().llm)
    out["ms_per_token_bf16_lora"] = round(out["bf16_lora_s"] / NEW * 1000, 1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
