"""The train clips of a `bench run` other than its folder's whole train split (`--train-limit`, `--train-bench`,
`--add-train`), composed into one manifest in the runs folder; val and test stay the bench folder's own.

    bench run bench_data/n1000 --train-limit 280                          # n1000's first 280 train clips
    bench run bench_data/n1000 --train-bench bench_data/n4300 --train-limit 2100
    bench run bench_data/n1000 --add-train bench_data/flite1000tr         # + the same plans spoken by Flite

Order: the train clips of the train bench (default the bench itself), cut to the first N, then each --add-train
folder's train clips, each cut to the first N too. Clips of another folder get a prefix on their id ('x' for the
train bench, '<folder name>-' for an added folder), so they never clash with the bench's own in the shared feature
cache, whose files are keyed by clip id; every clip's media path is absolute, so the manifest reads the same from
the runs folder. Another folder must come from `bench make` with the same seed and split fractions: its train
sentences and voices may not occur in the bench's val / test splits (checked from both meta.json files).
"""

from __future__ import annotations

import json
from pathlib import Path

from acoustemo.data.manifest import write_text_atomic
from acoustemo.errors import ConfigError

TRAIN_MANIFEST = "train.jsonl"  # the composed manifest, in the runs folder


def composes_train(train_limit: int, train_bench: str | None, add_train: tuple[str, ...]) -> bool:
    return bool(train_limit or train_bench or add_train)


def train_data_settings(train_limit: int, train_bench: str | None, add_train: tuple[str, ...]) -> dict:
    """What decides the composed train clips, as recorded in each run's settings (absolute folders)."""
    return {"train_limit": train_limit, "train_bench": str(Path(train_bench).resolve()) if train_bench else None,
            "add_train": [str(Path(d).resolve()) for d in add_train]}


def compose_train(bench_dir: Path, out: Path, train_limit: int = 0, train_bench: str | None = None,
                  add_train: tuple[str, ...] = ()) -> Path:
    """The train manifest a run trains on: `bench_dir`/train.jsonl itself when nothing is composed, else the
    composed manifest written to `out`/train.jsonl (refused if one there holds other clips)."""
    if train_limit < 0:
        raise ConfigError(f"--train-limit {train_limit}: give a number of clips >= 1, or 0 for all")
    if not composes_train(train_limit, train_bench, add_train):
        return bench_dir / TRAIN_MANIFEST
    source = Path(train_bench).resolve() if train_bench else bench_dir
    lines = _train_lines(source, train_limit)
    if train_bench:
        check_disjoint(source, bench_dir, "--train-bench")
        lines = [_moved(row, source, "x") for row in lines]
    else:
        lines = [_moved(row, source, "") for row in lines]
    for extra in map(lambda d: Path(d).resolve(), add_train):
        check_disjoint(extra, bench_dir, "--add-train")
        lines += [_moved(row, extra, extra.name + "-") for row in _train_lines(extra, train_limit)]
    _check_unique([row["id"] for row in lines])
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in lines)
    path = out / TRAIN_MANIFEST
    if path.is_file() and path.read_text(encoding="utf-8") != text:
        raise ConfigError(f"{out} holds runs trained on other train clips ({path}); give another --out, or delete "
                          f"{out} to redo them on these")
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)
    return path


def _train_lines(bench: Path, limit: int) -> list[dict]:
    path = bench / TRAIN_MANIFEST
    if not path.is_file():
        raise ConfigError(f"{bench} has no {TRAIN_MANIFEST}; make its train split with `acoustemo bench make --out "
                          f"{bench} --splits train` (the same --seed as the bench)")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows[:limit] if limit else rows


def check_disjoint(other: Path, bench: Path, flag: str) -> None:
    """Refuse a folder whose train sentences or voices occur in `bench`'s val / test splits (another seed or other
    split fractions draw other pools), naming the overlap, so no test material is trained on."""
    try:
        theirs, ours = (json.loads((b / "meta.json").read_text())["splits"] for b in (other, bench))
        pools = {key: (set(theirs["train"][key]), set(ours["val"][key]) | set(ours["test"][key]))
                 for key in ("sentences", "variants")}
    except (OSError, KeyError, json.JSONDecodeError) as e:
        raise ConfigError(f"{flag} {other}: both folders need a `bench make` meta.json with train, val and test "
                          f"splits ({type(e).__name__}: {e})") from None
    for key, (train, held_out) in pools.items():
        seen = train & held_out
        if seen:
            raise ConfigError(f"{flag} {other}: {len(seen)} of its train {key} occur in {bench}'s val / test splits "
                              f"(e.g. {sorted(seen)[0]!r}); make it with the same --seed and split fractions as "
                              f"{bench}")


def _moved(clip: dict, bench: Path, prefix: str) -> dict:
    """A train clip of `bench`, renamed by `prefix` and pointing at its media there."""
    return {**clip, "id": prefix + clip["id"], "media": str(bench / clip["media"])}


def _check_unique(ids: list[str]) -> None:
    seen, repeated = set(), []
    for clip_id in ids:
        if clip_id in seen:
            repeated.append(clip_id)
        seen.add(clip_id)
    if repeated:
        raise ConfigError(f"the composed train clips repeat {len(repeated)} id(s) (e.g. {repeated[0]!r}): an "
                          f"--add-train folder is given twice or named like another; give each folder once")
