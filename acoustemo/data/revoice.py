"""Re-voicing at the waveform: a whole recording moved in pitch, tempo and gain (issue #35).

    shift = Shift(pitch_st=2, tempo=1.1, gain_db=4)            # +2 semitones, 10 % faster, +4 dB
    wav2 = shift.apply(wav)                                   # 16 kHz mono float32 in and out
    draw_shift(Shift(3, 1.2, 6), seed=0, key="clip-7")        # one random shift within the ranges
    augment_manifest("train.jsonl", "aug/", Shift(3, 1.2, 6), copies=1)    # `acoustemo augment`

A voice whose plain speech is higher, faster or louder than the training voices', or a recording made at another
gain, moves every clip-wide cue a model reads against an absolute scale. Copies of each clip moved as a whole (every
speaker together) are training data in which the scale carries no emotion, while what a speaker does against the
rest of the recording, and every local cue, is kept. On the benchmark they made a linear probe hold on shifted voices;
what they do for the learned model is measured in BENCHMARKS.md. Pitch and tempo are sox's (`pitch` in cents, `tempo -s`, WSOLA for
speech: the formants move with the pitch, as in a higher voice); the gain is a multiplication, written as float so
nothing clips. This is the augmentation measured in BENCHMARKS.md ("The same dialogues at another scale"); the
benchmark's own folders use it through `acoustemo bench shift`.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from acoustemo.data.manifest import read_manifest, write_manifest, write_text_atomic
from acoustemo.data.media import SAMPLE_RATE_HZ, load_audio
from acoustemo.data.segments import Utterance
from acoustemo.errors import ConfigError, MediaError

# a time named in an explanation ("at 1.8–2.9 s", "from 3 s"): a tempo change would make it wrong
_TIME_IN_TEXT = re.compile(r"\d+(?:\.\d+)?\s*(?:s|sec|seconds?)\b")


def sox_effects(wav: np.ndarray, effects: list[str], same_length: bool = True) -> np.ndarray:
    """`wav` through sox's effect chain (16 kHz float32 raw in and out); same_length pads / cuts to len(wav)."""
    sox = shutil.which("sox")
    if sox is None:
        raise MediaError("sox is not installed and re-voicing audio needs it: install it (Debian/Ubuntu: apt-get "
                         "install sox) and run the command again")
    fmt = ["-t", "raw", "-e", "floating-point", "-b", "32", "-r", str(SAMPLE_RATE_HZ), "-c", "1"]
    proc = subprocess.run([sox, "-V1", *fmt, "-", *fmt, "-", *effects], input=wav.astype(np.float32).tobytes(),
                          capture_output=True)
    if proc.returncode != 0:
        raise MediaError(f"sox {' '.join(effects)} failed: {proc.stderr.decode(errors='replace').strip()}")
    out = np.frombuffer(proc.stdout, dtype=np.float32)
    return np.pad(out, (0, max(0, len(wav) - len(out))))[: len(wav)] if same_length else out.copy()


@dataclass(frozen=True)
class Shift:
    """One whole-recording shift: pitch in semitones, tempo as a speed factor (>1 = faster), gain in dB. As ranges
    (draw_shift): pitch and gain uniform in +-the value, tempo log-uniform in [1/tempo, tempo]."""

    pitch_st: float = 0.0
    tempo: float = 1.0
    gain_db: float = 0.0

    def __post_init__(self) -> None:
        if not (0.5 <= self.tempo <= 2.0):
            raise ConfigError(f"tempo {self.tempo}: give a speed factor between 0.5 and 2 (1 = unchanged)")
        if abs(self.pitch_st) > 12:
            raise ConfigError(f"pitch {self.pitch_st} semitones: give at most an octave either way")
        if abs(self.gain_db) > 30:
            raise ConfigError(f"gain {self.gain_db} dB: give at most 30 dB either way")

    def apply(self, wav: np.ndarray) -> np.ndarray:
        """The recording re-voiced: sox pitch (cents) and tempo, then the gain."""
        effects = []
        if self.pitch_st:
            effects += ["pitch", f"{100 * self.pitch_st:.1f}"]
        if self.tempo != 1.0:
            effects += ["tempo", "-s", f"{self.tempo:.4f}"]
        out = sox_effects(wav, effects, same_length=False) if effects else wav.astype(np.float32)
        return (out * 10 ** (self.gain_db / 20)).astype(np.float32)

    def times(self, t: float) -> float:
        """Where a moment of the original lies in the re-voiced recording (seconds)."""
        return round(t / self.tempo, 3)


def draw_shift(ranges: Shift, seed: int, key: str) -> Shift:
    """A random shift within `ranges` (see Shift), the same for the same seed and key (a clip's id)."""
    if ranges.tempo < 1.0:
        raise ConfigError(f"tempo range {ranges.tempo}: give the upper speed factor (>= 1), e.g. 1.2 for 1/1.2..1.2")
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    pitch, log_tempo, gain = rng.uniform(-1, 1, 3)
    return Shift(round(float(pitch * ranges.pitch_st), 3), round(math.exp(log_tempo * math.log(ranges.tempo)), 4),
                 round(float(gain * ranges.gain_db), 3))


def write_shifted(load_audio_fn, shift: Shift, wav_path: Path) -> None:
    """Write `wav_path`: the audio `load_audio_fn()` returns (16 kHz mono), re-voiced, as float WAV (atomically), with
    a stamp of the shift beside it; a file already made with the same shift is kept and the audio not even loaded."""
    import soundfile as sf

    stamp = wav_path.with_name(f".{wav_path.stem}.shift.json")
    if wav_path.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == asdict(shift):
        return
    wav_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = wav_path.with_name(f".{wav_path.stem}.tmp.wav")
    sf.write(tmp, shift.apply(load_audio_fn()), SAMPLE_RATE_HZ, subtype="FLOAT")
    os.replace(tmp, wav_path)
    write_text_atomic(stamp, json.dumps(asdict(shift)))


def augment_manifest(manifest: str | os.PathLike, out_dir: str | os.PathLike, ranges: Shift, copies: int = 1,
                     seed: int = 0, originals: bool = True) -> Path:
    """Write OUT/<manifest name>: the manifest's clips (with `originals`) and `copies` re-voiced copies of each, with
    a random shift within `ranges` per copy (draw_shift; ids "<id>-shift<k>", audio in OUT/media as 16 kHz float WAV,
    utterance times scaled, labels and explanations kept, each copy's shift under "shift"). A rerun keeps the copies
    already made with the same shift. Returns the new manifest's path."""
    manifest, out = Path(manifest), Path(out_dir)
    if copies < 1:
        raise ConfigError(f"--copies {copies}: give 1 or more re-voiced copies per clip")
    clips = read_manifest(manifest)
    if not clips:
        raise ConfigError(f"{manifest} holds no clip to re-voice")
    if ranges.tempo != 1.0:
        timed = [c.id for c in clips if _TIME_IN_TEXT.search(c.description or "")]
        if timed:
            raise ConfigError(f"{len(timed)} clip(s) of {manifest} name times in their explanation (e.g. {timed[0]}), "
                              f"which a tempo change would make wrong; give --tempo 1 (pitch and gain only)")
    new, extra = [], {}
    for clip in clips:
        if originals:
            new.append(clip)
        for k in range(copies):
            clip_id = f"{clip.id}-shift{k}"
            shift = draw_shift(ranges, seed, clip_id)
            wav_path = out / "media" / f"{clip_id}.wav"
            write_shifted(lambda: load_audio(clip.media), shift, wav_path)
            utterances = [Utterance(shift.times(u.start_s), shift.times(u.end_s), u.speaker, u.text)
                          for u in clip.utterances]
            new.append(replace(clip, id=clip_id, media=str(wav_path.resolve()), utterances=utterances))
            extra[clip_id] = {"shift": asdict(shift)}
    path = out / manifest.name
    write_manifest(path, new, extra)
    return path
