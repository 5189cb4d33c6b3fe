"""The stage-1 heads veto (`acoustemo predict --heads veto`) on finished bench runs: the LLM's answers as they are
and after the veto, on val (the split that chooses the switch) and on test.

    python benchmarks/heads_veto.py BENCH_DIR RUN_DIR [RUN_DIR ...] [--refit [--save]]
    # RUN_DIR: a bench run's <row>/seed<N> folder (train/best holds the model, preds.jsonl its test answers)

Per run: the model's saved stage-1 heads (stage1_heads.json). A model saved before acoustemo kept them needs
--refit: the biases are refit on the train split with the slope held at 1 (training/align.py fit_bias), as stage 1
fits them; --save then writes them into train/best, so `acoustemo predict --heads veto` can use that model. The
LLM's val answers are predicted once into RUN_DIR/preds_val.jsonl (float32, no int8, like `bench run`'s test
answers). On each split the veto is applied to the LLM's answers exactly as prediction applies it
(training/align.py heads_veto, data/prompt.py drop_label_clauses), written to preds[_val]_veto.jsonl, and all of
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
    from accelerate import Accelerator

    from acoustemo.bench.explain import read_predictions
    from acoustemo.bench.run import score_predictions
    from acoustemo.data.manifest import read_manifest
    from acoustemo.data.prompt import drop_label_clauses
    from acoustemo.infer import predict_manifest
    from acoustemo.model.acoustemo import LABEL_HEADS, AcoustEmoModel, LabelHeads
    from acoustemo.training import TrainConfig
    from acoustemo.training.align import AlignResult, fit_bias, heads_veto, label_heads, stage1_labels, stage1_logits
    from acoustemo.training.loop import _dataset, _feature_loaders

    model_dir = run / "train" / "best"
    if not (run / "preds.jsonl").is_file() or not (model_dir / "config.json").is_file():
        raise SystemExit(f"{run} is not a finished bench run folder (needs train/best/ and preds.jsonl)")
    cfg = TrainConfig.load(model_dir / "train_config.json")
    model = AcoustEmoModel.from_pretrained(model_dir, llm_dtype="float32").eval()
    splits = {s: read_manifest(bench / f"{s}.jsonl") for s in ("train", *SPLITS)}
    loaders = _feature_loaders(sum(splits.values(), []), cfg, Path(cfg.cache_dir), Accelerator(cpu=True))
    data = {s: _dataset(c, loaders, model, model.cfg, with_answers=False) for s, c in splits.items()}
    heads = model.label_heads
    if heads is None:
        if not refit:
            raise SystemExit(f"{model_dir} has no {LABEL_HEADS} (saved before acoustemo kept stage 1's heads); pass "
                             f"--refit to refit their biases on the train split")
        words, _, gold = label_heads(model, splits["train"])
        logits = stage1_logits(model, data["train"], splits["train"], words, torch.zeros(len(words)), cfg.align_pooling)
        heads = LabelHeads(words, fit_bias(logits, gold).tolist(), cfg.align_pooling,
                           "refit on the train split (benchmarks/heads_veto.py --refit)")
        if save:
            heads.save(model_dir / LABEL_HEADS)
    result = AlignResult([], heads.words, torch.tensor(heads.bias))
    answers = {s: stage1_labels(model, data[s], splits[s], result, heads.pooling) for s in SPLITS}
    del model
    if not (run / "preds_val.jsonl").is_file():
        predict_manifest(bench / "val.jsonl", model_dir, run / "preds_val.jsonl", cfg.cache_dir, progress=False,
                         int8=False)
    row: dict = {"run": str(run), "heads_source": heads.source}
    for split in SPLITS:
        suffix = "" if split == "test" else "_val"
        llm_path = run / f"preds{suffix}.jsonl"
        llm = read_predictions(llm_path)
        veto_lines, heads_lines, vetoed = [], [], 0
        for clip_id, p in llm.items():
            kept, dropped = heads_veto(p["emotions"], answers[split][clip_id])
            vetoed += bool(dropped)
            veto_lines.append({"id": clip_id, "emotions": kept, "vetoed": dropped,
                               "explanation": drop_label_clauses(p["explanation"], dropped)})
            heads_lines.append({"id": clip_id, "emotions": answers[split][clip_id], "explanation": ""})
        paths = {"llm": llm_path, "veto": run / f"preds{suffix}_veto.jsonl", "heads": run / f"preds{suffix}_heads.jsonl"}
        for name, lines in (("veto", veto_lines), ("heads", heads_lines)):
            paths[name].write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in lines))
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
