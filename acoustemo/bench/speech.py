"""Real speech for tests and benchmark scripts: a sentence spoken by espeak-ng, and a dialogue of such lines with
known utterance times.

Plain speech, no manners or cues (those are the benchmark's, make.py): the utterance times hug the speech, so a
test can check that segmentation, windows (Eq. 1) or features find it where it was put.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from acoustemo.bench.make import to_srt
from acoustemo.bench.synth import BenchError, need_tool
from acoustemo.data.media import SAMPLE_RATE_HZ

SILENCE_ABS = 1e-3  # samples quieter than this at either end are espeak-ng's leading / trailing silence


def speak(text: str, path: Path, voice: str = "en-us", rate_wpm: int = 160, pitch: int = 50) -> np.ndarray:
    """Synthesise `text` with espeak-ng to a 16 kHz mono wav at `path`; returns the samples (float32)."""
    import soundfile as sf

    raw = path.with_suffix(".raw.wav")
    espeak = need_tool("espeak-ng", "espeak-ng", "acoustemo.bench.speech", "try again")
    subprocess.run([espeak, "-v", voice, "-s", str(rate_wpm), "-p", str(pitch), "-w", str(raw), text], check=True)
    wav, sr = sf.read(raw, dtype="float32")
    raw.unlink()
    if sr != SAMPLE_RATE_HZ:
        import librosa

        wav = librosa.resample(wav, orig_sr=sr, target_sr=SAMPLE_RATE_HZ).astype(np.float32)
    nz = np.flatnonzero(np.abs(wav) > SILENCE_ABS)
    wav = wav[nz[0] : nz[-1] + 1] if len(nz) else wav  # trim espeak's silence so times hug the speech
    sf.write(path, wav, SAMPLE_RATE_HZ)
    return wav


def make_dialogue(folder: Path, lines: list[tuple[str, str, str]], gap_s: float = 0.4,
                  lead_s: float = 0.3) -> tuple[Path, list[dict]]:
    """Write folder/dialogue.wav from (speaker, voice, text) lines, `lead_s` of silence first and `gap_s` after each
    line (each line also stays as folder/line<i>.wav); returns (wav_path, utterances as manifest dicts)."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    parts, utts, t = [np.zeros(int(lead_s * SAMPLE_RATE_HZ), np.float32)], [], lead_s
    for i, (speaker, voice, text) in enumerate(lines):
        w = speak(text, folder / f"line{i}.wav", voice=voice)
        utts.append({"start": round(t, 3), "end": round(t + len(w) / SAMPLE_RATE_HZ, 3), "speaker": speaker,
                     "text": text})
        parts += [w, np.zeros(int(gap_s * SAMPLE_RATE_HZ), np.float32)]
        t += len(w) / SAMPLE_RATE_HZ + gap_s
    wav = np.concatenate(parts)
    path = folder / "dialogue.wav"
    sf.write(path, wav, SAMPLE_RATE_HZ)
    return path, utts


# The latency clip (issue #7): four utterances by two speakers, padded with silence to 30 s.
LATENCY_LINES = [
    ("Ana", "en-us", "I looked everywhere for the spare keys this morning and under the sofa, but they were "
                     "nowhere to be found."),
    ("Ben", "en-us+m3", "Did you check the pocket of the blue coat you wore on Sunday by the door?"),
    ("Ana", "en-us", "Not yet, although I am fairly sure I emptied every pocket when we came back from the market "
                     "in the afternoon."),
    ("Ben", "en-us+m3", "Then let us look in the car before we call the landlord, because a new set of keys "
                        "would take at least a week to arrive."),
]


def latency_clip(folder: Path, length_s: float = 30.0) -> tuple[Path, Path]:
    """folder/dialogue.wav (LATENCY_LINES padded with silence to `length_s`) and folder/dialogue.srt with their
    times, target speaker "Ana": the clip the latency benchmarks (benchmarks/predict_latency.py) predict."""
    import soundfile as sf

    wav_path, utts = make_dialogue(folder, LATENCY_LINES, gap_s=1.2, lead_s=0.5)
    wav, _ = sf.read(wav_path, dtype="float32")
    if len(wav) > length_s * SAMPLE_RATE_HZ:
        raise BenchError(f"the latency dialogue is {len(wav) / SAMPLE_RATE_HZ:.1f} s, longer than length_s={length_s}; "
                         "give a longer length_s")
    padding = np.zeros(int(length_s * SAMPLE_RATE_HZ) - len(wav), np.float32)
    sf.write(wav_path, np.concatenate([wav, padding]), SAMPLE_RATE_HZ)
    srt = folder / "dialogue.srt"
    srt.write_text(to_srt(utts))
    return wav_path, srt
