"""`bench run`'s table: per row (the probes, then the paper's Table 2 rows) the mean ± sd over its seeds of every
score, as table.json and as the markdown table it prints; on a folder with other engines (bench/engines.py) a
per-engine section, and the table of a leave-one-engine-out run (bench/leaveout.py)."""

from __future__ import annotations

import statistics

from acoustemo.bench.engines import MANNER_LABELS
from acoustemo.bench.explain import TIME_TOLERANCE_S
from acoustemo.bench.score import LABELS
from acoustemo.config import ABLATIONS

ROW_NAMES = {  # the anchor rows, then the paper's Table 2 rows
    "probe": "linear probe (target windows + clip)",
    "probe-global": "linear probe (clip only)",
    "full": "AcoustEmo (full)",
    "no-global": "w/o global Q-Former",
    "fixed-window": "fixed 2 s windows",
    "no-utterance": "w/o utterance Q-Former",
}


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value); NaNs are left out (a label never seen)."""
    vals = [v for v in values if v == v]
    if not vals:
        return float("nan"), float("nan")
    return statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0


def build_table(rows: dict[str, list[dict]], cfg, extract_s: float, train_data: dict | None = None,
                engines: dict | None = None) -> dict:
    """Per row (probes first, then the paper's order): mean and sd over its seeds of every score. `cfg` is the
    run's RunConfig; `train_data` the composed train clips' settings (bench/subset.py), None for the bench's own;
    `engines` {engine: ...} the folder's engines when it holds other engines' test splits (bench/engines.py)."""
    order = [n for n in ("probe", "probe-global", *ABLATIONS) if rows.get(n)]
    full = mean_sd([r["avg"] for r in rows["full"]])[0] if rows.get("full") else None
    out_rows = []
    for name in order:
        runs = rows[name]
        fa = [r["distractor_false_alarms"] for r in runs]
        agg = {k: mean_sd([r[k] for r in runs]) for k in ("avg", "accuracy_s", "recall_s")}
        out_rows.append({
            "ablation": name, "row": ROW_NAMES[name], "seeds": [r["seed"] for r in runs], "n_runs": len(runs),
            **{k: m for k, (m, _) in agg.items()}, **{f"{k}_sd": sd for k, (_, sd) in agg.items()},
            "avg_per_seed": [r["avg"] for r in runs],
            "delta_avg_vs_full": None if full is None else agg["avg"][0] - full,
            "n_test": runs[0]["n_test"], "exact_sets": mean_sd([r["exact_sets"] for r in runs])[0],
            "per_label_f1": {x: mean_sd([r["per_label_f1"][x] for r in runs])[0] for x in LABELS},
            "false_alarm_rate": mean_sd([f["rate"] for f in fa]),
            "false_alarms_per_label": {k: mean_sd([f["per_label"][k]["rate"] for f in fa if k in f["per_label"]])[0]
                                       for k in sorted({k for f in fa for k in f["per_label"]})},
            "false_alarm_clips": fa[0]["clips"],
            "explanations": _explanation_figures(runs),
            "train_steps": runs[0]["train_steps"], "train_s": statistics.fmean(r["train_s"] for r in runs),
            "predict_s": statistics.fmean(r["predict_s"] for r in runs),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            **({"probe": runs[0]["probe"]} if "probe" in runs[0] else {}),
            **({"engines": _engine_columns(runs)} if engines else {}),
        })
    return {
        "seeds": list(cfg.seeds), "preset": cfg.preset, "encoder": cfg.encoder, "train_overrides": cfg.train,
        "model_overrides": cfg.model, "feature_extraction_s": round(extract_s, 1), "labels": list(LABELS),
        "rows": out_rows, **({"train_data": train_data} if train_data else {}),
        **({"engines": list(engines)} if engines else {}),
    }


def _engine_columns(runs: list[dict]) -> dict | None:
    """Per engine of the folder, mean and sd over the seeds of its test split's Avg, manner F1 (means) and false
    alarms, whether the row heard it in training; then the Avg over the heard engines and over those left out
    (each seed's mean over the engines, then mean ± sd over the seeds). None for rows scored on one engine."""
    if not all(r.get("engines") for r in runs):
        return None
    names = list(runs[0]["engines"])
    per = {}
    for e in names:
        figs = [r["engines"][e] for r in runs]
        per[e] = {"heard": figs[0]["heard"], "avg": mean_sd([f["avg"] for f in figs]),
                  "manner_f1": {x: mean_sd([f["manner_f1"][x] for f in figs])[0] for x in MANNER_LABELS},
                  "false_alarm_rate": mean_sd([f["false_alarm_rate"] for f in figs]),
                  "false_alarm_clips": figs[0]["false_alarm_clips"], "n_test": figs[0]["n_test"]}
    groups = {"heard": [e for e in names if per[e]["heard"]], "left_out": [e for e in names if not per[e]["heard"]]}
    out = {"per_engine": per, "heard": groups["heard"], "left_out": groups["left_out"]}
    for key, group in groups.items():
        out[f"avg_{key}"] = mean_sd([statistics.fmean(r["engines"][e]["avg"] for e in group) for r in runs]) \
            if group else (float("nan"), float("nan"))
    return out


def _explanation_figures(runs: list[dict]) -> dict | None:
    """Mean and sd over the seeds of each explanation check's share (percent); None for rows that write no
    explanations (the probes) or were scored before the checks existed."""
    scored = [r["explanations"] for r in runs if r.get("explanations") and r["explanations"]["explained"]]
    if len(scored) != len(runs):
        return None
    return {k: mean_sd([e["percent"][k] for e in scored]) for k in scored[0]["percent"]}


def _fmt(x, spec: str = ".1f") -> str:
    return "–" if x is None or x != x else format(x, spec)


def _pm(mean: float, sd: float, n: int, spec: str = ".2f") -> str:
    return _fmt(mean, spec) if n < 2 else f"{_fmt(mean, spec)} ± {_fmt(sd, spec)}"


def render_markdown(table: dict) -> str:
    overrides = ", ".join(f"{k}={v}" for k, v in {**table["train_overrides"], **table["model_overrides"]}.items())
    seeds = table["seeds"]
    lines = [f"Table 2 on the acoustic-cue benchmark: preset {table['preset']}, features {table['encoder']}, "
             f"seeds {', '.join(map(str, seeds))} (learned rows: mean ± sd over the seeds; the probes are one "
             f"deterministic fit)" + (f", {overrides}" if overrides else "") + _train_data_note(table) +
             ". Scores in percent.", "",
             "| Method | Avg | Accuracy_S | Recall_S | Δ Avg vs full | Avg per seed | exact sets | "
             "explanations all right % | steps | wall per run (train + test) | peak RSS |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in table["rows"]:
        n = r["n_runs"]
        per_seed = " / ".join(_fmt(a, ".2f") for a in r["avg_per_seed"]) if r["seeds"][0] is not None else "–"
        expl = _pm(*r["explanations"]["all_right"], n, ".1f") if r.get("explanations") else "–"
        lines.append(f"| {r['row']} | {_pm(r['avg'], r['avg_sd'], n)} | {_pm(r['accuracy_s'], r['accuracy_s_sd'], n)} "
                     f"| {_pm(r['recall_s'], r['recall_s_sd'], n)} | {_fmt(r['delta_avg_vs_full'], '+.2f')} | "
                     f"{per_seed} | {_fmt(r['exact_sets'], '.0f')} / {r['n_test']} | {expl} | {r['train_steps']} | "
                     f"{r['train_s'] / 60:.1f} + {r['predict_s'] / 60:.1f} min | {r['peak_rss_mb'] / 1024:.2f} GB |")
    labels = table["labels"]
    fa_labels = sorted({k for r in table["rows"] for k in r["false_alarms_per_label"]})
    lines += ["", "Per-label F1 (test, synonyms mapped; mean over seeds) and the distractor false-alarm rate: the share "
              "of clips whose cue was planted only on the other speaker where that cue's label was still predicted.", "",
              "| Method | " + " | ".join(f"F1 {x}" for x in labels) + " | false alarms | " +
              " | ".join(f"FA {x}" for x in fa_labels) + " |",
              "| --- " * (len(labels) + len(fa_labels) + 2) + "|"]
    for r in table["rows"]:
        rate, sd = r["false_alarm_rate"]
        lines.append(f"| {r['row']} | " + " | ".join(_fmt(r["per_label_f1"][x]) for x in labels) +
                     f" | {_pm(rate, sd, r['n_runs'], '.1f')} % of {r['false_alarm_clips']} | " +
                     " | ".join(f"{_fmt(r['false_alarms_per_label'].get(x))} %" for x in fa_labels) + " |")
    if table.get("engines"):
        lines += ["", "Per engine: the same test plans spoken by each engine of the folder (`bench make --engines`); "
                  "the engines the row trained on are heard, the others left out. Avg, manner F1 (sad / excited / "
                  "neutral, mean over seeds) and distractor false alarms on each engine's test split.", "",
                  *render_engine_rows(table)]
    probes = [r for r in table["rows"] if "probe" in r]
    if probes:
        lines += ["", "Probes: " + "; ".join(f"{r['row']} read {r['probe']['stream']} streams, C={r['probe']['C']:g} "
                                             f"(val Avg {r['probe']['val_avg']:.2f})" for r in probes) + "."]
    lines += ["", "Explanations all right: the share of test clips whose answer has the right labels and whose "
              "explanation gives each label its cue, each cue its speaker and the right time (within "
              f"{TIME_TOLERANCE_S:g} s; acoustemo/bench/explain.py).",
              "", f"Feature extraction (shared by the rows, computed once): {table['feature_extraction_s']:.0f} s."]
    return "\n".join(lines) + "\n"


def render_engine_rows(table: dict, left_out_column: bool = False) -> list[str]:
    """The per-engine table: per row the engines trained on, Avg heard and left out, then each engine's Avg,
    manner F1 and false alarms; `left_out_column` adds the engine a leave-one-engine-out row left out."""
    engines = table["engines"]
    lines = ["| " + ("Left out | " if left_out_column else "") + "Method | trained on | Avg heard | Avg left out | " +
             " | ".join(f"{e} Avg | {e} F1 sad / excited / neutral | {e} false alarms" for e in engines) + " |",
             "| --- " * (4 + 3 * len(engines) + left_out_column) + "|"]
    for r in table["rows"]:
        cols, n = r.get("engines"), r["n_runs"]
        if not cols:
            continue
        cells = [r["left_out"]] if left_out_column else []
        cells += [r["row"], ", ".join(cols["heard"]) or "–", _pm(*cols["avg_heard"], n),
                  _pm(*cols["avg_left_out"], n)]
        for e in engines:
            f = cols["per_engine"][e]
            fa = f"{_pm(*f['false_alarm_rate'], n, '.1f')} % of {f['false_alarm_clips']}" if f["false_alarm_clips"] \
                else "–"
            cells += [_pm(*f["avg"], n), " / ".join(_fmt(f["manner_f1"][x], ".0f") for x in MANNER_LABELS), fa]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_leave_out(table: dict) -> str:
    """The table of a leave-one-engine-out run (bench/leaveout.py): per left-out engine, its rows."""
    seeds = ", ".join(map(str, table["seeds"]))
    learned = any("probe" not in r for r in table["rows"])
    rows_note = (f"seeds {seeds} (learned rows: mean ± sd over the seeds; the probes are one deterministic fit, on "
                 f"the same training clips)" if learned else "probe rows only (one deterministic fit each)")
    lines = [f"Leave one engine out on the acoustic-cue benchmark: for each engine of the folder "
             f"({', '.join(table['engines'])}), every row trains on the train clips of the other engines (chosen on "
             f"their val clips) and is tested on every engine's test split. Preset {table['preset']}, features "
             f"{table['encoder']}, {rows_note}. Scores in percent; manner F1 is the mean over seeds.", "",
             *render_engine_rows(table, left_out_column=True)]
    return "\n".join(lines) + "\n"


def _train_data_note(table: dict) -> str:
    """The header's " (N train clips: ...)" for composed train clips (bench/subset.py); "" for the bench's own."""
    data = table.get("train_data")
    if not data:
        return ""
    source = f"the train split of {data['train_bench']}" if data["train_bench"] else "the bench's train split"
    added = "".join(f" + {d}" for d in data["add_train"])
    limit = f", the first {data['train_limit']} of each" if data["train_limit"] else ""
    return f" ({data['clips']} train clips: {source}{added}{limit})"
