"""Long recordings: context windows (turn boundaries, token budget, span, nothing lost or duplicated), features
extracted once and sliced per window (Eq. 1 on the file's clock), the timeline JSON and the per-speaker summary,
on a real multi-minute espeak-ng dialogue with an untrained debug model (its answers are noise, the plumbing is
real)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import soundfile as sf

from acoustemo.data.dataset import AcoustEmoDataset, TokenBudgetWarning
from acoustemo.data.longform import prompt_token_counter, speaker_turns
from acoustemo.data.segments import Utterance
from acoustemo.data.windows import frame_range
from acoustemo.errors import ConfigError, MediaError
from acoustemo.timeline import Timeline, TimelineConfig, predict_media, shift_times, summarise, TimelineEntry
from conftest import untrained_predictor

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    """The untrained debug predictor; its Whisper encoder records how many samples each call encodes, so a test
    can count the passes over the audio (one extraction = every sample encoded once)."""
    p = untrained_predictor(tmp_path_factory.mktemp("features"))
    whisper, real = p.acoustic.whisper, p.acoustic.whisper.encode
    whisper.encoded = []

    def encode(waveform):
        whisper.encoded.append(len(waveform))
        return real(waveform)

    whisper.encode = encode
    return p


@pytest.fixture(scope="module")
def timeline_run(long_dialogue, predictor):
    """predict_media on the dialogue (no --speaker: every speaker), recording what the model was given."""
    wav, srt, _ = long_dialogue
    given = []  # (clip, acoustic Features) of every window clip the model answered
    original = predictor.predict

    def spy(clips, load_acoustic=None, load_visual=None):
        given.extend((c, load_acoustic(c)) for c in clips)
        return original(clips, load_acoustic, load_visual)

    object.__setattr__(predictor, "predict", spy)
    progress = []
    try:
        tl = predict_media(wav, srt, model=predictor, config=TimelineConfig(max_span_s=20.0, batch_size=3),
                           progress=lambda done, total: progress.append((done, total)))
    finally:
        object.__delattr__(predictor, "predict")
    return tl, given, progress


def test_the_dialogue_is_multi_minute(long_dialogue):
    _, _, utts = long_dialogue
    assert len(utts) == 40 and utts[-1].end_s > 120


def test_windows_keep_turns_budget_span_and_every_utterance_once(long_dialogue, predictor, timeline_run):
    _, _, utts = long_dialogue
    tl, _, _ = timeline_run
    windows = tl.windows
    answered = [i for w in windows for i in w.answered]
    assert answered == list(range(len(utts)))  # every utterance answered exactly once, in order
    assert len(windows) > 4
    count = prompt_token_counter(predictor.model.cfg, predictor.model.tokenizer, "Anna", 50.0)
    turn_of = {i: k for k, turn in enumerate(speaker_turns(utts)) for i in turn}
    for w, nxt in zip(windows, windows[1:]):
        cut_inside_turn = turn_of[w.answered[-1]] == turn_of[nxt.answered[0]]
        if cut_inside_turn:  # only a turn that does not fit on its own may be cut
            turn = [i for i in range(len(utts)) if turn_of[i] == turn_of[w.answered[-1]]]
            assert utts[turn[-1]].end_s - utts[turn[0]].start_s > 20.0 or count([utts[i] for i in turn]) > 1024
        # greedy: the next window's first piece (its leading run of one turn) did not fit into this one
        piece = [i for i in nxt.answered if turn_of[i] == turn_of[nxt.answered[0]]]
        grown = [utts[i] for i in w.answered + tuple(piece)]
        assert grown[-1].end_s - grown[0].start_s > 20.0 or count(grown) > 1024
    for w in windows:
        own = [utts[i] for i in w.answered]
        assert own[-1].end_s - own[0].start_s <= 20.0
        assert w.context == tuple(range(w.answered[0] - len(w.context), w.answered[0]))  # just before, in order
        assert len(w.context) == min(2, w.answered[0])  # this dialogue has room for two everywhere
    assert any(turn_of[a.answered[-1]] == turn_of[b.answered[0]] for a, b in zip(windows, windows[1:]))  # Ben's turn


def test_features_are_extracted_once_and_sliced_on_the_files_clock(long_dialogue, predictor, timeline_run):
    wav, srt, utts = long_dialogue
    tl, given, progress = timeline_run
    n_samples = sf.info(wav).frames
    assert sum(predictor.acoustic.whisper.encoded) == n_samples  # one pass over the audio...
    assert len(predictor.acoustic.whisper.encoded) == 2  # ...in two chunks (120 s + the rest): streamed
    full = predictor.cache.load(wav, predictor.acoustic, "long_dialogue")
    assert full is not None
    L, rate = full.data.shape[0], full.frame_rate_hz
    by_text = {u.text: u for u in utts}
    assert len(given) == len(tl.entries)
    for clip, feats in given:
        first = by_text[clip.utterances[0].text]
        a = frame_range(first.start_s, first.end_s, rate, L)[0]
        np.testing.assert_array_equal(feats.data, full.data[a : a + feats.data.shape[0]])
        for u in clip.utterances:  # the window the dataset cuts at the prompt's times = the file's Eq. (1) window
            x, y = frame_range(u.start_s, u.end_s, rate, feats.data.shape[0])
            assert (x + a, y + a) == frame_range(by_text[u.text].start_s, by_text[u.text].end_s, rate, L)
        # the prompt counts time from the window's first frame
        assert clip.utterances[0].start_s == pytest.approx(first.start_s - a / rate, abs=1e-9)
        assert 0 <= clip.utterances[0].start_s < 1 / rate
    # every window fits the model at the full K tokens (no pooling): the budget was the real one
    cfg = predictor.model.cfg
    with warnings.catch_warnings():
        warnings.simplefilter("error", TokenBudgetWarning)
        feats_of = {c.id: f for c, f in given}
        ds = AcoustEmoDataset([c for c, _ in given], lambda c: feats_of[c.id], None,
                              predictor.model.tokenizer, cfg, with_answers=False)
        for i in range(len(ds)):
            assert len(ds[i]["input_ids"]) + cfg.answer_budget_tokens <= cfg.max_seq_len
    n = len(tl.entries)
    assert progress == [(0, n)] + [(min(k + 3, n), n) for k in range(0, n, 3)]  # features ready, then per batch

    # a second run reads the cache: no new extraction
    predict_media(wav, srt, speaker="Ben", model=predictor, config=TimelineConfig(max_span_s=20.0))
    assert len(predictor.acoustic.whisper.encoded) == 2


def test_every_speaker_answered_where_they_speak(long_dialogue, timeline_run):
    _, _, utts = long_dialogue
    tl, _, _ = timeline_run
    expected = [(w.index, s) for w in tl.windows for s in dict.fromkeys(utts[i].speaker for i in w.answered)]
    assert [(e.window, e.speaker) for e in tl.entries] == expected
    for e in tl.entries:
        w = tl.windows[e.window]
        own = [utts[i] for i in w.answered]
        assert (e.start_s, e.end_s) == (own[0].start_s, own[-1].end_s)
        assert e.speaking_s == pytest.approx(sum(u.duration_s for u in own if u.speaker == e.speaker))


def test_timeline_json_and_summary(long_dialogue, timeline_run, tmp_path):
    _, _, utts = long_dialogue
    tl, _, _ = timeline_run
    d = json.loads(json.dumps(tl.to_json()))
    assert d["kind"] == "timeline" and d["speakers"] == ["Anna", "Ben", "Cleo"]
    assert len(d["utterances"]) == 40 and d["timestamps_source"] == "subtitles"
    assert [w["utterances"] for w in d["windows"]] == [list(w.answered) for w in tl.windows]
    assert {"window", "speaker", "start", "end", "emotions", "explanation"} <= set(d["timeline"][0])
    assert d["summary"].keys() == {"Anna", "Ben", "Cleo"}
    for speaker, s in d["summary"].items():
        mine = [e for e in d["timeline"] if e["speaker"] == speaker]
        assert s["windows"] == len(mine)
        assert s["speaking_s"] == pytest.approx(sum(u.duration_s for u in utts if u.speaker == speaker), abs=0.01)
        for share in s["emotions"]:
            having = [e for e in mine if share["emotion"] in e["emotions"]]
            assert share["windows"] == len(having)
            assert share["share_windows"] == pytest.approx(len(having) / len(mine), abs=1e-4)
            assert share["share_time"] == pytest.approx(sum(e["speaking_s"] for e in having) / s["speaking_s"], abs=1e-3)


def test_summary_shares_on_known_entries():
    entries = [TimelineEntry(0, "A", 0, 10, ["sad"], "", "", 8.0), TimelineEntry(1, "A", 10, 20, ["sad", "angry"], "", "", 2.0),
               TimelineEntry(1, "B", 10, 20, [], "", "", 5.0)]
    s = summarise(entries)
    assert [(e.emotion, e.share_time, e.share_windows) for e in s["A"].emotions] == [("sad", 1.0, 1.0), ("angry", 0.2, 0.5)]
    assert s["B"].emotions == [] and s["B"].windows == 1


def test_clock_rounds_before_it_carries():
    from acoustemo.timeline import clock

    assert [clock(t) for t in (0.04, 65.25, 599.98, 3599.96, 3725.4)] == ["0:00.0", "1:05.2", "10:00.0", "1:00:00",
                                                                         "1:02:05"]


def test_explanation_times_move_to_the_files_clock():
    text = "Rosa speaks plainly; at 4.2–5.1 s her pitch jumps. The burst at 1.1-2.3 s is Paul's; he pauses at 7 s."
    assert shift_times(text, 300.0) == ("Rosa speaks plainly; at 304.2–305.1 s her pitch jumps. The burst at "
                                        "301.1-302.3 s is Paul's; he pauses at 307 s.")


def test_bad_input_gets_clear_messages(long_dialogue, predictor, tmp_path):
    wav, srt, utts = long_dialogue
    with pytest.raises(ConfigError, match=r"--speaker 'Dora' never speaks.*'Anna' \(15 utterances\), 'Ben' \(14"):
        predict_media(wav, srt, speaker="Dora", model=predictor)
    part = tmp_path / "part.srt"
    part.write_text("".join(srt.read_text().split("\n\n")[i] + "\n\n" for i in range(4)))  # Anna, Anna, Ben, Anna
    with pytest.raises(ConfigError, match="never speaks"):  # checked before any model work
        predict_media(wav, part, speaker="Cleo", model=predictor)
    pred = predict_media(wav, part, model=predictor, config=TimelineConfig(max_span_s=60.0))
    assert any("cues cover 0.3-" in w and "answers only for that part" in w for w in pred.warnings)
    silent = tmp_path / "silence.wav"
    sf.write(silent, np.zeros(16000 * 3, np.float32), 16000)
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.raises(MediaError, match="no utterances"):
        predict_media(silent, empty, model=predictor)


def test_short_clip_keeps_todays_prediction(dialogue, predictor, tmp_path):
    from acoustemo.predictor import Prediction

    wav, utts = dialogue
    subs = tmp_path / "d.json"
    subs.write_text(json.dumps(utts))
    pred = predict_media(wav, subs, speaker="Anna", model=predictor)
    assert isinstance(pred, Prediction) and len(pred.utterances) == 3


def test_cli_prints_the_table_and_writes_json_and_lanes(long_dialogue, predictor, timeline_run, tmp_path, capsys):
    from acoustemo.cli import main

    wav, srt, _ = long_dialogue
    predictor.model.save_pretrained(tmp_path / "model")
    out, png = tmp_path / "tl.json", tmp_path / "lanes.png"
    cached = {f: f.stat().st_mtime_ns for f in predictor.cache.root.iterdir()}
    rc = main(["predict", str(wav), "--subtitles", str(srt), "--model", str(tmp_path / "model"), "--max-span", "20",
               "--cache-dir", str(predictor.cache.root), "--max-new-tokens", "6", "--json", str(out), "--plot",
               str(png), "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    d = json.loads(out.read_text())
    assert d["kind"] == "timeline" and len(d["timeline"]) > len(d["windows"]) > 4
    assert f"40 utterances in {len(d['windows'])} windows of <= 20 s" in printed
    rows = [line for line in printed.splitlines() if line.startswith("  ") and ("Anna" in line or "Ben" in line or "Cleo" in line)]
    assert len(rows) == len(d["timeline"]) + 3  # one per window and speaker, then one summary line per speaker
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {f: f.stat().st_mtime_ns for f in predictor.cache.root.iterdir()} == cached  # read, not re-extracted

    rc = main(["predict", str(wav), "--subtitles", str(srt), "--model", str(tmp_path / "model"), "--speaker", "Nobody",
               "--cache-dir", str(predictor.cache.root)])
    assert rc == 2 and "never speaks" in capsys.readouterr().err


def test_lanes_plot_reads_at_one_hour():
    """An hour of windows for two speakers: one rectangle per window stripe and utterance, clock ticks h:mm:ss."""
    from acoustemo.data.longform import ContextWindow
    from acoustemo.plot import recording_timeline_figure

    utts, entries, windows = [], [], []
    for k in range(120):  # 30 s windows, each with one utterance per speaker
        a, b = Utterance(k * 30 + 1, k * 30 + 14, "A", "x"), Utterance(k * 30 + 15, k * 30 + 29, "B", "y")
        utts += [a, b]
        windows.append(ContextWindow(k, (2 * k, 2 * k + 1)))
        entries += [TimelineEntry(k, "A", a.start_s, b.end_s, ["sad", "anxious"] if k % 3 else ["excited"], "", "", 13),
                    TimelineEntry(k, "B", a.start_s, b.end_s, [], "", "", 14)]
    tl = Timeline("hour", "hour.wav", 3600.0, utts, windows, [w.index * 30.0 for w in windows], entries, "subtitles",
                  "m", TimelineConfig())
    fig = recording_timeline_figure(tl)
    (ax,) = [a for a in fig.axes if a.get_label() == "lanes"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["B", "A"]
    stripes = sum(len(e.emotions) or 1 for e in entries)
    assert len(ax.collections) == stripes + 2  # + one speech strip per lane
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    assert ax.xaxis.get_major_formatter()(1800.0, 0) == "0:30:00"
    legend = {t.get_text() for t in fig.legends[0].get_texts()}
    assert legend == {"sad", "anxious", "excited", "(none)"}


def test_manifest_splits_clips_longer_than_one_window(long_dialogue, dialogue, predictor, timeline_run, tmp_path):
    from acoustemo.batch import OUTPUT_KEYS, predict_manifest

    wav, _, utts = long_dialogue
    short_wav, short_utts = dialogue
    lines = [{"id": "long", "media": str(wav), "utterances": [u.to_json() for u in utts], "target_speaker": "Ben"},
             {"id": "short", "media": str(short_wav), "utterances": short_utts, "target_speaker": "Anna"}]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(d) + "\n" for d in lines))
    out = tmp_path / "preds.jsonl"
    report = predict_manifest(manifest, predictor, out, batch_size=2, progress=False,
                              timeline=TimelineConfig(max_span_s=20.0))
    assert report.failed == [] and report.predicted == 2
    long_line, short_line = [json.loads(x) for x in out.read_text().splitlines()]
    ben_windows = [w for w in timeline_run[0].windows if any(utts[i].speaker == "Ben" for i in w.answered)]
    assert report.split == [("long", len(timeline_run[0].windows))]
    assert [(w["start"], w["end"]) for w in long_line["windows"]] == [
        (utts[w.answered[0]].start_s, utts[w.answered[-1]].end_s) for w in ben_windows]
    assert tuple(short_line) == OUTPUT_KEYS and short_line["id"] == "short"
    assert isinstance(long_line["emotions"], list) and isinstance(long_line["explanation"], str)


def test_streamed_extraction_equals_one_whole_file_extraction(long_dialogue, predictor, timeline_run, tmp_path):
    """The chunked features (2 chunks, margins, prosody channels over the whole file) are the whole-file ones."""
    from acoustemo.features.cache import FeatureCache

    wav, _, _ = long_dialogue
    streamed = predictor.cache.load(wav, predictor.acoustic, "long_dialogue")
    whole = FeatureCache(tmp_path).get_or_compute(wav, predictor.acoustic, "long_dialogue")
    assert streamed.data.shape == whole.data.shape and streamed.metadata == whole.metadata
    w = predictor.acoustic.whisper.dim
    np.testing.assert_allclose(streamed.data[:, :w], whole.data[:, :w], atol=2e-3)
    np.testing.assert_allclose(streamed.data[:, w:], whole.data[:, w:], atol=1e-4)


def test_chunks_with_margin_cover_every_sample_once():
    from acoustemo.features.stream import chunks_with_margin

    x = np.arange(1000, dtype=np.float32)
    pieces = iter(np.split(x, [7, 300, 301, 650]))
    got = list(chunks_with_margin(pieces, chunk=240, margin=32))
    own = np.concatenate([c[left : left + n] for c, left, n in got])
    np.testing.assert_array_equal(own, x)
    assert [(left, n, len(c)) for c, left, n in got] == [(0, 240, 272), (32, 240, 304), (32, 240, 304), (32, 240, 304),
                                                         (32, 40, 72)]


def test_audio_decoded_for_vad_is_not_decoded_again_for_the_stream(long_dialogue):
    """The streamed extraction reads a Media's audio from memory when VAD decoded it already: the same samples as
    decoding the file piece by piece."""
    from acoustemo.data.media import Media
    from acoustemo.features.stream import _audio_pieces

    wav, _, _ = long_dialogue
    media = Media(wav)
    from_file = np.concatenate(list(_audio_pieces(media)))
    assert not media.decoded  # streamed: the whole track was never held
    assert len(media.audio) == len(from_file) and media.decoded
    pieces = list(_audio_pieces(media))
    assert [len(p) for p in pieces[:-1]] == [160_000] * (len(from_file) // 160_000)
    np.testing.assert_array_equal(np.concatenate(pieces), from_file)


# ------------------------------------------------------------------ answers that carry labels (a stub predictor)
# Six utterances, three windows; the shares and the merge order below are worked out by hand from these numbers.
STUB_UTTS = [Utterance(0.0, 4.0, "A", "a0"), Utterance(4.5, 6.5, "B", "b0"), Utterance(7.0, 8.0, "A", "a1"),
             Utterance(30.0, 38.0, "A", "a2"), Utterance(38.5, 41.5, "B", "b1"), Utterance(60.0, 62.0, "A", "a3")]
# (window, speaker asked about) -> (emotions, explanation with times on the window's clock)
STUB_ANSWERS = {(0, "A"): (["sad"], "A sighs at 0.5 s."), (0, "B"): (["happy"], "B laughs."),
                (1, "A"): (["angry"], "A shouts at 26.0 s."), (1, "B"): (["happy", "calm"], "B stays light."),
                (2, "A"): (["sad"], "A trails off at 1.0 s.")}


class StubPredictor:
    """Answers each window clip from STUB_ANSWERS; records the clips it was asked about."""

    visual = None
    model_dir = "stub"

    def __init__(self):
        self.asked = []

    def predict(self, clips, load_acoustic=None, load_visual=None):
        from acoustemo.predictor import Prediction

        out = []
        for c in clips:
            window = int(c.id.split("@w")[1].split(":")[0])
            load_acoustic(c)  # the window's slice of the recording's features
            self.asked.append((window, c.target_speaker))
            emotions, explanation = STUB_ANSWERS[(window, c.target_speaker)]
            out.append(Prediction(c.id, list(emotions), explanation, f"Emotions: {', '.join(emotions)}",
                                  list(c.utterances), "subtitles", "stub"))
        return out


@pytest.fixture
def stub(monkeypatch):
    """A StubPredictor, 63 s of zero features at 50 Hz in place of an extraction, and the three windows fixed."""
    import acoustemo.timeline as timeline
    from acoustemo.data.longform import ContextWindow
    from acoustemo.features.base import Features
    from acoustemo.features.stream import RecordingFeatures

    feats = RecordingFeatures.in_memory(Features(np.zeros((3150, 2), np.float32), 50.0, "stub", [("x", 2)], 63.0))
    monkeypatch.setattr(timeline, "load_recording_features", lambda *a, **k: feats)
    windows = [ContextWindow(0, (0, 1, 2)), ContextWindow(1, (3, 4), (1, 2)), ContextWindow(2, (5,), (3, 4))]
    monkeypatch.setattr(timeline, "plan_for", lambda *a, **k: windows)
    return StubPredictor()


def test_timeline_shares_from_labelled_answers(stub):
    """Every speaker of each window is asked; A speaks 4 + 1 s in window 0 (sad), 8 s in window 1 (angry), 2 s in
    window 2 (sad): 15 s over 3 windows, so angry = 8/15 of A's time and 1/3 of A's windows, sad = 7/15 and 2/3,
    angry first (more time, although fewer windows). B speaks 2 s (happy) and 3 s (happy, calm): happy 5/5 and
    2/2, calm 3/5 and 1/2."""
    from acoustemo.timeline import predict_timeline

    tl = predict_timeline("stub.wav", STUB_UTTS, stub, duration_s=63.0)
    assert stub.asked == [(0, "A"), (0, "B"), (1, "A"), (1, "B"), (2, "A")]
    assert [(e.window, e.speaker, e.speaking_s, e.start_s, e.end_s) for e in tl.entries] == [
        (0, "A", 5.0, 0.0, 8.0), (0, "B", 2.0, 0.0, 8.0), (1, "A", 8.0, 30.0, 41.5), (1, "B", 3.0, 30.0, 41.5),
        (2, "A", 2.0, 60.0, 62.0)]
    # window 1's prompt starts at its context (4.5 s), window 2's at 30 s: times move onto the file's clock
    assert tl.origins_s == [0.0, 4.5, 30.0]
    assert [e.explanation for e in tl.entries if e.speaker == "A"] == ["A sighs at 0.5 s.", "A shouts at 30.5 s.",
                                                                        "A trails off at 31.0 s."]
    summary = tl.summary()
    assert (summary["A"].windows, summary["A"].speaking_s) == (3, 15.0)
    assert [(s.emotion, s.seconds, s.windows, s.share_time, s.share_windows) for s in summary["A"].emotions] == [
        ("angry", 8.0, 1, 8 / 15, 1 / 3), ("sad", 7.0, 2, 7 / 15, 2 / 3)]
    assert [(s.emotion, s.seconds, s.windows, s.share_time, s.share_windows) for s in summary["B"].emotions] == [
        ("happy", 5.0, 2, 1.0, 1.0), ("calm", 3.0, 1, 0.6, 0.5)]
    assert tl.to_json()["summary"]["A"] == {"windows": 3, "speaking_s": 15.0, "emotions": [
        {"emotion": "angry", "seconds": 8.0, "windows": 1, "share_time": 0.5333, "share_windows": 0.3333},
        {"emotion": "sad", "seconds": 7.0, "windows": 2, "share_time": 0.4667, "share_windows": 0.6667}]}


def test_a_split_manifest_clip_merges_its_windows_by_speaking_time(stub):
    """A manifest clip about A that spans three windows: A is asked once per window (sad, angry, sad); the line's
    emotions are A's over the whole clip, most speaking time first: angry (8 s) before sad (7 s), though sad
    comes first and in more windows; the explanation is the windows' in order, each with its span."""
    from acoustemo.data.segments import Clip
    from acoustemo.timeline import manifest_line, split_clip

    clip = Clip("long", "stub.wav", STUB_UTTS, target_speaker="A", timestamps_source="manifest")
    line = manifest_line(split_clip(stub, clip))
    assert stub.asked == [(0, "A"), (1, "A"), (2, "A")]
    assert line == {
        "id": "long", "emotions": ["angry", "sad"],
        "explanation": "[0.0-8.0 s] A sighs at 0.5 s. [30.0-41.5 s] A shouts at 30.5 s. [60.0-62.0 s] A trails off "
                       "at 31.0 s.",
        "windows": [{"start": 0.0, "end": 8.0, "emotions": ["sad"], "explanation": "A sighs at 0.5 s."},
                    {"start": 30.0, "end": 41.5, "emotions": ["angry"], "explanation": "A shouts at 30.5 s."},
                    {"start": 60.0, "end": 62.0, "emotions": ["sad"], "explanation": "A trails off at 31.0 s."}]}


def test_a_media_file_is_probed_hashed_and_decoded_once(dialogue, predictor, tmp_path, monkeypatch):
    """predict_media on a clip without subtitles (VAD + ASR, then the encoders on a feature-cache miss): one probe,
    one content hash, one decode of the audio, shared through one Media value."""
    import shutil

    import acoustemo.data.media as media_module

    wav, _ = dialogue
    fresh = shutil.copy(wav, tmp_path / "once.wav")  # a new clip id: a cache miss
    calls = {"probe": 0, "load_audio": 0, "media_sha256": 0}
    for name in calls:
        real = getattr(media_module, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(media_module, name, counted)
    pred = predict_media(fresh, model=predictor)
    assert pred.timestamps_source == "vad" and pred.utterances
    assert calls == {"probe": 1, "load_audio": 1, "media_sha256": 1}
    assert predictor.cache.load(fresh, predictor.acoustic, "once") is not None  # and the features were stored
