"""The stage-1 heads veto (`acoustemo predict --heads veto`) on finished bench runs: the LLM's answers as they are
and after the veto, on val (the split that chooses the switch) and on test.

    python benchmarks/heads_veto.py BENCH_DIR RUN_DIR [RUN_DIR ...] [--refit [--save]]
    # RUN_DIR: a bench run's <row>/seed<N> folder (train/best holds the model, preds.jsonl its test answers)

Per run: the model's saved stage-1 heads (stage1_heads.json). A model saved before acoustemo kept them needs
--refit: the biases are refit on the train split with the slope held at 1 (training/align.py fit_bias), as stage 1
fits them; --save then writes them into train/best, so `acoustemo predict --heads veto` can use that model. The
LLM's val answers are predicted once into RUN_DIR/preds_val.jsonl (float32, no int8, like `bench run`'s test
answers). On each split the veto is applied to the LLM's answers as prediction applies it (acoustemo/infer.py
veto_predictions), written to preds[_val]_veto.jsonl, and all of
{LLM, LLM + veto, heads alone} are scored by `bench run`'s scorer: Avg, exact sets, distractor false alarms and the
share of explanations that are all right. Prints JSON: per run, then mean ± sd over the runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

SPLITS = ("val", "test")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench", type=Path)
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--refit", action="store_true", help="refit the heads' biases on train when the model has none")
    ap.add_argument("--save", action="store_true", help="with --refit: write them into RUN_DIR/train/best")
    args = ap.parse_args()
    rows = [veto_run(args.bench, run, args.refit, args.save) for run in args.runs]
    report = {"runs": rows, "mean": {}}
    for split in SPLITS:
        for answer in ("llm", "veto", "heads"):
            for key in ("avg", "exact_sets", "false_alarm_pct", "all_right_pct"):
                values = [r[split][answer][key] for r in rows]
                sd = statistics.stdev(values) if len(values) > 1 else 0.0
                report["mean"][f"{split} {answer} {key}"] = f"{statistics.mean(values):.2f} ± {sd:.2f}"
    print(json.dumps(report, indent=1, ensure_ascii=False))


def veto_run(bench: Path, run: Path, refit: bool, save: bool) -> dict:
    from acoustemo.bench.run import score_predictions
    from acoustemo.data.manifest import read_manifest
    from acoustemo.infer import heads_answers, load_predictor, predict_manifest, veto_predictions
    from acoustemo.model.acoustemo import LABEL_HEADS, LabelHeads
    from acoustemo.training import TrainConfig
    from acoustemo.training.align import fit_bias, label_heads, stage1_logits
    from acoustemo.training.loop import _dataset

    model_dir = run / "train" / "best"
    if not (run / "preds.jsonl").is_file() or not (model_dir / "config.json").is_file():
        raise SystemExit(f"{run} is not a finished bench run folder (needs train/best/ and preds.jsonl)")
    cfg = TrainConfig.load(model_dir / "train_config.json")
    predictor = load_predictor(model_dir, cfg.cache_dir, int8=False, llm_dtype="float32", heads="off")  # as `bench run`
    model = predictor.model
    if model.label_heads is None:
        if not refit:
            raise SystemExit(f"{model_dir} has no {LABEL_HEADS} (saved before acoustemo kept stage 1's heads); pass "
                             f"--refit to refit their biases on the train split")
        train = read_manifest(bench / "train.jsonl")
        words, _, gold = label_heads(model, train)
        ds = _dataset(train, (predictor.load_acoustic, predictor.load_visual), model, model.cfg, with_answers=False)
        logits = stage1_logits(model, ds, train, words, torch.zeros(len(words)), cfg.align_pooling)
        model.label_heads = LabelHeads(words, fit_bias(logits, gold).tolist(), cfg.align_pooling,
                                       "refit on the train split (benchmarks/heads_veto.py --refit)")
        if save:
            model.label_heads.save(model_dir / LABEL_HEADS)
    if not (run / "preds_val.jsonl").is_file():
        predict_manifest(bench / "val.jsonl", predictor, run / "preds_val.jsonl", progress=False)
    row: dict = {"run": str(run), "heads_source": model.label_heads.source}
    for split in SPLITS:
        suffix = "" if split == "test" else "_val"
        paths = {"llm": run / f"preds{suffix}.jsonl", "veto": run / f"preds{suffix}_veto.jsonl",
                 "heads": run / f"preds{suffix}_heads.jsonl"}
        answers = heads_answers(predictor, read_manifest(bench / f"{split}.jsonl"))
        vetoed = veto_predictions(predictor, bench / f"{split}.jsonl", paths["llm"], paths["veto"], answers)
        paths["heads"].write_text("".join(json.dumps({"id": k, "emotions": v or [], "explanation": ""}) + "\n"
                                          for k, v in answers.items()))
        row[split] = {name: _summary(score_predictions(bench, path, split)) for name, path in paths.items()}
        row[split]["clips_vetoed"] = vetoed
    return row


def _summary(s: dict) -> dict:
    return {"avg": round(s["avg"], 2), "exact_sets": s["exact_sets"],
            "false_alarm_pct": round(s["distractor_false_alarms"]["rate"], 1),
            "all_right_pct": round(s["explanations"]["percent"]["all_right"], 1),
            "per_label_f1": {k: round(v, 1) for k, v in s["per_label_f1"].items()}}


if __name__ == "__main__":
    main()
