"""`acoustemo export`: a portable model folder from a trained run (acoustemo/export.py): no feature-cache path,
llm_dtype auto, no stage-1 heads, the answer bank only when asked."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_dir", metavar="MODEL_DIR", help="a trained model: a run's best/ folder, a save_pretrained "
                   "folder or a training run folder (its best/ is used)")
    p.add_argument("out_dir", metavar="OUT_DIR", help="the folder to write (created; must be empty or new)")
    p.add_argument("--answer-bank", action="store_true", help="add answer_bank.json: the run's own, else the "
                   "training answers of the manifest its run.json names (prediction's drafts guess from them: faster "
                   "decoding, the same answers)")
    p.add_argument("--force", action="store_true", help="replace a non-empty OUT_DIR (a README.md there is kept)")


def run(args: argparse.Namespace) -> int:
    from acoustemo.export import export_model

    out = export_model(args.model_dir, args.out_dir, answer_bank=args.answer_bank, force=args.force)
    print(f"exported: {out} ({', '.join(sorted(p.name for p in out.iterdir()))})")
    return 0
