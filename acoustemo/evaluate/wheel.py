"""The emotion-wheel (EW) metric of the field (MER2026 revision), over five wheels, at level 1 and level 2.

Computed as the field's reference computes it (MERTools, `MER2025_Track23/my_affectgpt/evaluation/wheel.py`, and
the MER2026 copy that loads the same tables precomputed); `METRIC_VERSION` names it in every report.

1. A label (lowercased, stripped) is looked up as a surface form of `format.csv`: every listed form maps to the
   names of its rows, and every name maps to itself. A label that is no surface form is dropped.
2. Synonyms point *back* to the wheel word they were listed under: in each of the eight runs of `synonym.xlsx` a
   word maps to itself and each of its synonyms maps to that word; the runs are unioned. A label's candidates are
   the wheel words its names reach this way (a name that is neither a listed word nor anyone's synonym reaches none).
3. On wheel w the sorted candidates are tried in order; the first one in the wheel's table gives the mapped word,
   else the label is dropped on that wheel. The table is filled in the wheel file's order -- each level-1 word,
   then its level-2 words, then their level-3 words -- and a later entry overwrites an earlier one, so a word
   placed twice keeps its last placement. Level 1 maps to the level-1 ancestor; level 2 to the level-2 ancestor,
   a level-1 word to its alphabetically first level-2 child.
4. Per sample G / P are the mapped sets; empty G -> skipped; empty P -> precision = recall = 0; else |G∩P|/|P|,
   |G∩P|/|G|. Per wheel P_w, R_w are means over the kept samples and F_w = 2·P_w·R_w/(P_w+R_w); the figure is the
   mean over the wheels of F, P and R.

Caveat (reported with the figure): out-of-vocabulary predictions are dropped and cost nothing.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from acoustemo.evaluate.parsing import EvaluationError, parse_list_string

N_WHEELS = 5
N_SYNONYM_RUNS = 8
METRIC_VERSION = "EW, MERTools 2025/2026 mapping"


@dataclass
class Wheel:
    """word -> level-1 word and word -> level-2 word, for every word on the wheel (all three levels)."""

    name: str
    to_level1: dict[str, str]
    to_level2: dict[str, str]


@dataclass
class WheelResources:
    surface_to_names: dict[str, set[str]]  # format.csv: surface form -> names (a name is its own form too)
    to_wheel_words: dict[str, set[str]]  # synonym.xlsx, inverted: word or synonym -> the wheel words it was listed under
    wheels: list[Wheel]

    def names(self, label: str) -> set[str]:
        """The format.csv names a label is a surface form of; empty for an out-of-vocabulary label."""
        return self.surface_to_names.get(label.strip().lower(), set())

    def candidates(self, label: str) -> list[str]:
        """Sorted wheel words a label reaches (surface form -> names -> the words they are synonyms of)."""
        return sorted({w for name in self.names(label) for w in self.to_wheel_words.get(name, ())})

    def map_label(self, label: str, wheel: Wheel, level: int) -> str | None:
        table = wheel.to_level1 if level == 1 else wheel.to_level2
        for cand in self.candidates(label):
            if cand in table:
                return table[cand]
        return None


def _norm(cell) -> str:
    return str(cell).strip().lower() if cell is not None else ""


def _read_xlsx(path: Path) -> list[dict[str, object]]:
    import openpyxl

    if not path.is_file():
        raise EvaluationError(f"{path}: missing; the wheel folder needs wheel1..5.xlsx, synonym.xlsx and format.csv")
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        rows = list(wb.worksheets[0].iter_rows(values_only=True))
    finally:
        wb.close()
    if not rows:
        raise EvaluationError(f"{path}: the first sheet is empty; it needs a header row")
    header = [_norm(c) for c in rows[0]]
    return [dict(zip(header, r)) for r in rows[1:]]


def read_wheel(path: Path) -> Wheel:
    """A wheel sheet with columns level1, level2, level3; a blank cell repeats the cell above."""
    rows = _read_xlsx(path)
    if rows and not {"level1", "level2", "level3"} <= set(rows[0]):
        raise EvaluationError(f"{path}:1: the header must have level1, level2, level3 (found {sorted(rows[0])})")
    tree: dict[str, dict[str, list[str]]] = {}  # level1 -> level2 -> level3 words, in first-seen order
    prev = ["", "", ""]
    for i, row in enumerate(rows, start=2):
        cells = [_norm(row.get(k)) for k in ("level1", "level2", "level3")]
        if not any(cells):
            continue
        cur = [c or p for c, p in zip(cells, prev)]
        if not cur[0] or not cur[1]:
            raise EvaluationError(f"{path}:{i}: level1/level2 are blank with nothing above to repeat; fill them in")
        prev = cur
        l1, l2, l3 = cur
        leaves = tree.setdefault(l1, {}).setdefault(l2, [])
        if l3:
            leaves.append(l3)
    return _wheel_tables(path.stem, tree)


def _wheel_tables(name: str, tree: dict[str, dict[str, list[str]]]) -> Wheel:
    # Filled in the reference's order (a level-1 word, its level-2 words, their leaves; then the next level-1
    # word): a word placed twice keeps its *last* placement, as the reference's dict assignments do.
    to_level1: dict[str, str] = {}
    to_level2: dict[str, str] = {}
    for l1, children in tree.items():
        to_level1[l1], to_level2[l1] = l1, min(children)
        for l2, leaves in children.items():
            to_level1[l2], to_level2[l2] = l1, l2
            for l3 in leaves:
                to_level1[l3], to_level2[l3] = l1, l2
    return Wheel(name, to_level1, to_level2)


def read_format(path: Path) -> dict[str, set[str]]:
    """format.csv (`name, format`): surface form -> the names it belongs to; every name is its own form too."""
    if not path.is_file():
        raise EvaluationError(f"{path}: missing; the wheel folder needs format.csv with columns name, format")
    surface: dict[str, set[str]] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not {"name", "format"} <= {c.strip() for c in reader.fieldnames or []}:
            raise EvaluationError(f"{path}:1: format.csv needs the columns name, format (found {reader.fieldnames})")
        for row in reader:
            name = _norm(row.get("name"))
            if not name:
                continue
            for form in [name, *parse_list_string(row.get("format"))]:
                surface.setdefault(_norm(form), set()).add(name)
    return surface


def read_synonyms(path: Path) -> dict[str, set[str]]:
    """synonym.xlsx (word_run1..8 / synonym_run1..8), inverted: a word and each of its synonyms -> that word.

    The synonyms were generated *for* the wheel words, so they point back to them (a synonym listed under two
    words maps to both); the union over the eight runs is taken.
    """
    rows = _read_xlsx(path)
    need = {f"{k}_run{r}" for r in range(1, N_SYNONYM_RUNS + 1) for k in ("word", "synonym")}
    if rows and not need <= set(rows[0]):
        raise EvaluationError(f"{path}:1: the header needs word_run1..8 and synonym_run1..8 (missing {sorted(need - set(rows[0]))})")
    back: dict[str, set[str]] = {}
    for row in rows:
        for r in range(1, N_SYNONYM_RUNS + 1):
            word = _norm(row.get(f"word_run{r}"))
            if not word:
                continue
            back.setdefault(word, set()).add(word)
            cell = row.get(f"synonym_run{r}")
            for syn in parse_list_string(None if cell is None else str(cell)):
                back.setdefault(_norm(syn), set()).add(word)
    return back


def load_wheel_resources(folder: str | Path) -> WheelResources:
    folder = Path(folder)
    if not folder.is_dir():
        raise EvaluationError(f"{folder}: not a folder; give the emotion-wheel folder (wheel1..5.xlsx, synonym.xlsx, format.csv)")
    wheels = [read_wheel(folder / f"wheel{i}.xlsx") for i in range(1, N_WHEELS + 1)]
    return WheelResources(read_format(folder / "format.csv"), read_synonyms(folder / "synonym.xlsx"), wheels)


@dataclass
class WheelScore:
    f: float  # fractions in [0, 1], means over the five wheels
    p: float
    r: float
    per_wheel: list[dict] = field(default_factory=list)  # f, p, r, n_samples, n_pred_labels, n_pred_dropped
    n_pred_labels: int = 0  # predicted labels over the gold samples (distinct within a sample)
    n_pred_unknown: int = 0  # of those, not a surface form in format.csv: dropped on every wheel, cost nothing
    n_pred_off_wheel: int = 0  # of those, a surface form whose names reach no wheel word: dropped too


def ew_scores(gold: dict[str, list[str]], pred: dict[str, list[str]], res: WheelResources, level: int) -> WheelScore:
    """The EW metric at `level` (1 or 2) over the gold samples; a sample missing from `pred` predicts nothing."""
    if level not in (1, 2):
        raise ValueError(f"level must be 1 or 2, not {level}")
    per_wheel = [_score_wheel(gold, pred, res, wheel, level) for wheel in res.wheels]
    mean = lambda k: sum(w[k] for w in per_wheel) / len(per_wheel)  # noqa: E731
    labels = [x for name in gold for x in set(pred.get(name, []))]
    unknown = sum(not res.names(x) for x in labels)
    off_wheel = sum(bool(res.names(x)) and not res.candidates(x) for x in labels)
    return WheelScore(mean("f"), mean("p"), mean("r"), per_wheel, len(labels), unknown, off_wheel)


def _score_wheel(gold: dict[str, list[str]], pred: dict[str, list[str]], res: WheelResources, wheel: Wheel, level: int) -> dict:
    precisions, recalls, n_pred, n_dropped = [], [], 0, 0
    for name, labels in gold.items():
        g = {m for m in (res.map_label(x, wheel, level) for x in labels) if m}
        if not g:
            continue
        mapped = [res.map_label(x, wheel, level) for x in set(pred.get(name, []))]
        p = {m for m in mapped if m}
        n_pred += len(mapped)
        n_dropped += sum(m is None for m in mapped)
        hits = len(g & p)
        precisions.append(hits / len(p) if p else 0.0)
        recalls.append(hits / len(g) if p else 0.0)
    pw = sum(precisions) / len(precisions) if precisions else 0.0
    rw = sum(recalls) / len(recalls) if recalls else 0.0
    fw = 2 * pw * rw / (pw + rw) if pw + rw > 0 else 0.0
    return {"wheel": wheel.name, "f": fw, "p": pw, "r": rw, "n_samples": len(precisions),
            "n_pred_labels": n_pred, "n_pred_dropped": n_dropped}
