"""How long are the benchmark's gold answers, and were predicted explanations cut off? Prints JSON.

    python benchmarks/answer_lengths.py [--bench bench_data/n400] [--preds bench_data/n400/runs-cls/full/preds.jsonl]

Gold: SmolLM2 tokens of each train clip's answer ("Emotions: ...\\nExplanation: ..."), the number predict's
`--max-new-tokens` must allow. Predictions: explanations that do not end in a full stop (cut by the token limit).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", default="bench_data/n400")
    ap.add_argument("--preds", default="bench_data/n400/runs-cls/full/preds.jsonl")
    args = ap.parse_args()

    from acoustemo.data.manifest import read_manifest
    from acoustemo.data.prompt import format_answer
    from acoustemo.model.llm import SMOLLM2, load_llm

    _, tokenizer = load_llm(SMOLLM2)
    lengths = sorted(len(tokenizer(format_answer(c.labels, c.description))["input_ids"])
                     for c in read_manifest(Path(args.bench) / "train.jsonl"))
    preds = [json.loads(line) for line in Path(args.preds).read_text().splitlines()]
    print(json.dumps({
        "gold_answer_tokens": {"max": lengths[-1], "median": lengths[len(lengths) // 2], "clips": len(lengths),
                               "over_64": sum(n > 64 for n in lengths)},
        "predictions": {"file": args.preds, "clips": len(preds),
                        "explanation_cut": sum(not p["explanation"].rstrip().endswith(".") for p in preds)},
    }, indent=1))


if __name__ == "__main__":
    main()
