"""What a finished run's stage-1 label heads alone answer on the test split, beside what its LLM answered.

    python benchmarks/stage1_heads.py RUN_DIR BENCH_DIR [--out DIR]
    # RUN_DIR: a bench run's <row>/seed<N> folder (train/best holds the model); BENCH_DIR: its `bench make` folder

With the default recipe the LM stage trains LoRA only (freeze_acoustic), so the saved model's Q-Formers are the
ones stage 1 kept. Each clip's tokens (global + the target's windows) are dotted with the label words' embeddings
(training/align.py label_logits); the per-word biases, not saved with the model, are refit by logistic regression
with the slope fixed at 1 on the train split (as stage 1 fitted them) and, separately, on the val split. Both
prediction sets are scored by `bench run`'s scorer (Avg, exact sets, per-label F1, distractor false alarms) and
printed as JSON beside the run's own scores.json: how much of the tokens' evidence the LM stage keeps.
`agreement` counts the test clips whose exact emotion set the LLM and the heads (train-fit biases) each get right:
both, the LLM only, the heads only, neither.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("bench", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="where the heads' predictions go (default: RUN_DIR)")
    args = ap.parse_args()

    from accelerate import Accelerator

    from acoustemo.bench.run import score_predictions
    from acoustemo.data.manifest import read_manifest
    from acoustemo.model.acoustemo import AcoustEmoModel
    from acoustemo.training import TrainConfig
    from acoustemo.training.align import AlignResult, fit_bias, label_heads, stage1_labels, stage1_logits
    from acoustemo.training.loop import _dataset, _feature_loaders

    out = args.out or args.run
    out.mkdir(parents=True, exist_ok=True)
    model_dir = args.run / "train" / "best"
    cfg = TrainConfig.load(model_dir / "train_config.json")
    if not cfg.freeze_acoustic:
        raise SystemExit(f"{args.run}: its LM stage trained the Q-Formers too (freeze_acoustic false), so the saved "
                         "Q-Formers are not stage 1's; this check needs a frozen-stage run")
    model = AcoustEmoModel.from_pretrained(model_dir, llm_dtype="float32").eval()
    splits = {s: read_manifest(args.bench / f"{s}.jsonl") for s in ("train", "val", "test")}
    loaders = _feature_loaders(sum(splits.values(), []), cfg, Path(cfg.cache_dir), Accelerator(cpu=True))
    words = label_heads(model, splits["train"])[0]

    zero = torch.zeros(len(words))
    logits = {s: stage1_logits(model, _dataset(c, loaders, model, model.cfg, with_answers=False), c, words, zero,
                               cfg.align_pooling) for s, c in splits.items() if s != "test"}
    test_ds = _dataset(splits["test"], loaders, model, model.cfg, with_answers=False)
    gold = {s: torch.tensor([[w in c.labels for w in words] for c in clips], dtype=torch.float32)
            for s, clips in splits.items()}
    report = {"words": words, "llm": _summary(json.loads((args.run / "scores.json").read_text()))}
    scores = {}
    for fit in ("train", "val"):
        bias = fit_bias(logits[fit], gold[fit])
        path = out / f"preds_heads_bias_{fit}.jsonl"
        picked = stage1_labels(model, test_ds, splits["test"], AlignResult([], words, bias), cfg.align_pooling)
        with path.open("w") as f:
            for clip in splits["test"]:
                f.write(json.dumps({"id": clip.id, "emotions": picked[clip.id], "explanation": ""}) + "\n")
        scores[fit] = score_predictions(args.bench, path)
        report[f"heads_bias_{fit}"] = _summary(scores[fit])
    report["agreement"] = agreement(score_predictions(args.bench, args.run / "preds.jsonl")["exact_by_clip"],
                                    scores["train"]["exact_by_clip"])
    print(json.dumps(report, indent=1))


def agreement(llm: dict[str, bool], heads: dict[str, bool]) -> dict:
    """How many test clips the LLM and the heads each get exactly right (score_predictions' exact_by_clip)."""
    pairs = [(llm[k], heads[k]) for k in llm]
    return {"both": pairs.count((True, True)), "llm_only": pairs.count((True, False)),
            "heads_only": pairs.count((False, True)), "neither": pairs.count((False, False))}


def _summary(scores: dict) -> dict:
    return {"avg": round(scores["avg"], 2), "exact_sets": scores["exact_sets"],
            "per_label_f1": {k: round(v, 1) for k, v in scores["per_label_f1"].items()},
            "distractor_false_alarm_pct": round(scores["distractor_false_alarms"]["rate"], 1)}


if __name__ == "__main__":
    main()
