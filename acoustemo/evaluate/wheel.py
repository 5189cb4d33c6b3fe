"""The emotion-wheel (EW) metric of the field (MER2026 revision), over five wheels, at level 1 and level 2.

A label (lowercased, stripped) that is not a surface form in `format.csv` is dropped; otherwise its canonical
words, expanded by the union of the synonym runs of `synonym.xlsx`, are the candidates; the alphabetically
first candidate on wheel w is mapped to its level-1 word (or level-2 word; a level-1 word maps to its
alphabetically first level-2 child); a label with no candidate on the wheel is dropped too. Per sample
G / P are the mapped sets; empty G -> skipped; empty P -> precision = recall = 0; else |G∩P|/|P|, |G∩P|/|G|.
Per wheel P_w, R_w are means over samples and F_w = 2·P_w·R_w/(P_w+R_w); the figure is the mean over wheels.

Caveat (reported with the figure): out-of-vocabulary predictions are dropped and cost nothing.

Where the public description is silent: a word placed twice on one wheel (wheel2 has four such words) maps by
its coarsest placement (a level-1 node maps to itself, then a level-2 node, then a level-3 leaf), ties going to
the earlier row.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from acoustemo.evaluate.parsing import EvaluationError

N_WHEELS = 5
N_SYNONYM_RUNS = 8


@dataclass
class Wheel:
    """word -> level-1 word and word -> level-2 word, for every word on the wheel (all three levels)."""

    name: str
    to_level1: dict[str, str]
    to_level2: dict[str, str]


@dataclass
class WheelResources:
    surface_to_canonical: dict[str, set[str]]  # format.csv: surface form -> canonical words
    synonyms: dict[str, set[str]]  # synonym.xlsx: canonical word -> union of its synonyms over runs
    wheels: list[Wheel]

    def candidates(self, label: str) -> list[str]:
        """Sorted candidates of a label (canonical words + synonyms); [] for an unknown surface form."""
        canon = self.surface_to_canonical.get(label.strip().lower(), set())
        out = set(canon)
        for c in canon:
            out |= self.synonyms.get(c, set())
        return sorted(out)

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
    placements: dict[str, tuple[int, int, str, str]] = {}  # word -> (level, row, its level-1, its level-2)
    children: dict[str, set[str]] = {}
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
        children.setdefault(l1, set()).add(l2)
        for level, word in ((1, l1), (2, l2), (3, l3)):
            if word and (word not in placements or (level, i) < placements[word][:2]):
                placements[word] = (level, i, l1, l2)
    to_level1 = {w: l1 for w, (_, _, l1, _) in placements.items()}
    to_level2 = {w: (min(children[w]) if level == 1 else l2) for w, (level, _, _, l2) in placements.items()}
    return Wheel(path.stem, to_level1, to_level2)


def read_format(path: Path) -> dict[str, set[str]]:
    """format.csv (`name, format`): each canonical name with its comma-separated surface forms."""
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
            for form in (row.get("format") or "").split(","):
                if _norm(form):
                    surface.setdefault(_norm(form), set()).add(name)
    return surface


def read_synonyms(path: Path) -> dict[str, set[str]]:
    """synonym.xlsx: columns word_run1..8 / synonym_run1..8; a word's synonyms are the union over runs."""
    rows = _read_xlsx(path)
    need = {f"{k}_run{r}" for r in range(1, N_SYNONYM_RUNS + 1) for k in ("word", "synonym")}
    if rows and not need <= set(rows[0]):
        raise EvaluationError(f"{path}:1: the header needs word_run1..8 and synonym_run1..8 (missing {sorted(need - set(rows[0]))})")
    synonyms: dict[str, set[str]] = {}
    for row in rows:
        for r in range(1, N_SYNONYM_RUNS + 1):
            word = _norm(row.get(f"word_run{r}"))
            if word:
                syn = {_norm(s) for s in str(row.get(f"synonym_run{r}") or "").split(",")}
                synonyms.setdefault(word, set()).update(s for s in syn if s)
    return synonyms


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
    n_pred_labels: int = 0  # distinct predicted labels over the gold samples
    n_pred_unknown: int = 0  # of those, not a surface form in format.csv: dropped on every wheel, cost nothing


def ew_scores(gold: dict[str, list[str]], pred: dict[str, list[str]], res: WheelResources, level: int) -> WheelScore:
    """The EW metric at `level` (1 or 2) over the gold samples; a sample missing from `pred` predicts nothing."""
    if level not in (1, 2):
        raise ValueError(f"level must be 1 or 2, not {level}")
    per_wheel = [_score_wheel(gold, pred, res, wheel, level) for wheel in res.wheels]
    mean = lambda k: sum(w[k] for w in per_wheel) / len(per_wheel)  # noqa: E731
    labels = [x for name in gold for x in set(pred.get(name, []))]
    unknown = sum(not res.candidates(x) for x in labels)
    return WheelScore(mean("f"), mean("p"), mean("r"), per_wheel, len(labels), unknown)


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
