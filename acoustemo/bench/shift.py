"""`acoustemo bench shift SRC --out DST`: the same dialogues, each whole clip re-voiced at the waveform (issue #35).

    bench shift bench_data/e400 --out bench_data/e400-up --splits test --pitch-st 2 --tempo 1.1 --gain-db 4
    bench shift bench_data/e400 --out bench_data/e400-aug --splits train,val --random   # one random shift per clip

The shift itself (sox pitch and tempo, a gain) is data/revoice.py's, which also re-voices any manifest
(`acoustemo augment`). A clip's manner is set against its speaker's own plain voice. A voice whose plain speech is higher, faster or louder
than the training voices' (another engine, another recording chain, a louder microphone) slides every answer of a
model that reads manner from absolute pitch, rate and level. This command makes that happen on purpose: both
speakers of each clip are moved together by sox (`pitch` in cents, `tempo -s`) and a gain, so the target's manner
against the other speaker stays what it was and only the absolute scale moves.

- A fixed shift (--pitch-st / --tempo / --gain-db) makes a stress test: `bench score DST --runs RUNS`, or a `bench
  run` on DST, shows how much of a model's answer rides on the absolute scale.
- --random draws each clip's shift from the ranges (pitch and gain uniform in +-the value, tempo log-uniform in
  [1/T, T]; seeded by --seed and the clip's id): augmentation at the waveform. A run on DST then trains on shifted
  clips (same ids, so give it its own runs folder).

DST is a complete `bench make` folder: every manifest of SRC, the chosen splits' clips re-voiced (times scaled by
1/tempo: utterances, cues and the explanations that name them), the others hard-linked (copied across file
systems)
unchanged; meta.json records each clip's shift. Outputs are written atomically and a rerun with the same settings
keeps the clips already made.
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from acoustemo.bench.gold import describe
from acoustemo.bench.make import to_srt
from acoustemo.data.manifest import write_text_atomic
from acoustemo.data.media import SAMPLE_RATE_HZ, media_sha256
from acoustemo.data.revoice import Shift, draw_shift, write_shifted
from acoustemo.errors import ConfigError

SETTINGS = "shift.json"  # DST's settings: a rerun with others is refused


def shift_bench(src: str | os.PathLike, out: str | os.PathLike, splits: tuple[str, ...], shift: Shift,
                random: bool = False, seed: int = 0, workers: int = 2) -> dict[str, int]:
    """Write DST (see the module docstring); returns {manifest name: clips re-voiced}."""
    src, out = Path(src).resolve(), Path(out).resolve()
    if not (src / "meta.json").is_file():
        raise ConfigError(f"{src} is not a `bench make` folder (no meta.json); give the folder `bench make --out` wrote")
    if src == out:
        raise ConfigError(f"--out {out} is the source folder; give a new folder")
    meta = json.loads((src / "meta.json").read_text())
    manifests = sorted(p.stem for p in src.glob("*.jsonl"))
    unknown = [s for s in splits if not any(m.partition("-")[0] == s for m in manifests)]
    if unknown or not splits:
        raise ConfigError(f"--splits {','.join(splits)}: {src} holds {', '.join(manifests)}; name one or more of "
                          f"its splits (train, val, test)")
    if random:
        draw_shift(shift, seed, "check")  # refuses a range it cannot draw from, before anything is written
    settings = {"source": str(src), "splits": list(splits), "random": random, "seed": seed, "shift": asdict(shift)}
    out.mkdir(parents=True, exist_ok=True)
    if (out / SETTINGS).is_file() and json.loads((out / SETTINGS).read_text()) != settings:
        raise ConfigError(f"{out} holds clips shifted with other settings ({out / SETTINGS}); give another --out, or "
                          f"delete {out} to make it again")
    write_text_atomic(out / SETTINGS, json.dumps(settings, indent=1) + "\n")
    (out / "media").mkdir(exist_ok=True)
    (out / "subtitles").mkdir(exist_ok=True)
    counts, jobs, lines = {}, [], {}
    for name in manifests:
        rows = [json.loads(x) for x in (src / f"{name}.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]
        chosen = name.partition("-")[0] in splits
        counts[name] = len(rows) if chosen else 0
        lines[name] = rows
        for row in rows:
            clip_shift = (draw_shift(shift, seed, row["id"]) if random else shift) if chosen else None
            jobs.append((row, clip_shift))
    with ThreadPoolExecutor(max(1, workers)) as pool:  # sox runs in its own process: threads are enough
        done = dict(pool.map(lambda job: _one_clip(src, out, meta["clips"][job[0]["id"]], *job), jobs))
    for name, rows in lines.items():
        write_text_atomic(out / f"{name}.jsonl",
                          "".join(json.dumps(done[r["id"]][0], ensure_ascii=False) + "\n" for r in rows))
    meta["clips"] = {**meta["clips"], **{k: v[1] for k, v in done.items()}}
    meta["params"] = {**meta["params"], "shift": settings}
    shutil.copyfile(src / "groupings.json", out / ".groupings.json.tmp")
    os.replace(out / ".groupings.json.tmp", out / "groupings.json")
    write_text_atomic(out / "meta.json", json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    return counts


def _one_clip(src: Path, out: Path, record: dict, row: dict, shift: Shift | None) -> tuple[str, tuple[dict, dict]]:
    """One clip into DST: re-voiced when `shift` is given, else linked unchanged. Returns (id, (line, meta record))."""
    import soundfile as sf

    media, subs = f"media/{row['id']}.wav", f"subtitles/{row['id']}.srt"
    if shift is None:
        for rel in (row["media"], record.get("subtitles")):
            if rel and (src / rel).is_file():
                _link(src / rel, out / rel)
        return row["id"], (row, record)
    utterances = [{**u, "start": shift.times(u["start"]), "end": shift.times(u["end"])} for u in row["utterances"]]
    cues = [{**c, "start": shift.times(c["start"]), "end": shift.times(c["end"])} for c in record["cues"]]
    target = row["target_speaker"]
    other = next(s for s in record["speakers"] if s != target)
    line = {**row, "media": media, "utterances": utterances,
            "description": describe(target, other, record["manner"], cues)}
    wav_path = out / media
    write_shifted(lambda: _bench_audio(src / row["media"]), shift, wav_path)
    write_text_atomic(out / subs, to_srt(utterances))
    info = sf.info(wav_path)
    new_record = {**record, "media": media, "subtitles": subs, "cues": cues, "duration_s": round(info.duration, 3),
                  "sha256": media_sha256(wav_path), "shift": asdict(shift)}
    return row["id"], (line, new_record)


def _bench_audio(path: Path):
    import soundfile as sf

    wav, sr = sf.read(path, dtype="float32")
    if sr != SAMPLE_RATE_HZ or wav.ndim != 1:
        raise ConfigError(f"{path}: expected {SAMPLE_RATE_HZ} Hz mono, as `bench make` writes it")
    return wav


def _link(source: Path, dest: Path) -> None:
    if dest.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, dest)
    except OSError:  # another file system: copy
        shutil.copyfile(source, dest)
