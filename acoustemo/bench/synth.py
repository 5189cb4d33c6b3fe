"""The speech engines: espeak-ng (the default), CMU Flite and Festival, their voice pools, the tool checks, and
sox as the signal tool every engine and cue uses.

espeak-ng speaks with the plan's rate (words per minute) and pitch (its 0–99 scale) itself. Flite and Festival
(`synth="flite"`, `synth="festival"`) speak at their own rate and pitch; espeak's rate and pitch are then applied
with sox `tempo` and `pitch` after synthesis (espeak rate 160 wpm = tempo 1.0, 15 espeak pitch units = 2.5
semitones). Festival's one voice here, `ked_diphone` (Debian festvox-kdlpc16k, the one US English voice Festival
ships that neither espeak-ng nor Flite has), becomes four speakers a few semitones apart (FESTIVAL_SHIFTS).
Every engine's output is resampled to 16 kHz and its leading and trailing silence trimmed.
"""

from __future__ import annotations

import io
import math
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np

from acoustemo.data.media import SAMPLE_RATE_HZ
from acoustemo.data.revoice import sox_effects
from acoustemo.errors import AcoustEmoError

# Voices: espeak-ng accents x variants. Variants (the voice's pitch range, formants, breathiness) are split
# between train / val / test so test speakers are unheard in training; the accents are shared.
ACCENTS = ("en-us", "en-gb-x-rp", "en", "en-gb-scotland", "en-029", "en-us-nyc")
VARIANT_POOLS = {
    "train": ("m1", "m2", "m4", "m6", "f1", "f4", "klatt", "klatt3", "Andy", "quincy", "steph", "robert"),
    "val": ("m5", "m8", "f5", "klatt4", "Lee"),
    "test": ("m3", "m7", "f2", "f3", "klatt2", "Mike"),
}

# Flite's built-in 16 kHz voices (`flite -lv`): a diphone voice and three statistical-parametric ones, two US male,
# a Scottish male and a US female. `kal` (8 kHz) and `awb_time` (a limited-domain clock voice) are left out.
FLITE_VOICES = ("kal16", "awb", "rms", "slt")
# Festival's voice that no other engine here shares (Flite's kal16 and slt are Festival's kal and slt), shifted
# by these semitones to four speakers: "festival:ked_diphone-3" ... "festival:ked_diphone+6".
FESTIVAL_VOICE = "ked_diphone"
FESTIVAL_SHIFTS = (-3, 0, 3, 6)
FESTIVAL_VOICES = tuple(f"{FESTIVAL_VOICE}{s:+d}" for s in FESTIVAL_SHIFTS)
SYNTHS = ("espeak", "flite", "festival")
ENGINE_VOICES = {"flite": FLITE_VOICES, "festival": FESTIVAL_VOICES}  # the voices of the engines besides espeak-ng
ESPEAK_RATE_WPM = 160  # the espeak rate that Flite's tempo 1.0 stands for
SEMITONES_PER_PITCH_UNIT = 2.5 / 15  # espeak's pitch 0–99 scale around 50, in semitones (gold.MANNERS' comment)
TRIM_BELOW_PEAK_DB = 40.0  # 10 ms frames quieter than the loudest one by this much are silence


class BenchError(AcoustEmoError):
    """The benchmark cannot be generated here (missing tool or voice, unusable output folder)."""


def need_tool(tool: str, package: str, needed_by: str = "the benchmark",
              then: str = "run `acoustemo bench make` again") -> str:
    """The tool's path, or a BenchError naming the Debian package to install."""
    path = shutil.which(tool)
    if path is None:
        raise BenchError(f"{tool} is not installed, and {needed_by} needs it: install it (Debian/Ubuntu: "
                         f"apt-get install {package}) and {then}")
    return path


@lru_cache(maxsize=1)
def espeak_variants() -> frozenset[str]:
    """Variant file names espeak-ng knows (`espeak-ng --voices=variant`, last path part of the File column)."""
    out = subprocess.run([need_tool("espeak-ng", "espeak-ng"), "--voices=variant"], capture_output=True,
                         text=True, check=True).stdout
    return frozenset(line.split()[4].split("/")[-1] for line in out.splitlines()[1:] if len(line.split()) >= 5)


@lru_cache(maxsize=1)
def flite_voices() -> frozenset[str]:
    """Voice names this Flite knows (`flite -lv`: "Voices available: kal awb_time kal16 awb rms slt")."""
    out = subprocess.run([need_tool("flite", "flite"), "-lv"], capture_output=True, text=True, check=True).stdout
    return frozenset(out.split(":", 1)[-1].split())


def check_tools(synth: str = "espeak") -> None:
    """Fail early, naming the package or voice to install, instead of failing inside a worker."""
    need_tool("sox", "sox")
    if synth == "flite":
        missing = sorted(set(FLITE_VOICES) - flite_voices())
        if missing:
            raise BenchError(f"flite here lacks the voices {missing} that `--synth flite` uses; install flite 2.x "
                             "with its built-in voices (Debian: apt-get install flite)")
        return
    if synth == "festival":
        need_tool("text2wave", "festival")
        proc = subprocess.run([need_tool("festival", "festival"), "-b", f"(voice_{FESTIVAL_VOICE})"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise BenchError(f"festival here lacks the voice {FESTIVAL_VOICE!r} that `--synth festival` uses; "
                             "install it (Debian: apt-get install festival festvox-kdlpc16k)")
        return
    known = espeak_variants()
    missing = sorted({v for pool in VARIANT_POOLS.values() for v in pool} - known)
    if missing:
        raise BenchError(f"espeak-ng here lacks the voice variants {missing} that the benchmark's voice pools use; "
                         "install espeak-ng >= 1.51 with its data (Debian: apt-get install espeak-ng espeak-ng-data)")


def synthesize(text: str, voice: str, rate_wpm: int, pitch: int) -> np.ndarray:
    """Speech at 16 kHz, float32, with the engine's leading/trailing silence trimmed off: espeak-ng's, or Flite's
    for a voice named "flite:<name>" (espeak's rate and pitch then applied with sox, see synthesize_flite)."""
    import soundfile as sf

    if voice.startswith("flite:"):
        return synthesize_flite(text, voice.removeprefix("flite:"), rate_wpm, pitch)
    if voice.startswith("festival:"):
        return synthesize_festival(text, voice.removeprefix("festival:"), rate_wpm, pitch)
    proc = subprocess.run([need_tool("espeak-ng", "espeak-ng"), "-v", voice, "-s", str(rate_wpm), "-p", str(pitch),
                           "--stdout", text], capture_output=True)
    if proc.returncode != 0 or not proc.stdout:
        raise BenchError(f"espeak-ng could not speak with voice {voice!r}: {proc.stderr.decode(errors='replace').strip()}"
                         " — check `espeak-ng --voices=en` and `--voices=variant` list it")
    return _engine_audio(*sf.read(io.BytesIO(proc.stdout), dtype="float64"))


def _engine_audio(wav: np.ndarray, sr: int) -> np.ndarray:
    """An engine's output at 16 kHz, float32, its leading/trailing silence trimmed off."""
    from scipy.signal import resample_poly

    if sr != SAMPLE_RATE_HZ:
        g = math.gcd(sr, SAMPLE_RATE_HZ)
        wav = resample_poly(wav, SAMPLE_RATE_HZ // g, sr // g)
    return trim_silence(wav.astype(np.float32))


def synthesize_flite(text: str, voice: str, rate_wpm: int, pitch: int) -> np.ndarray:
    """Flite speech with espeak's rate and pitch (_engine_wav); silence trimmed."""
    return _engine_wav("flite", [need_tool("flite", "flite"), "-voice", voice, "-t", text, "-o", "{out}"],
                       None, voice, rate_wpm, pitch, "check `flite -lv` lists it")


def synthesize_festival(text: str, voice: str, rate_wpm: int, pitch: int) -> np.ndarray:
    """Festival speech (voice "<name><shift>", e.g. "ked_diphone+3": Festival's voice, `shift` semitones higher)
    with espeak's rate and pitch (_engine_wav); silence trimmed."""
    name = voice.rstrip("+-0123456789")
    shift = int(voice[len(name):] or 0)
    return _engine_wav("festival", [need_tool("text2wave", "festival"), "-eval", f"(voice_{name})", "-o", "{out}"],
                       text, voice, rate_wpm, pitch, "install it (Debian: festvox-kdlpc16k)", shift)


def _engine_wav(engine: str, cmd: list[str], stdin: str | None, voice: str, rate_wpm: int, pitch: int,
                fix: str, shift_semitones: float = 0.0) -> np.ndarray:
    """Run an engine's command (its "{out}" argument = the wav it writes; `stdin` = the text, when it reads it
    there), then espeak's rate and pitch with sox: `tempo` rate_wpm / ESPEAK_RATE_WPM (duration scaled, pitch
    kept), then `pitch` (pitch - 50) x SEMITONES_PER_PITCH_UNIT + shift_semitones (duration kept)."""
    import tempfile

    import soundfile as sf

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out.wav"
        proc = subprocess.run([str(path) if a == "{out}" else a for a in cmd], capture_output=True,
                              input=None if stdin is None else stdin.encode())
        if proc.returncode != 0 or not path.exists() or b"ERROR" in proc.stderr:
            raise BenchError(f"{engine} could not speak with voice {voice!r}: "
                             f"{proc.stderr.decode(errors='replace').strip()} — {fix}")
        wav = _engine_audio(*sf.read(path, dtype="float64"))
    cents = ((pitch - 50) * SEMITONES_PER_PITCH_UNIT + shift_semitones) * 100
    return trim_silence(sox_effects(wav, ["tempo", "-s", f"{rate_wpm / ESPEAK_RATE_WPM:.4f}", "pitch", f"{cents:.1f}"],
                                    same_length=False))


def _frame_db(wav: np.ndarray, frame: int) -> np.ndarray:
    n = len(wav) // frame
    frames = wav[: n * frame].reshape(n, frame).astype(np.float64)
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)


def trim_silence(wav: np.ndarray) -> np.ndarray:
    """Cut 10 ms frames quieter than the loudest by TRIM_BELOW_PEAK_DB from both ends (keeping 10 ms of margin)."""
    frame = SAMPLE_RATE_HZ // 100
    db = _frame_db(wav, frame)
    loud = np.flatnonzero(db > db.max() - TRIM_BELOW_PEAK_DB)
    if len(loud) == 0:
        return wav
    a, b = max(0, (loud[0] - 1) * frame), min(len(wav), (loud[-1] + 2) * frame)
    return wav[a:b]


def active_rms_db(wav: np.ndarray) -> float:
    """RMS in dB over the 10 ms frames within 30 dB of the loudest (speech, not the pauses between words)."""
    db = _frame_db(wav, SAMPLE_RATE_HZ // 100)
    active = db[db > db.max() - 30.0]
    return float(10 * np.log10(np.mean(10 ** (active / 10))))
