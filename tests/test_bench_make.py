"""`acoustemo bench make`: real espeak-ng + sox synthesis, measured on the written audio (no mocks)."""

from __future__ import annotations

import ast
import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from acoustemo.bench.gold import CUE_LABELS, MANNERS, SYNONYMS, bench_groupings
from acoustemo.bench.make import GENERATOR_VERSION, make_benchmark, render_clip
from acoustemo.bench.plan import SPLITS, BenchConfig, _cue_plan, plan_benchmark, split_sizes
from acoustemo.bench.sentences import NEUTRAL_SENTENCES
from acoustemo.bench.synth import ENGINE_VOICES, FESTIVAL_VOICES, FLITE_VOICES, VARIANT_POOLS, BenchError, synthesize
from acoustemo.bench.check import loudness_db, paired_effect
from acoustemo.errors import ConfigError

N, SEED = 8, 11
MANIFEST_KEYS = {"id", "media", "utterances", "target_speaker", "labels", "description"}


def _need_tools():
    for tool, pkg in (("espeak-ng", "espeak-ng"), ("sox", "sox")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian: apt-get install {pkg})")


@pytest.fixture(scope="session")
def bench(tmp_path_factory):
    """A small benchmark made with 2 workers, and the same one made again with 1 worker elsewhere."""
    _need_tools()
    a, b = tmp_path_factory.mktemp("bench_a"), tmp_path_factory.mktemp("bench_b")
    summary = make_benchmark(a, BenchConfig(n=N, seed=SEED, workers=2))
    make_benchmark(b, BenchConfig(n=N, seed=SEED, workers=1))
    return a, b, summary


def _rows(folder: Path) -> list[dict]:
    return [json.loads(line) for split in SPLITS for line in (folder / f"{split}.jsonl").read_text().splitlines()]


def _meta(folder: Path) -> dict:
    return json.loads((folder / "meta.json").read_text())


def test_manifests_are_valid(bench):
    folder, _, summary = bench
    assert summary.counts == {"train": 5, "val": 1, "test": 2} and summary.made == N  # 70 / 10 / 20 %
    rows = _rows(folder)
    assert len(rows) == N and len({r["id"] for r in rows}) == N
    for r in rows:
        assert set(r) == MANIFEST_KEYS
        wav, sr = sf.read(folder / r["media"], dtype="float32")
        assert sr == 16_000 and wav.ndim == 1
        duration = len(wav) / sr
        utts = r["utterances"]
        assert 2 <= len(utts) <= 4
        for u in utts:
            assert set(u) == {"start", "end", "speaker", "text"} and u["text"]
            assert 0 <= u["start"] < u["end"] <= duration + 1e-3
        for prev, nxt in zip(utts, utts[1:]):
            assert prev["end"] < nxt["start"], f"{r['id']}: utterances overlap or are out of order"
            assert 0.19 <= nxt["start"] - prev["end"] <= 0.61  # the planned 0.2–0.6 s gaps
        speakers = {u["speaker"] for u in utts}
        assert len(speakers) == 2 and r["target_speaker"] in speakers
        assert r["labels"] and all(isinstance(x, str) and x for x in r["labels"])
        srt = (folder / "subtitles" / f"{r['id']}.srt").read_text()
        assert srt.count(" --> ") == len(utts) and f"{utts[0]['speaker']}: {utts[0]['text']}" in srt


def test_subtitle_times_hug_the_speech(bench):
    """Trimmed TTS: the gaps are near the noise floor and speech starts/ends right at the subtitle times."""
    folder, _, _ = bench
    for r in _rows(folder):
        wav, _ = sf.read(folder / r["media"], dtype="float32")
        db = loudness_db(wav)
        utts = r["utterances"]
        for prev, nxt in zip(utts, utts[1:]):
            gap = db[int(prev["end"] * 100) + 2 : int(nxt["start"] * 100) - 2]
            assert gap.max() < -55, f"{r['id']}: sound in the gap {prev['end']}–{nxt['start']} s"
        for u in utts:
            a, b = int(u["start"] * 100), int(u["end"] * 100)
            peak = db[a:b].max()
            assert db[a : a + 6].max() > peak - 45 and db[b - 6 : b].max() > peak - 45, f"{r['id']}: silence kept"


def test_labels_and_descriptions_follow_meta(bench):
    folder, _, _ = bench
    meta = _meta(folder)
    assert meta["seed"] == SEED and meta["generator_version"] == GENERATOR_VERSION
    for r in _rows(folder):
        clip = meta["clips"][r["id"]]
        own = [c for c in clip["cues"] if not c["distractor"]]
        expected = ([MANNERS[clip["manner"]]["label"]] if clip["manner"] != "plain" else [])
        expected += [CUE_LABELS[c["type"]] for c in own]
        assert r["labels"] == (expected or ["neutral"])
        assert r["description"].startswith(r["target_speaker"])
        for c in clip["cues"]:
            u = r["utterances"][c["utterance"]]
            assert u["start"] <= c["start"] < c["end"] <= u["end"], "cue outside its utterance"
            assert 0.5 <= c["end"] - c["start"] <= 1.25
            assert (c["speaker"] == r["target_speaker"]) != c["distractor"] and u["speaker"] == c["speaker"]
            assert f"{c['start']:.1f}–{c['end']:.1f} s" in r["description"]


def _forced_plans() -> list[dict]:
    """One plan per cue type (target) plus one distractor, taken from a real plan with its cues replaced."""
    cfg = BenchConfig(n=N, seed=SEED)
    base = next(p for p in plan_benchmark(cfg) if len(p["turns"]) >= 3)
    rng = np.random.default_rng(0)
    other = next(s for s in base["speakers"] if s != base["target_speaker"])
    plans = []
    for kind in ("burst", "jump", "tremor"):
        p = copy.deepcopy(base)
        p["cues"] = [_cue_plan(kind, p["target_speaker"], False, cfg, rng)]
        plans.append(p)
    p = copy.deepcopy(base)
    p["cues"] = [_cue_plan("burst", other, True, cfg, rng)]
    return plans + [p]


def _assert_cue_measured(e: dict) -> None:
    cue = e["cue"]
    assert e["db_outside"] < 0.05, f"{cue['type']} changed the audio outside its span"
    assert e["st_outside"] < 0.05
    if cue["type"] == "burst":
        assert abs(e["db_inside"] - cue["gain_db"]) < 0.5 and 6.0 <= cue["gain_db"] <= 8.0
        assert abs(e["st_inside"]) < 0.3
    elif cue["type"] == "jump":
        assert abs(e["st_inside"] - cue["semitones"]) < 0.6 and 3.0 <= cue["semitones"] <= 4.0
        assert abs(e["db_inside"]) < 1.5
    else:
        assert e["tremor_share_of_db_change"] > 0.6, "the tremor's loudness change is not at 5–9 Hz"
        assert 0.5 * cue["semitones"] < e["tremor_st_amplitude"] < 1.5 * cue["semitones"], "no planned pitch wobble"
        assert e["tremor_db_amplitude"] > 2.5, "no loudness wobble"
        assert abs(e["db_inside"]) < 2.5 and abs(e["st_inside"]) < 1.0  # a wobble, not a level or pitch step


def test_cues_are_in_the_written_audio_at_the_labelled_span(bench):
    """Re-render each clip with and without each cue: the written file is the rendered one, and the
    difference is the planned +6–8 dB / +3–4 st / 5–9 Hz wobble inside the span and nothing outside."""
    folder, _, _ = bench
    n_cues = 0
    for r in _rows(folder):
        plan = json.loads((folder / ".records" / f"{r['id']}.json").read_text())["plan"]
        audio, record = render_clip(plan)
        written, _ = sf.read(folder / r["media"], dtype="float32")
        assert np.max(np.abs(written - audio)) < 2 / 32768, "the file is not the rendered clip"
        assert record["utterances"] == r["utterances"]
        for i in range(len(plan["cues"])):
            _assert_cue_measured(paired_effect(plan, i))
            n_cues += 1
    for plan in _forced_plans():
        _assert_cue_measured(paired_effect(plan, 0))
    assert n_cues >= 3


def test_manner_shifts_level_and_pitch():
    """sad = slower + lower + quieter, excited = faster + higher + louder, measured on one utterance."""
    _need_tools()
    text = NEUTRAL_SENTENCES[0]
    out = {}
    for manner, m in MANNERS.items():
        w = synthesize(text, "en-us+m2", round(160 * m["rate_factor"]), 50 + m["pitch_offset"])
        from acoustemo.bench.check import f0_semitones

        out[manner] = (len(w) / 16_000, float(np.nanmedian(f0_semitones(w))))
    assert out["sad"][0] > out["plain"][0] * 1.1 > out["excited"][0] * 1.2
    assert out["sad"][1] + 1.5 < out["plain"][1] < out["excited"][1] - 1.5


def test_same_seed_gives_identical_files(bench):
    a, b, _ = bench
    for name in ("train.jsonl", "val.jsonl", "test.jsonl", "meta.json", "groupings.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for r in _rows(a):
        assert (a / r["media"]).read_bytes() == (b / r["media"]).read_bytes()
    other = plan_benchmark(BenchConfig(n=N, seed=SEED + 1))
    assert other != plan_benchmark(BenchConfig(n=N, seed=SEED))


def test_splits_have_disjoint_sentences_and_voices(bench):
    folder, _, _ = bench
    meta = _meta(folder)
    pools = {s: set(meta["splits"][s]["sentences"]) for s in SPLITS}
    used_text = {s: set() for s in SPLITS}
    used_voice = {s: set() for s in SPLITS}
    for cid, clip in meta["clips"].items():
        used_voice[clip["split"]] |= {v["voice"] for v in clip["speakers"].values()}
    for split in SPLITS:
        for line in (folder / f"{split}.jsonl").read_text().splitlines():
            used_text[split] |= {u["text"] for u in json.loads(line)["utterances"]}
        assert used_text[split] <= pools[split]
        assert {v.split("+")[1] for v in used_voice[split]} <= set(VARIANT_POOLS[split])
    for x, y in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not pools[x] & pools[y] and not used_text[x] & used_text[y]
        assert not set(VARIANT_POOLS[x]) & set(VARIANT_POOLS[y]) and not used_voice[x] & used_voice[y]
    assert sum(len(p) for p in pools.values()) == len(NEUTRAL_SENTENCES) >= 150


def test_resume_reuses_good_clips_and_remakes_a_damaged_one(bench):
    folder, _, _ = bench
    before = {name: (folder / name).read_bytes() for name in ("train.jsonl", "meta.json")}
    victim = folder / "media" / "train-0002.wav"
    good = victim.read_bytes()
    victim.write_bytes(good[:1000])
    s = make_benchmark(folder, BenchConfig(n=N, seed=SEED))
    assert (s.made, s.reused) == (1, N - 1)
    assert victim.read_bytes() == good
    assert {name: (folder / name).read_bytes() for name in before} == before
    from acoustemo.cli import main

    assert main(["bench", "make", "--out", str(folder), "--n", str(N), "--seed", str(SEED)]) == 0


def test_plan_balances_classes_and_distractors():
    assert split_sizes(BenchConfig().n, BenchConfig().val_fraction, BenchConfig().test_fraction) == {
        "train": 700, "val": 100, "test": 200}  # the default size: a test split of 200 clips
    cfg = BenchConfig(n=400, seed=3, val_fraction=0.15, test_fraction=0.15)
    plans = plan_benchmark(cfg)
    assert [sum(p["split"] == s for p in plans) for s in SPLITS] == [280, 60, 60]
    for split in SPLITS:
        ps = [p for p in plans if p["split"] == split]
        manners = [sum(p["manner"] == m for p in ps) for m in MANNERS]
        cues = [sum(any(c["type"] == k and not c["distractor"] for c in p["cues"]) for p in ps)
                for k in CUE_LABELS]
        assert max(manners) - min(manners) <= 1 and max(cues) - min(cues) <= 1
        assert abs(sum(not any(not c["distractor"] for c in p["cues"]) for p in ps) - len(ps) / 4) <= 1
        assert sum(any(c["distractor"] for c in p["cues"]) for p in ps) == round(0.35 * len(ps))
        same = sum(len({s["voice"] for s in p["speakers"].values()}) == 1 for p in ps)
        assert 0.3 < same / len(ps) < 0.7  # the same voice for both speakers about half the time
        for p in ps:
            assert {t["speaker"] for t in p["turns"]} == set(p["speakers"])


def test_groupings_use_the_fields_string_format():
    gold = {"s1": ["sad", "angry"], "s2": ["neutral"]}
    preds = {"s1": ["Furious", "down", "confused"], "s2": ["calm"]}
    g = bench_groupings(gold, preds)
    groups = ast.literal_eval(g["s1"])
    assert [grp[0] for grp in groups] == ["sad", "angry"]
    member_to_first = {m: grp[0] for grp in groups for m in grp}
    assert member_to_first["furious"] == "angry" and member_to_first["down"] == "sad"
    assert "confused" not in member_to_first  # outside the table: stays itself
    assert ast.literal_eval(g["s2"]) == [["neutral", *SYNONYMS["neutral"]]]
    full = ast.literal_eval(bench_groupings({"x": ["anxious"]})["x"])
    assert [grp[0] for grp in full] == list(SYNONYMS)
    words = [m for grp in full for m in grp]
    assert len(words) == len(set(words)), "a synonym sits in two groups"
    assert not any("'" in m or '"' in m for m in words)  # the reference parser splits on quotes


def test_bad_settings_and_outputs_name_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="n=2"):
        BenchConfig(n=2)
    with pytest.raises(ConfigError, match="val_fraction"):
        BenchConfig(val_fraction=0.6, test_fraction=0.5)
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(BenchError, match="must be a folder"):
        make_benchmark(f, BenchConfig(n=3))


# ------------------------------------------ other engines: CMU Flite (`--synth flite`), Festival (`--synth festival`)
INSTALL = {"flite": ("flite", "apt-get install flite"), "festival": ("text2wave", "apt-get install festival festvox-kdlpc16k")}


def _need_engine(synth: str):
    _need_tools()
    tool, fix = INSTALL[synth]
    if shutil.which(tool) is None:
        pytest.skip(f"{synth} is not installed (Debian: {fix})")


@pytest.mark.parametrize("synth", ["flite", "festival"])
def test_other_engine_test_split_only(tmp_path, synth):
    """`--synth flite|festival --splits test`: the same plans as the espeak benchmark's test split, spoken by
    another engine's voices, only that split written, the cues measured in the written audio as in the espeak
    benchmark."""
    _need_engine(synth)
    cfg = BenchConfig(n=N, seed=SEED, synth=synth, workers=1)
    summary = make_benchmark(tmp_path, cfg, splits=("test",))
    assert summary.counts == {"test": 2} and summary.made == 2
    assert not (tmp_path / "train.jsonl").exists() and not (tmp_path / "val.jsonl").exists()
    meta = _meta(tmp_path)
    assert meta["params"]["synth"] == synth and list(meta["splits"]) == ["test"]
    espeak = {p["id"]: p for p in plan_benchmark(BenchConfig(n=N, seed=SEED)) if p["split"] == "test"}
    rows = [json.loads(line) for line in (tmp_path / "test.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == sorted(espeak) and set(json.loads((tmp_path / "groupings.json").read_text())) \
        == set(espeak)
    for r in rows:
        plan = json.loads((tmp_path / ".records" / f"{r['id']}.json").read_text())["plan"]
        mine = espeak[r["id"]]
        assert [t["text"] for t in plan["turns"]] == [t["text"] for t in mine["turns"]]
        assert plan["cues"] == mine["cues"] and plan["manner"] == mine["manner"]
        assert {s["voice"] for s in plan["speakers"].values()} <= {f"{synth}:{v}" for v in ENGINE_VOICES[synth]}
        written, _ = sf.read(tmp_path / r["media"], dtype="float32")
        audio, _ = render_clip(plan)
        assert np.max(np.abs(written - audio)) < 2 / 32768
        for i in range(len(plan["cues"])):
            _assert_cue_measured(paired_effect(plan, i))
    with pytest.raises(ConfigError, match="splits"):
        make_benchmark(tmp_path, cfg, splits=("dev",))
    with pytest.raises(ConfigError, match="synth"):
        BenchConfig(synth="piper")


@pytest.mark.parametrize("voices", [("flite:slt", "flite:rms"), ("festival:ked_diphone+0",)])
def test_other_engines_manner_shifts_rate_and_pitch(voices):
    """Flite's and Festival's voices take espeak's rate and pitch through sox: sad slower and lower, excited faster
    and higher."""
    _need_engine(voices[0].split(":")[0])
    from acoustemo.bench.check import f0_semitones

    text = NEUTRAL_SENTENCES[0]
    for voice in voices:
        out = {}
        for manner, m in MANNERS.items():
            w = synthesize(text, voice, round(160 * m["rate_factor"]), 50 + m["pitch_offset"])
            out[manner] = (len(w) / 16_000, float(np.nanmedian(f0_semitones(w))))
        assert out["sad"][0] > out["plain"][0] * 1.1 > out["excited"][0] * 1.2, voice
        assert out["sad"][1] + 1.5 < out["plain"][1] < out["excited"][1] - 1.5, voice


def test_festival_speakers_are_its_voice_a_few_semitones_apart():
    """The four Festival speakers are ked_diphone shifted by FESTIVAL_SHIFTS semitones; a missing voice is named."""
    _need_engine("festival")
    from acoustemo.bench.check import f0_semitones

    text = NEUTRAL_SENTENCES[1]
    f0 = {v: float(np.nanmedian(f0_semitones(synthesize(text, f"festival:{v}", 160, 50))))
          for v in ("ked_diphone-3", "ked_diphone+6")}
    assert f0["ked_diphone+6"] - f0["ked_diphone-3"] == pytest.approx(9.0, abs=1.0)
    with pytest.raises(BenchError, match="festival could not speak with voice 'nobody\\+0'"):
        synthesize(text, "festival:nobody+0", 160, 50)


# ------------------------------------------ more voices in training: `--train-synth flite` (BenchConfig.train_synth)
@pytest.fixture(scope="session")
def bench_x2(bench, tmp_path_factory):
    """The espeak bench above, copied, then made again with train_synth=("flite",): a resume that keeps its clips
    and adds the train plans spoken by Flite."""
    _need_engine("flite")
    folder = tmp_path_factory.mktemp("bench_x2") / "b"
    shutil.copytree(bench[0], folder)
    summary = make_benchmark(folder, BenchConfig(n=N, seed=SEED, train_synth=("flite",), workers=1))
    return folder, summary


def _split_rows(folder: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (folder / f"{split}.jsonl").read_text().splitlines()]


def test_train_synth_adds_the_train_plans_spoken_by_flite(bench, bench_x2):
    """Each espeak train clip gets a twin "train-flite-<index>": the same plan as `--synth flite --splits train`
    (texts, speakers, target, manner, cues, labels) in Flite's voices; the espeak clips and val / test are unchanged."""
    plain, (folder, summary) = bench[0], bench_x2
    assert summary.counts == {"train": 10, "val": 1, "test": 2} and (summary.made, summary.reused) == (5, N)
    espeak, flite = _split_rows(folder, "train")[:5], _split_rows(folder, "train")[5:]
    assert [r["id"] for r in espeak] == [f"train-{i:04d}" for i in range(5)]
    assert [r["id"] for r in flite] == [f"train-flite-{i:04d}" for i in range(5)]
    ids = [r["id"] for split in SPLITS for r in _split_rows(folder, split)]
    assert len(ids) == len(set(ids)) == N + 5
    assert (folder / "train.jsonl").read_text().startswith((plain / "train.jsonl").read_text())
    for name in ("val.jsonl", "test.jsonl", "groupings.json"):
        assert (folder / name).read_bytes() == (plain / name).read_bytes(), name
    meta = _meta(folder)
    flite_plans = {p["id"]: p for p in plan_benchmark(BenchConfig(n=N, seed=SEED, synth="flite"))}
    for e, f in zip(espeak, flite):
        assert f["media"] == f"media/{f['id']}.wav" and (folder / "subtitles" / f"{f['id']}.srt").is_file()
        assert (f["target_speaker"], f["labels"]) == (e["target_speaker"], e["labels"])
        turns = [[(u["speaker"], u["text"]) for u in r["utterances"]] for r in (e, f)]
        assert turns[0] == turns[1]
        assert (folder / f["media"]).read_bytes() != (folder / e["media"]).read_bytes()
        voices = {s["voice"] for s in meta["clips"][f["id"]]["speakers"].values()}
        assert voices <= {f"flite:{v}" for v in FLITE_VOICES}
        assert not {s["voice"] for s in meta["clips"][e["id"]]["speakers"].values()} & voices
        plan = json.loads((folder / ".records" / f"{f['id']}.json").read_text())["plan"]
        assert plan == {**flite_plans[e["id"]], "id": f["id"]}  # what `--synth flite --splits train` makes, renamed
    plan = json.loads((folder / ".records" / "train-flite-0000.json").read_text())["plan"]
    written, _ = sf.read(folder / "media" / "train-flite-0000.wav", dtype="float32")
    assert np.max(np.abs(written - render_clip(plan)[0])) < 2 / 32768


def test_train_synth_is_recorded_in_meta_and_absent_by_default(bench, bench_x2):
    plain, x2 = _meta(bench[0]), _meta(bench_x2[0])
    assert set(plain["params"]) == {"n", "seed", "val_fraction", "test_fraction", "distractor_rate", "same_voice_rate",
                                    "burst_db", "jump_semitones", "tremor_hz", "tremor_depth", "tremor_semitones",
                                    "cue_s", "gap_s", "drift_db"}  # as before train_synth existed
    assert "train_synth" not in plain["splits"]["train"]
    assert x2["params"] == {**plain["params"], "train_synth": ["flite"]}
    assert {k: v for k, v in x2["clips"].items() if not k.startswith("train-flite-")} == plain["clips"]
    assert sorted(k for k in x2["clips"] if k.startswith("train-flite-")) == [f"train-flite-{i:04d}" for i in range(5)]
    assert {s: x2["splits"][s] for s in ("val", "test")} == {s: plain["splits"][s] for s in ("val", "test")}
    train, before = x2["splits"]["train"], plain["splits"]["train"]
    assert train["train_synth"] == {"flite": list(FLITE_VOICES)}
    assert (train["variants"], train["sentences"]) == (before["variants"], before["sentences"])
    assert train["clips"] == 2 * before["clips"]
    assert train["clips_with_distractor"] == 2 * before["clips_with_distractor"]
    assert train["label_counts"] == {k: 2 * v for k, v in before["label_counts"].items()}
    assert {k: v for k, v in x2.items() if k not in ("params", "splits", "clips")} == \
        {k: v for k, v in plain.items() if k not in ("params", "splits", "clips")}


def test_train_synth_bench_reads_as_a_bench_run_folder(bench_x2):
    """What `bench run` and the checks read: every train line a valid clip, and its truth in meta.json."""
    from acoustemo.bench.check import detectability
    from acoustemo.bench.explain import load_truth
    from acoustemo.data.manifest import read_manifest

    folder, _ = bench_x2
    clips = read_manifest(folder / "train.jsonl")
    assert len(clips) == 10 and len({c.media for c in clips}) == 10
    truth = load_truth(folder, "train")
    assert list(truth) == [r["id"] for r in _split_rows(folder, "train")]
    assert detectability(folder, ("train",))["clips"] == 10


def test_train_synth_resumes_and_remakes_a_damaged_clip(bench_x2):
    folder, _ = bench_x2
    before = {name: (folder / name).read_bytes() for name in ("train.jsonl", "meta.json")}
    victim = folder / "media" / "train-flite-0001.wav"
    good = victim.read_bytes()
    victim.write_bytes(good[:1000])
    s = make_benchmark(folder, BenchConfig(n=N, seed=SEED, train_synth=("flite",), workers=1))
    assert (s.made, s.reused) == (1, N + 4) and victim.read_bytes() == good
    assert {name: (folder / name).read_bytes() for name in before} == before
    from acoustemo.cli import main

    assert main(["bench", "make", "--out", str(folder), "--n", str(N), "--seed", str(SEED),
                 "--train-synth", "flite"]) == 0
    assert {name: (folder / name).read_bytes() for name in before} == before


def test_train_synth_plans_for_several_engines():
    """Planning only: one block of train plans per engine, in the order given, ids unique; espeak may be the extra
    engine of a Flite benchmark."""
    base = plan_benchmark(BenchConfig(n=N, seed=SEED))
    plans = plan_benchmark(BenchConfig(n=N, seed=SEED, train_synth=("flite", "festival")))
    assert plans[:N] == base
    assert [p["id"] for p in plans[N:]] == [f"train-{e}-{i:04d}" for e in ("flite", "festival") for i in range(5)]
    assert len({p["id"] for p in plans}) == len(plans) and all(p["split"] == "train" for p in plans[N:])
    for p in plans[N + 5:]:
        assert {s["voice"] for s in p["speakers"].values()} <= {f"festival:{v}" for v in FESTIVAL_VOICES}
    rev = plan_benchmark(BenchConfig(n=N, seed=SEED, synth="flite", train_synth=("espeak",)))
    espeak_twins = {p["id"].replace("train-espeak-", "train-"): p for p in rev[N:]}
    assert espeak_twins == {p["id"]: {**p, "id": p["id"].replace("train-", "train-espeak-")}
                            for p in base if p["split"] == "train"}


def test_train_synth_refusals_name_the_fix(tmp_path, capsys):
    with pytest.raises(ConfigError, match="unknown engine 'piper'; choose among flite, festival"):
        BenchConfig(train_synth=("piper",))
    with pytest.raises(ConfigError, match="repeats the main engine 'espeak'.*list other engines only"):
        BenchConfig(train_synth=("espeak",))
    with pytest.raises(ConfigError, match="repeats the main engine 'flite'"):
        BenchConfig(synth="flite", train_synth=("espeak", "flite"))
    with pytest.raises(ConfigError, match="names flite more than once; list each engine once"):
        BenchConfig(train_synth=("flite", "flite"))
    with pytest.raises(ConfigError, match="must be a tuple of engine names"):
        BenchConfig(train_synth="flite")
    with pytest.raises(ConfigError, match="leave train out; add train to the splits or drop --train-synth"):
        make_benchmark(tmp_path, BenchConfig(n=3, train_synth=("flite",)), splits=("test",))
    assert not any(tmp_path.iterdir())  # refused before anything was written
    from acoustemo.cli import main

    assert main(["bench", "make", "--out", str(tmp_path / "x"), "--n", "3", "--train-synth", "espeak,flite"]) == 2
    assert "repeats the main engine 'espeak'" in capsys.readouterr().err and not (tmp_path / "x").exists()
