"""Reading gold labels and predictions, in the field's CSVs or in the project's JSONL files.

The field's files hold each label list as a Python-list *string* (`"['happy', 'relaxed']"`). Its reference code
(`string_to_list` in MERTools' `toolkit/utils/functions.py`) does not `ast.literal_eval` them: it cuts between the
outer brackets and splits on quote characters *and commas*. We do the same, on purpose, so scores match the
published ones — including its quirks that a label with an apostrophe (`"don't believe"`) becomes two labels
(`don`, `t believe`; the field's LLM groupings were made from those pieces) and that an unquoted `[happy, sad]`
is two labels.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

from acoustemo.errors import AcoustEmoError

_SEPARATORS = re.compile(r"['\",]")
_QUOTES = re.compile(r"['\"]")


class EvaluationError(AcoustEmoError):
    """A gold / prediction / grouping / wheel file that cannot be scored (names the file, line and fix)."""


def parse_list_string(text: str | None, split_commas: bool = True) -> list[str]:
    """The reference's `string_to_list`: `"['a', 'b']"` -> `['a', 'b']`, `"[a, b]"` -> `['a', 'b']`.

    Drop a leading `[` and a trailing `]`, split on `'`, `"` and `,`, strip each piece and drop the empty ones.
    Case is kept: callers lowercase labels. One deliberate difference: the text is stripped first, so a cell
    with a stray space before its `[` does not yield a `[` label (the reference would keep one).
    `split_commas=False` splits on quotes only, as the reference's `listlist_to_list` does for the members of a
    grouping answer (pieces that are only separators are dropped).
    """
    if text is None:
        return []
    s = str(text).strip()
    if s.startswith("["):
        s = s[1:]
    if s.endswith("]"):
        s = s[:-1]
    pieces = (piece.strip() for piece in (_SEPARATORS if split_commas else _QUOTES).split(s))
    return [p for p in pieces if p.strip(", \t\r\n")]


def normalize_labels(labels: list[str]) -> list[str]:
    """Lowercase + strip, drop empties; order kept (duplicates are harmless: the metrics use sets)."""
    return [s for s in (str(x).strip().lower() for x in labels) if s]


@dataclass
class LabelFile:
    """Labels per sample read from one file; `format` is "csv" or "jsonl"; `skipped` counts rows without labels."""

    path: Path
    format: str
    labels: dict[str, list[str]]
    skipped: int = 0


def detect_format(path: Path) -> str:
    """"csv" or "jsonl", from the extension, else from the first non-blank character."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in {".jsonl", ".json", ".ndjson"}:
        return "jsonl"
    with open(path, encoding="utf-8-sig") as f:
        head = f.read(4096).lstrip()
    return "jsonl" if head.startswith("{") else "csv"


def read_labels(path: str | Path) -> LabelFile:
    """Gold or predicted labels per sample name, lowercased (the field's CSV or our JSONL; see `detect_format`)."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationError(f"{path}: no such file; give the path of a CSV (name, openset) or a JSONL file")
    fmt = detect_format(path)
    return _read_csv(path) if fmt == "csv" else _read_jsonl(path)


def _read_csv(path: Path) -> LabelFile:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        fields = [c.strip() for c in reader.fieldnames or []]
        if "name" not in fields or "openset" not in fields:
            raise EvaluationError(
                f"{path}:1: a label CSV needs the columns `name` and `openset` (found {fields}); "
                "rename the columns, or give a JSONL file with `id` and `labels`/`emotions`"
            )
        labels: dict[str, list[str]] = {}
        for row in reader:
            row = {(k or "").strip(): v for k, v in row.items()}
            name = (row.get("name") or "").strip()
            if not name:
                continue
            if name in labels:
                raise EvaluationError(f"{path}:{reader.line_num}: sample `{name}` appears twice; keep one row per sample")
            labels[name] = normalize_labels(parse_list_string(row.get("openset")))
    return LabelFile(path, "csv", labels)


def jsonl_rows(path: str | Path):
    """(line number, row) for each non-blank line of a JSONL file of samples; every row a JSON object with a
    non-empty string "id", or an EvaluationError naming the line."""
    with open(path, encoding="utf-8-sig") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise EvaluationError(f"{path}:{line_no}: not valid JSON ({e.msg}); write one JSON object per line") from None
            if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not row["id"].strip():
                raise EvaluationError(f'{path}:{line_no}: each line needs a string "id"; add the sample\'s id')
            yield line_no, row


def _read_jsonl(path: Path) -> LabelFile:
    labels: dict[str, list[str]] = {}
    skipped = 0
    for line_no, row in jsonl_rows(path):
        name = row["id"].strip()
        if name in labels:
            raise EvaluationError(f"{path}:{line_no}: id `{name}` appears twice; keep one line per sample")
        # predictions carry "emotions", manifests "labels"; a row with neither is an unlabelled clip
        key = "emotions" if "emotions" in row else "labels" if "labels" in row else None
        if key is None:
            skipped += 1
            continue
        labels[name] = normalize_labels(_as_list(row[key], path, line_no, key))
    return LabelFile(path, "jsonl", labels, skipped)


def _as_list(value, path: Path, line_no: int, key: str) -> list[str]:
    # A JSON list is taken as written (no apostrophe splitting); a string is parsed like the field's CSV cells.
    if value is None:
        return []
    if isinstance(value, str):
        return parse_list_string(value) if value.strip().startswith("[") else [value]
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return value
    raise EvaluationError(f'{path}:{line_no}: "{key}" must be a list of strings, e.g. ["happy", "relaxed"]')
