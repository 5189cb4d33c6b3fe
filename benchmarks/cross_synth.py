"""Trained on one speech engine, tested on another: the probe rows and trained models of the espeak-ng benchmark,
scored on the same plans spoken by CMU Flite (`acoustemo bench make --synth flite --splits test`).

    acoustemo bench make --out bench_data/flite1000 --synth flite --splits test      # 200 test clips, seed 0
    acoustemo extract bench_data/flite1000/test.jsonl --cache bench_data/flite1000/runs/features
    python benchmarks/cross_synth.py bench_data/n1000 bench_data/flite1000 --out /tmp/cross \\
        --model shipped=acoustemo/assets/default --model full700=RUN/runs/full/seed0/train/best

The probe and probe-global rows are fitted on TRAIN_BENCH's train split (streams and C chosen on its val split),
as `bench run` fits them, and scored on both test splits. Each model predicts TEST_BENCH's test clips as `bench run`
scores its rows (float32 LLM, no int8; the LLM alone, and "NAME + veto" after the heads veto when the model has
heads), into OUT/<name>/preds[_veto].jsonl, with TEST_BENCH's features (its runs/features cache, extracted first). Its in-domain
figure, where given (--in-domain name=PREDS.jsonl on TRAIN_BENCH's test split), is scored beside it.
Prints JSON: per row, Avg, exact sets, per-label F1, distractor false alarms, explanations all right and the
manner confusion (gold manner -> the manner the answer names).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("train_bench", type=Path, help="the bench the probe and the models were trained on")
    ap.add_argument("test_bench", type=Path, help="a bench made with another engine (only its test split is read)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--model", action="append", default=[], metavar="NAME=DIR", help="a trained model to score")
    ap.add_argument("--in-domain", action="append", default=[], metavar="NAME=PREDS",
                    help="that model's predictions on TRAIN_BENCH's test split, scored beside")
    args = ap.parse_args()
    report = {"train_bench": str(args.train_bench), "test_bench": str(args.test_bench), "rows": {}}
    for pooling, name in (("utterance", "probe"), ("global", "probe-global")):
        report["rows"][name] = probe_row(args.train_bench, args.test_bench, args.out, pooling, name)
    in_domain = dict(x.split("=", 1) for x in args.in_domain)
    for spec in args.model:
        name, model_dir = spec.split("=", 1)
        report["rows"].update(model_rows(args.test_bench, Path(model_dir), args.out / name, name))
        if name in in_domain:
            report["rows"][name]["in_domain"] = summary(args.train_bench, Path(in_domain[name]))
        print(json.dumps({k: v for k, v in report["rows"].items() if k.startswith(name)}), flush=True)
    (args.out / "cross_synth.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


def probe_row(train_bench: Path, test_bench: Path, out: Path, pooling: str, name: str) -> dict:
    from acoustemo.data.manifest import read_manifest
    from acoustemo.features.base import get_acoustic_encoder
    from acoustemo.features.cache import FeatureCache
    from acoustemo.probe import LinearProbe

    encoder = get_acoustic_encoder("default")
    loaders = {b: (lambda clip, c=FeatureCache(b / "runs" / "features"): c.load(clip, encoder))
               for b in (train_bench, test_bench)}
    train, val = (read_manifest(train_bench / f"{s}.jsonl") for s in ("train", "val"))
    probe = LinearProbe.fit(train, val, loaders[train_bench], pooling=pooling)
    row = {"stream": probe.stream or "all", "C": probe.C}
    for where, bench in (("in_domain", train_bench), ("other_engine", test_bench)):
        test = read_manifest(bench / "test.jsonl")
        predicted = probe.predict(test, loaders[bench])
        path = out / name / f"preds_{where}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps({"id": c.id, "emotions": predicted[c.id], "explanation": ""}) + "\n"
                                for c in test))
        row[where] = summary(bench, path)
    return row


def model_rows(test_bench: Path, model_dir: Path, out: Path, name: str) -> dict:
    from acoustemo.data.manifest import read_manifest
    from acoustemo.infer import heads_answers, load_predictor, predict_manifest, veto_predictions

    out.mkdir(parents=True, exist_ok=True)
    manifest = test_bench / "test.jsonl"
    predictor = load_predictor(model_dir, test_bench / "runs" / "features", int8=False, llm_dtype="float32",
                               heads="off")
    preds = out / "preds.jsonl"
    if not preds.is_file():
        predict_manifest(manifest, predictor, preds, progress=False)
    rows = {name: {"other_engine": summary(test_bench, preds), "model": str(model_dir)}}
    if predictor.model.label_heads is not None:
        answers = heads_answers(predictor, read_manifest(manifest))
        vetoed = veto_predictions(predictor, manifest, preds, out / "preds_veto.jsonl", answers)
        rows[f"{name} + veto"] = {"other_engine": summary(test_bench, out / "preds_veto.jsonl"),
                                  "clips_vetoed": vetoed, "model": str(model_dir)}
    return rows


def summary(bench: Path, preds: Path) -> dict:
    from acoustemo.bench.run import score_predictions
    from heads_veto import _summary  # the same figures as heads_veto.py's

    return {**_summary(score_predictions(bench, preds)), "manners": manner_confusion(bench, preds)}


def manner_confusion(bench: Path, preds: Path) -> dict[str, int]:
    """{"gold -> answered": clips}: the target's clip-wide manner (plain / sad / excited) against the manner label
    in the answer (sad or excited; neither = plain)."""
    manner = {k: c["manner"] for k, c in json.loads((bench / "meta.json").read_text())["clips"].items()}
    counts: dict[str, int] = {}
    for line in preds.read_text().splitlines():
        row = json.loads(line)
        said = next((m for m in ("sad", "excited") if m in row["emotions"]), "plain")
        key = f"{manner[row['id']]} -> {said}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


if __name__ == "__main__":
    main()
