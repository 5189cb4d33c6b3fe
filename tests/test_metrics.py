"""Accuracy_S / Recall_S, the emotion-wheel metric and `acoustemo evaluate`: hand-computed cases, the field's
fixture scored end to end, and the CLI."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from acoustemo.commands.evaluate import evaluate
from acoustemo.evaluate.grouping import (
    embedding_groupings,
    make_groupings,
    read_grouping_cache,
    wheel_groupings,
    write_grouping_cache,
)
from acoustemo.evaluate.parsing import EvaluationError, parse_list_string, read_labels
from acoustemo.evaluate.setlevel import format_grouping, parse_grouping, score_sample, set_level_scores
from acoustemo.evaluate.wheel import ew_scores, load_wheel_resources

EMER = Path(__file__).resolve().parents[2] / "shared" / "emer"
STORE = EMER / "mer2024_ov_store"
WHEEL = EMER / "emotion_wheel"
needs_emer = pytest.mark.skipif(
    not (STORE / "check-openset.csv").is_file() or not (WHEEL / "wheel1.xlsx").is_file(),
    reason=f"the field's reference data is not at {EMER} (emotion_wheel/, mer2024_ov_store/); "
    "put the shared checkout beside the repo to run these",
)
REPO = Path(__file__).resolve().parents[1]


def write_csv(path: Path, rows: dict[str, str], header=("name", "openset")) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows.items())
    return path


# ---------------------------------------------------------------- parsing


def test_list_string_parsing_follows_the_reference():
    assert parse_list_string("['Happy', ' sad ']") == ["Happy", "sad"]  # case kept here; labels are lowercased later
    assert parse_list_string("""["don't believe", 'doubt']""") == ["don", "t believe", "doubt"]  # apostrophe splits
    assert parse_list_string("[]") == [] and parse_list_string("") == [] and parse_list_string(None) == []
    assert parse_list_string("[happy, sad]") == ["happy, sad"]  # no quotes: one piece, as the reference does
    assert parse_grouping("[['joyful', 'Happy'], ['sad'], []]") == [["joyful", "Happy"], ["sad"]]
    assert parse_grouping(format_grouping([["a b", "c"], ["d"]])) == [["a b", "c"], ["d"]]


def test_read_labels_csv_and_jsonl(tmp_path):
    gold = read_labels(write_csv(tmp_path / "g.csv", {"s1": "['Happy', 'SAD']", "s2": "[]"}))
    assert gold.format == "csv" and gold.labels == {"s1": ["happy", "sad"], "s2": []}
    jl = tmp_path / "p.txt"  # no telling extension: detected from content
    jl.write_text(
        json.dumps({"id": "s1", "emotions": ["Joyful", " don't know "], "explanation": "x"}) + "\n\n"
        + json.dumps({"id": "s2", "labels": "['Calm']"}) + "\n"
        + json.dumps({"id": "s3", "media": "a.mp4"}) + "\n"
    )
    pred = read_labels(jl)
    assert pred.format == "jsonl" and pred.skipped == 1
    assert pred.labels == {"s1": ["joyful", "don't know"], "s2": ["calm"]}  # JSON lists are taken as written


def test_bad_label_files_name_the_line_and_fix(tmp_path):
    with pytest.raises(EvaluationError, match=r"x\.csv:1: .*`name` and `openset`"):
        read_labels(write_csv(tmp_path / "x.csv", {"s1": "['a']"}, header=("id", "labels")))
    with pytest.raises(EvaluationError, match=r"dup\.csv:3: sample `s1` appears twice"):
        p = tmp_path / "dup.csv"
        p.write_text("name,openset\ns1,['a']\ns1,['b']\n")
        read_labels(p)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "s1", "labels": ["a"]}\n{"id": "s2", "labels": [1]}\n')
    with pytest.raises(EvaluationError, match=r"bad\.jsonl:2: \"labels\" must be a list of strings"):
        read_labels(bad)


# ---------------------------------------------------------------- Accuracy_S / Recall_S by hand


def test_sample_scores_by_hand():
    groups = [["happy", "joyful"], ["angry"]]
    s = score_sample("a", ["happy", "joyful", "sad"], ["joyful", "angry"], groups)
    assert (s.gold_mapped, s.pred_mapped) == (["happy", "sad"], ["angry", "happy"])
    assert (s.accuracy, s.recall) == (1 / 2, 1 / 2)
    s = score_sample("a", ["happy", "joyful", "sad"], ["joyful", "angry"], None)  # exact match
    assert (s.accuracy, s.recall) == (1 / 2, 1 / 3)
    assert (score_sample("a", ["happy"], [], groups).accuracy, score_sample("a", ["happy"], [], groups).recall) == (0, 0)
    # members are used exactly as written: a capitalised member never meets a (lowercased) label
    s = score_sample("a", ["happy"], ["joyful"], [["Happy", "joyful"]])
    assert (s.gold_mapped, s.pred_mapped, s.accuracy) == (["happy"], ["Happy"], 0)


def test_set_level_means_missing_and_ungrouped_samples():
    gold = {"a": ["happy", "joyful", "sad"], "b": ["sad"], "c": ["angry"], "d": ["calm"], "e": []}
    pred = {"a": ["joyful", "angry"], "b": [], "d": ["calm"], "e": ["x"], "zz": ["happy"]}
    groups = {"a": [["happy", "joyful"]], "b": [["sad"]], "c": [["angry"]], "e": [["x"]]}
    r = set_level_scores(gold, pred, groups)  # d has no grouping: skipped, as the reference loops over groupings
    # a: G={happy,sad} P={happy,angry} -> 1/2, 1/2; b: empty P -> 0, 0; c: missing -> 0, 0; e: empty gold, skipped
    assert r.n_samples == 3 and r.n_without_grouping == 1 and r.n_missing_predictions == 1 and r.n_empty_gold == 1
    assert r.n_empty_predictions == 2 and r.n_extra_predictions == 1
    assert r.accuracy_s == pytest.approx(1 / 6) and r.recall_s == pytest.approx(1 / 6)
    assert r.avg == pytest.approx((r.accuracy_s + r.recall_s) / 2)
    r = set_level_scores(gold, pred, groups, without_grouping="exact")  # d scored by exact match: 1, 1
    assert r.n_samples == 4 and r.accuracy_s == pytest.approx(1.5 / 4) and r.recall_s == pytest.approx(1.5 / 4)
    assert [s.name for s in r.samples if s.exact_match_fallback] == ["d"]


def test_apostrophes_split_as_in_the_reference(tmp_path):
    g = write_csv(tmp_path / "g.csv", {"s": "['doubt', 'Anger']"})
    p = write_csv(tmp_path / "p.csv", {"s": """["don't believe", 'doubt']"""})
    cache = tmp_path / "c.json"
    cache.write_text(json.dumps({"s": "[['t believe', 'doubt'], ['don', 'anger']]"}))
    report, sl, _ = evaluate(g, p, groupings=cache)
    # pred -> {don, t believe, doubt} -> {don, t believe}; gold -> {t believe, don}: a perfect match
    assert sl.samples[0].pred == ["don", "t believe", "doubt"]
    assert (report["accuracy_s"], report["recall_s"], report["grouping"]) == (100.0, 100.0, "cache:c.json")


# ---------------------------------------------------------------- emotion wheel by hand


def write_xlsx(path: Path, rows: list[tuple]) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    for r in rows:
        wb.active.append(list(r))
    wb.save(path)


@pytest.fixture
def tiny_wheel(tmp_path) -> Path:
    folder = tmp_path / "wheel"
    folder.mkdir()
    w = [
        ("level1", "level2", "level3"),
        ("Happy", "Joyful", "Excited"),
        (None, None, "Cheerful"),  # blank: same as above (happy / joyful)
        (None, "Content", "Peaceful"),
        ("Sad", "Lonely", "Isolated"),
        (None, None, "Content"),  # placed twice: its level-2 placement under happy wins
        (None, "Depressed", "Empty"),
    ]
    for i in range(1, 5):
        write_xlsx(folder / f"wheel{i}.xlsx", w)
    write_xlsx(folder / "wheel5.xlsx", [("level1", "level2", "level3"), (" Scared ", " Nervous ", " Terrified "), (None, "Afraid", "Frightened")])
    header = [f"{k}_run{r}" for r in range(1, 9) for k in ("word", "synonym")]
    syn = ["Glad", "peaceful, pleased"] + ["glad", "Cheerful"] + [None] * 12  # union of runs: peaceful, pleased, cheerful
    write_xlsx(folder / "synonym.xlsx", [tuple(header), tuple(syn)])
    (folder / "format.csv").write_text(
        "name,format\n"
        'happy,"happy,happiness"\njoyful,"joyful,joy"\nexcited,"excited,excitement"\ncheerful,cheerful\n'
        'glad,"glad,gladness"\nsad,"sad,sadness"\nlonely,"lonely,loneliness"\nempty,empty\nscared,"scared,fear"\n'
        "peaceful,peaceful\ncontent,content\nno words,\n"
    )
    return folder


def test_wheel_reading(tiny_wheel):
    res = load_wheel_resources(tiny_wheel)
    w1, w5 = res.wheels[0], res.wheels[4]
    assert w1.to_level1["cheerful"] == "happy" and w1.to_level2["cheerful"] == "joyful"  # blank cells repeat
    assert w1.to_level1["empty"] == "sad" and w1.to_level2["empty"] == "depressed"
    assert w1.to_level2["happy"] == "content" and w1.to_level2["sad"] == "depressed"  # first level-2 child
    assert w1.to_level1["content"] == "happy"  # coarsest placement wins
    assert w5.to_level1["terrified"] == "scared" and w5.to_level2["scared"] == "afraid"  # cells are stripped
    assert res.candidates("Glad ") == ["cheerful", "glad", "peaceful", "pleased"]
    assert res.candidates("xyzzy") == [] and "" not in res.surface_to_canonical
    # alphabetically first candidate on the wheel: cheerful (-> joyful), not peaceful (-> content)
    assert res.map_label("gladness", w1, 2) == "joyful"


def test_wheel_scores_by_hand(tiny_wheel):
    res = load_wheel_resources(tiny_wheel)
    gold = {"s1": ["happy"], "s2": ["excited", "lonely"], "s3": ["xyzzy"], "s4": ["empty"], "s5": ["fear"]}
    pred = {"s1": ["glad", "sad"], "s2": ["joy", "xyzzy"], "s3": ["happy"], "s5": ["scared", "happy"]}
    # wheels 1-4, level 1: s1 P={happy,sad} G={happy} -> 1/2, 1; s2 P={happy} G={happy,sad} -> 1, 1/2;
    # s3 empty G: skipped; s4 no prediction: 0, 0; s5 off the wheel: skipped -> P = R = F = 1/2
    # wheel 5: only s5 counts: G={scared}, P={scared} (happy dropped) -> 1, 1, 1
    l1 = ew_scores(gold, pred, res, 1)
    assert [w["n_samples"] for w in l1.per_wheel] == [3, 3, 3, 3, 1]
    assert (l1.p, l1.r, l1.f) == pytest.approx((3 / 5, 3 / 5, 3 / 5))
    # level 2: happy -> content, glad -> joyful, sad -> depressed: s1 0, 0; s2 G={joyful,lonely} P={joyful} -> 1, 1/2;
    # s4 0, 0 -> P = 1/3, R = 1/6, F = 2/9 on wheels 1-4; wheel 5: scared -> afraid on both sides -> 1
    l2 = ew_scores(gold, pred, res, 2)
    assert l2.per_wheel[0]["f"] == pytest.approx(2 / 9)
    assert (l2.p, l2.r, l2.f) == pytest.approx(((4 / 3 + 1) / 5, (4 / 6 + 1) / 5, (4 * 2 / 9 + 1) / 5))
    # predicted labels: glad, sad, joy, xyzzy, happy, scared, happy (s3) -> 7; xyzzy unknown; dropped per wheel
    assert (l1.n_pred_labels, l1.n_pred_unknown) == (7, 1)
    assert (l1.per_wheel[0]["n_pred_labels"], l1.per_wheel[0]["n_pred_dropped"]) == (4, 1)
    assert (l1.per_wheel[4]["n_pred_labels"], l1.per_wheel[4]["n_pred_dropped"]) == (2, 1)


def test_wheel_synonym_grouping(tiny_wheel):
    res = load_wheel_resources(tiny_wheel)
    g = wheel_groupings({"s": ["happiness", "happy", "glad", "cheerful", "sad", "xyzzy"]}, res)
    assert g["s"] == [["happiness", "happy"], ["glad", "cheerful"], ["sad"], ["xyzzy"]]


def test_missing_wheel_file_is_named(tiny_wheel):
    (tiny_wheel / "wheel3.xlsx").unlink()
    with pytest.raises(EvaluationError, match=r"wheel3\.xlsx: missing"):
        load_wheel_resources(tiny_wheel)


# ---------------------------------------------------------------- embeddings (one model load)


def test_embedding_grouping_and_scores():
    groups = embedding_groupings({"s": ["happy", "joyful", "kitchen table", "sad"]})
    assert groups["s"] == [["happy", "joyful"], ["kitchen table"], ["sad"]]
    r = set_level_scores({"s": ["happy", "sad"]}, {"s": ["joyful", "kitchen table"]}, groups)
    assert (r.accuracy_s, r.recall_s) == (1 / 2, 1 / 2)


# ---------------------------------------------------------------- the field's fixture


def reference_scores(gold_csv: Path, pred_csv: Path, cache: Path) -> tuple[Fraction, Fraction, int]:
    """A second, deliberately plain implementation of the reference, in exact fractions."""

    def to_list(s: str) -> list[str]:
        s = s.strip()
        s = s[s.find("[") + 1 : s.rfind("]")] if "[" in s else s
        return [x.strip() for x in re.split("[\"']", s) if x.strip() not in ("", ",")]

    def read(p: Path) -> dict[str, list[str]]:
        with open(p, newline="") as f:
            return {r["name"]: [x.lower() for x in to_list(r["openset"])] for r in csv.DictReader(f)}

    gold, pred = read(gold_csv), read(pred_csv)
    acc, rec = [], []
    for name, raw in json.loads(cache.read_text()).items():
        inner = raw.strip()[1:-1].strip()
        mapping = {}
        for chunk in re.split(r"\]\s*,\s*\[", inner):
            members = to_list("[" + chunk.strip("[] ") + "]")
            mapping.update({m: members[0] for m in members})
        g = {mapping.get(x, x) for x in gold[name]}
        p = {mapping.get(x, x) for x in pred.get(name, [])}
        acc.append(Fraction(len(g & p), len(p)) if p else Fraction(0))
        rec.append(Fraction(len(g & p), len(g)) if p else Fraction(0))
    return sum(acc) / len(acc), sum(rec) / len(rec), len(acc)


@needs_emer
def test_field_fixture_end_to_end(tmp_path):
    gold, pred, cache = STORE / "check-openset.csv", STORE / "predict-openset.csv", STORE / "openset-synonym.json"
    report, sl, groups = evaluate(gold, pred, groupings=cache, wheel=WHEEL)
    acc, rec, n = reference_scores(gold, pred, cache)
    assert n == 332 and report["n_samples"] == 332 and report["n_missing_predictions"] == 0
    assert report["n_without_grouping"] == 0 and report["n_empty_predictions"] == 5
    assert report["accuracy_s"] == pytest.approx(100 * float(acc), abs=1e-9)
    assert report["recall_s"] == pytest.approx(100 * float(rec), abs=1e-9)
    assert report["avg"] == pytest.approx((report["accuracy_s"] + report["recall_s"]) / 2)
    assert (round(report["accuracy_s"], 2), round(report["recall_s"], 2), round(report["avg"], 2)) == (58.18, 49.78, 53.98)
    assert next(s for s in sl.samples if s.name == "sample_00001774").accuracy == 1.0  # the apostrophe case
    for level, f in ((1, 54.41), (2, 44.63)):
        ew = report[f"ew_level{level}"]
        assert 0 < ew["p"] <= 100 and 0 < ew["r"] <= 100 and round(ew["f"], 2) == f
        assert ew["f"] == pytest.approx(sum(w["f"] for w in ew["per_wheel"]) / 5)
        for w in ew["per_wheel"]:
            assert w["f"] == pytest.approx(2 * w["p"] * w["r"] / (w["p"] + w["r"]))
            assert 300 <= w["n_samples"] <= 332
    assert report["ew_n_pred_unknown"] == 63 and report["ew_n_pred_labels"] == 774
    # the cache survives a save / read round trip, and offline groupings cover every sample
    write_grouping_cache(tmp_path / "g.json", groups)
    assert read_grouping_cache(tmp_path / "g.json") == groups
    gl, pl = read_labels(gold).labels, read_labels(pred).labels
    name, wg = make_groupings(gl, pl, "wheel", wheel=load_wheel_resources(WHEEL))
    r = set_level_scores(gl, pl, wg)
    exact = set_level_scores(gl, pl, make_groupings(gl, pl, "none")[1])
    assert name == "wheel-synonyms" and r.n_samples == 332 and exact.avg < r.avg < sl.avg


# ---------------------------------------------------------------- CLI


@needs_emer
def test_cli_json_on_the_field_fixture():
    out = subprocess.run(
        [sys.executable, "-m", "acoustemo", "evaluate", "--gold", str(STORE / "check-openset.csv"),
         "--pred", str(STORE / "predict-openset.csv"), "--groupings", str(STORE / "openset-synonym.json"),
         "--wheel", str(WHEEL), "--json"],
        capture_output=True, text=True, cwd=REPO, check=True,
    )
    report = json.loads(out.stdout)
    for key in ("accuracy_s", "recall_s", "avg", "ew_level1", "ew_level2", "n_samples", "n_missing_predictions", "grouping"):
        assert key in report
    assert set(report["ew_level1"]) >= {"f", "p", "r"} and report["grouping"] == "cache:openset-synonym.json"
    assert report["units"] == "percent" and "cost nothing" in report["ew_caveat"]


def test_cli_jsonl_files_per_sample_and_saved_groupings(tmp_path):
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps({"id": i, "media": f"{i}.mp4", "labels": l}) + "\n" for i, l in [("a", ["happy", "sad"]), ("b", ["angry"])]))
    pred = tmp_path / "pred.jsonl"
    pred.write_text(json.dumps({"id": "a", "emotions": ["Happy"], "explanation": "smiles"}) + "\n")
    per, saved = tmp_path / "per.jsonl", tmp_path / "groups.json"
    cmd = [sys.executable, "-m", "acoustemo", "evaluate", "--gold", str(gold), "--pred", str(pred), "--grouping", "none",
           "--per-sample", str(per), "--save-groupings", str(saved), "--json"]
    report = json.loads(subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=True).stdout)
    # a: 1/1, 1/2; b: missing -> 0, 0
    assert (report["accuracy_s"], report["recall_s"], report["avg"]) == (50.0, 25.0, 37.5)
    assert report["n_missing_predictions"] == 1 and report["grouping"] == "none" and report["ew_level1"] is None
    rows = [json.loads(x) for x in per.read_text().splitlines()]
    assert rows[0] == {"name": "a", "gold": ["happy", "sad"], "pred": ["happy"], "gold_mapped": ["happy", "sad"],
                       "pred_mapped": ["happy"], "acc": 1.0, "recall": 0.5, "missing_prediction": False,
                       "exact_match_fallback": False}
    assert json.loads(saved.read_text()) == {"a": "[['happy'], ['sad']]", "b": "[['angry']]"}
    bad = write_csv(tmp_path / "bad.csv", {"a": "['x']"}, header=("id", "openset"))
    out = subprocess.run(cmd[:5] + [str(bad)] + cmd[6:], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2 and "bad.csv:1:" in out.stderr and "`name` and `openset`" in out.stderr
