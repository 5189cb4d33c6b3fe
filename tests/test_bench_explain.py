"""Explanation checks (acoustemo/bench/explain.py): the gold text of clips planned by the bench's own code is all
right, and each kind of wrong answer fails exactly its check. No audio, no model: cue times are placed by
cues.place_cue on made-up utterance lengths, as render_clip places them on the synthesised ones."""

from __future__ import annotations

import json

import numpy as np
import pytest

from acoustemo.bench.cues import place_cue
from acoustemo.bench.gold import CUE_LABELS, MANNERS, describe, gold_labels
from acoustemo.bench.plan import BenchConfig, plan_benchmark
from acoustemo.bench.explain import (ClipTruth, explanation_check, explanation_summary, load_truth,
                                     parse_explanation, read_predictions)

# a former examples/ clip (n400 test-0026): Clara excited with a tremor at 6.04–6.86 s; a loud burst on Maya at 4.14–5.05 s
CLARA = ClipTruth("test-0026", "Clara", "Maya", "excited", (
    {"type": "tremor", "label": "anxious", "speaker": "Clara", "distractor": False, "start": 6.04, "end": 6.86},
    {"type": "burst", "label": "angry", "speaker": "Maya", "distractor": True, "start": 4.14, "end": 5.05}))
GOLD = ("Clara speaks fast, high and loudly throughout, which sounds excited; at 6.0–6.9 s Clara's voice trembles, "
        "which sounds anxious. The loud burst at 4.1–5.0 s is Maya's, not Clara's.")
PLAIN = ClipTruth("test-0001", "Ben", "Tara", "plain", ())
PLAIN_GOLD = "Ben speaks in a plain, even voice throughout, with no vocal cue standing out, which sounds neutral."


def _truths_from_plans(n: int = 48, seed: int = 5) -> list[tuple[ClipTruth, list[str], str]]:
    """(truth, gold labels, gold explanation) of planned clips, cues placed on random utterance lengths."""
    out = []
    rng = np.random.default_rng(seed)
    for plan in plan_benchmark(BenchConfig(n=n, seed=seed)):
        durations = list(rng.uniform(1.5, 3.5, len(plan["turns"])))
        starts = list(plan["lead_s"] + np.cumsum([0.0, *(d + 0.4 for d in durations[:-1])]))
        cues = []
        for cue in plan["cues"]:
            turns = [i for i, t in enumerate(plan["turns"]) if t["speaker"] == cue["speaker"]]
            k, a, b = place_cue(cue, durations, turns)
            cues.append({"type": cue["type"], "label": CUE_LABELS[cue["type"]], "speaker": cue["speaker"],
                         "distractor": cue["distractor"], "start": round(starts[k] + a, 3),
                         "end": round(starts[k] + b, 3)})
        other = next(s for s in plan["speakers"] if s != plan["target_speaker"])
        truth = ClipTruth(plan["id"], plan["target_speaker"], other, plan["manner"], tuple(cues))
        out.append((truth, gold_labels(plan["manner"], cues), describe(truth.target, other, plan["manner"], cues)))
    return out


def test_gold_explanations_of_planned_clips_are_all_right():
    clips = _truths_from_plans()
    assert {t.manner for t, _, _ in clips} == set(MANNERS)
    assert {c["type"] for t, _, _ in clips for c in t.cues} == set(CUE_LABELS)
    assert any(c["distractor"] for t, _, _ in clips for c in t.cues)
    for truth, labels, text in clips:
        assert explanation_check(truth, labels, text) == dict.fromkeys(
            ("labels_right", "cues_match_labels", "speaker_right", "time_right", "all_right"), True), text


def test_parse_reads_each_clause():
    manner, tremor, burst = parse_explanation(GOLD)
    assert (manner.kind, manner.what, manner.speaker, manner.span, manner.label) == (
        "manner", "excited", "Clara", None, "excited")
    assert (tremor.kind, tremor.what, tremor.speaker, tremor.span, tremor.label) == (
        "cue", "tremor", "Clara", (6.0, 6.9), "anxious")
    assert (burst.kind, burst.what, burst.speaker, burst.disowned, burst.span) == (
        "disown", "burst", "Maya", "Clara", (4.1, 5.0))
    # small wording changes a model makes are read the same way; synonyms are mapped
    loose = ("Clara speaks fast, high and loudly, which sounds excited, and at 6.0-6.9 seconds Clara's voice is "
             "trembling, which sounds nervous. The loud burst at 4.1 to 5.0 s belongs to Maya, not Clara.")
    assert [(c.kind, c.what, c.speaker, c.span, c.label) for c in parse_explanation(loose)] == [
        ("manner", "excited", "Clara", None, "excited"), ("cue", "tremor", "Clara", (6.0, 6.9), "anxious"),
        ("disown", "burst", "Maya", (4.1, 5.0), None)]
    jump = parse_explanation("at 2.0–3.1 s Ben's pitch suddenly jumps up, which sounds surprised")[0]
    assert (jump.what, jump.span, jump.label) == ("jump", (2.0, 3.1), "surprised")
    # nothing is guessed: no phrase, two phrases, two spans
    assert [c.kind for c in parse_explanation("Clara is fine. At 1.0–2.0 s Clara's voice trembles and her pitch "
                                              "jumps up. At 1.0–2.0 s and 3.0–4.0 s Clara's voice trembles.")] == [
        "unparsed", "unparsed", "unparsed"]


def _fails(truth: ClipTruth, emotions: list[str], text: str) -> set[str]:
    result = explanation_check(truth, emotions, text)
    assert result["all_right"] == all(v for k, v in result.items() if k != "all_right")
    return {k for k, v in result.items() if not v and k != "all_right"}


@pytest.mark.parametrize("emotions, text, failed", [
    (["excited", "anxious"], GOLD, set()),
    (["Enthusiastic", "nervous"], GOLD, set()),  # synonyms, as the bench scorer maps them
    # the wrong label, explanation as gold
    (["sad", "anxious"], GOLD, {"labels_right"}),
    # the wrong cue for a label (a jump explaining "anxious"), and a cue phrase given the wrong label
    (["excited", "anxious"], GOLD.replace("voice trembles", "pitch suddenly jumps up"), {"cues_match_labels"}),
    (["excited", "anxious"], GOLD.replace("sounds anxious", "sounds angry"), {"cues_match_labels"}),
    # a cue claimed whose label is not answered, and a local label answered with no cue
    (["excited"], GOLD, {"labels_right", "cues_match_labels"}),
    (["excited", "anxious", "surprised"], GOLD, {"labels_right", "cues_match_labels"}),
    # the target's cue given to the other speaker; the distractor given to the target; no name at all
    (["excited", "anxious"], GOLD.replace("Clara's voice", "Maya's voice"), {"speaker_right"}),
    (["excited", "anxious"], GOLD.replace("Maya's, not Clara's", "Clara's, not Maya's"), {"speaker_right"}),
    (["excited", "anxious"], GOLD.replace("Clara's voice", "her voice"), {"speaker_right"}),
    (["excited", "anxious"], GOLD.replace("not Clara's", "not Rosa's"), {"speaker_right"}),  # not in this clip
    # the wrong time, and no time
    (["excited", "anxious"], GOLD.replace("6.0–6.9", "0.9–1.9"), {"time_right"}),
    (["excited", "anxious"], GOLD.replace("6.0–6.9", "5.4–6.3"), {"time_right"}),  # start 0.64 s early
    (["excited", "anxious"], GOLD.replace("at 6.0–6.9 s ", ""), {"time_right"}),
    (["excited", "anxious"], GOLD.replace("4.1–5.0", "1.0–2.0"), {"time_right"}),
    (["excited", "anxious"], GOLD.replace("6.0–6.9", "6.4–7.3"), set()),  # both edges within 0.5 s
    # a former shipped checkpoint answered that clip so: right labels, wrong time, a tremor invented on Maya
    (["excited", "anxious"], "Clara speaks fast, high and loudly throughout, which sounds excited; at 0.9–1.9 s "
     "Clara's voice trembles, which sounds anxious. The trembling at 1.9–2.9 s is Maya's, not Clara's.",
     {"speaker_right", "time_right"}),
    # text that cannot be read is not right
    (["excited", "anxious"], GOLD + " Overall a lively exchange.", {"cues_match_labels"}),
])
def test_each_wrong_answer_fails_its_check(emotions, text, failed):
    assert _fails(CLARA, emotions, text) == failed


def test_plain_clip_passes_cue_and_time_only_without_a_claimed_cue():
    assert _fails(PLAIN, ["neutral"], PLAIN_GOLD) == set()
    assert _fails(PLAIN, ["calm"], PLAIN_GOLD) == set()
    cue = "Ben speaks in a plain, even voice; at 1.0–2.0 s Ben's voice trembles, which sounds anxious."
    assert _fails(PLAIN, ["neutral"], cue) == {"cues_match_labels", "time_right"}
    assert _fails(PLAIN, ["anxious"], cue) == {"labels_right", "cues_match_labels", "time_right"}
    split = "Ben speaks in a plain, even voice throughout; no vocal cue stands out, which sounds neutral."
    assert [c.kind for c in parse_explanation(split)] == ["manner", "none"]
    assert _fails(PLAIN, ["neutral"], split) == set()
    assert _fails(PLAIN, ["neutral"], split.replace("neutral.", "sad.")) == {"cues_match_labels"}
    assert _fails(PLAIN, ["neutral"], "") == {"cues_match_labels", "speaker_right", "time_right"}  # says nothing


def test_summary_and_files(tmp_path):
    meta = {"clips": {t.id: {"target_speaker": t.target, "manner": t.manner, "cues": list(t.cues),
                             "speakers": {t.target: {}, t.other: {}}} for t in (CLARA, PLAIN)}}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    (tmp_path / "test.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in (CLARA.id, PLAIN.id)))
    truths = load_truth(tmp_path)
    assert truths == {CLARA.id: CLARA, PLAIN.id: PLAIN} and truths[CLARA.id].labels == ["excited", "anxious"]
    preds = tmp_path / "preds.jsonl"
    preds.write_text(json.dumps({"id": CLARA.id, "emotions": ["excited", "anxious"], "explanation": GOLD}) + "\n")
    s = explanation_summary(truths, read_predictions(preds))  # the plain clip has no prediction: fails every check
    assert (s["clips"], s["explained"]) == (2, 1)
    assert s["counts"] == dict.fromkeys(("labels_right", "cues_match_labels", "speaker_right", "time_right",
                                         "all_right"), 1)
    assert s["percent"]["all_right"] == 50.0


def test_bench_explain_command(tmp_path, capsys):
    from acoustemo.cli import main

    meta = {"clips": {t.id: {"target_speaker": t.target, "manner": t.manner, "cues": list(t.cues),
                             "speakers": {t.target: {}, t.other: {}}} for t in (CLARA, PLAIN)}}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    (tmp_path / "test.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in (CLARA.id, PLAIN.id)))
    preds = tmp_path / "preds.jsonl"
    wrong_time = GOLD.replace("6.0–6.9 s", "2.0–2.9 s")
    preds.write_text(json.dumps({"id": CLARA.id, "emotions": ["excited", "anxious"], "explanation": wrong_time})
                     + "\n" + json.dumps({"id": PLAIN.id, "emotions": ["neutral"], "explanation": PLAIN_GOLD}) + "\n")
    before = preds.read_bytes()
    assert main(["bench", "explain", str(tmp_path), str(preds), "--clips"]) == 0
    out = capsys.readouterr().out
    first, second, summary = out.split("\n", 2)
    assert json.loads(first) == {"id": CLARA.id, "failed": ["time_right", "all_right"], "gold": ["excited", "anxious"],
                                 "emotions": ["excited", "anxious"], "explanation": wrong_time}
    assert json.loads(second)["failed"] == []
    s = json.loads(summary)
    assert (s["clips"], s["explained"], s["split"]) == (2, 2, "test")
    assert s["counts"] == {"labels_right": 2, "cues_match_labels": 2, "speaker_right": 2, "time_right": 1,
                           "all_right": 1}
    assert preds.read_bytes() == before  # reads, never writes

    preds.write_text(json.dumps({"id": "val-0001", "emotions": [], "explanation": ""}) + "\n")
    assert main(["bench", "explain", str(tmp_path), str(preds)]) == 2
    assert "1 id(s) are not test clips" in capsys.readouterr().err

