"""How well single prosody channels flag the benchmark's local cues; prints JSON (AUC per cue and channel).

    python benchmarks/prosody_probe.py [--n 12]

For n espeak-ng sentences (mixed voices and rates), a 1 s segment starting at 1.0 s is altered in one copy:
+6 dB (burst), +3 semitones (jump, librosa pitch_shift), 7 Hz ffmpeg tremolo (d=0.6) or vibrato (d=0.5).
Score = mean of the channel over the segment minus its mean over the rest of the voiced speech; AUC compares
altered copies against the plain ones (0.5 = chance, 1.0 = perfectly separated).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import speak  # noqa: E402

from acoustemo.features.prosody import CHANNELS, ProsodyEncoder  # noqa: E402

SENTENCES = ["We walked along the river for an hour and then sat down on the bench.",
             "Nobody answered the phone all afternoon, so I drove over to check.",
             "The garden looks different after the rain, greener and somehow smaller.",
             "She said the meeting was moved to Thursday but nobody told the others."]
VOICES = ["en-us", "en-us+m3", "en-us+f2", "en-us+m7", "en-us+f4", "en"]


def auc(pos, neg) -> float:
    pos, neg = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float(((pos > neg).mean() + 0.5 * (pos == neg).mean()))


def segment_score(x: np.ndarray, channel: int) -> float:
    seg = np.zeros(len(x), bool)
    seg[50:100] = True
    active = x[:, 2] * 20 > -40
    return float(x[seg & active, channel].mean() - x[~seg & active, channel].mean())


def main() -> None:
    import librosa

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=12)
    n = ap.parse_args().n
    enc = ProsodyEncoder()
    cues = ["burst_6db", "jump_3st", "tremolo_7hz", "vibrato_7hz"]
    scores = {c: {"pos": [], "neg": []} for c in cues}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            path = Path(tmp) / f"s{i}.wav"
            wav = speak(SENTENCES[i % len(SENTENCES)], path, voice=VOICES[i % len(VOICES)], rate_wpm=150 + 10 * (i % 3))
            a, b = 16000, 32000
            plain = enc.encode(wav)
            altered = {}
            w = wav.copy(); w[a:b] *= 10 ** (6 / 20); altered["burst_6db"] = w
            w = wav.copy(); w[a:b] = librosa.effects.pitch_shift(wav[a:b], sr=16000, n_steps=3); altered["jump_3st"] = w
            for cue, af in [("tremolo_7hz", "tremolo=f=7:d=0.6"), ("vibrato_7hz", "vibrato=f=7:d=0.5")]:
                out = Path(tmp) / f"{cue}{i}.wav"
                subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(path), "-af", af, str(out)], check=True)
                mod = sf.read(out, dtype="float32")[0][: len(wav)]
                w = wav.copy(); w[a:b] = mod[a:b]; altered[cue] = w
            for cue in cues:
                x = enc.encode(altered[cue])
                scores[cue]["pos"].append([segment_score(x, c) for c in range(len(CHANNELS))])
                scores[cue]["neg"].append([segment_score(plain, c) for c in range(len(CHANNELS))])
    result = {"n_sentences": n}
    for cue in cues:
        pos, neg = np.array(scores[cue]["pos"]), np.array(scores[cue]["neg"])
        result[cue] = {ch: round(auc(pos[:, c], neg[:, c]), 3) for c, ch in enumerate(CHANNELS)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
