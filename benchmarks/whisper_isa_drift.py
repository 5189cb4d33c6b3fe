"""Do Whisper's frames depend on the CPU? Encodes the 30 s latency clip with CTranslate2 int8 and float32, at one and
two threads, on this CPU's own kernels and, in a child process, with oneDNN held to AVX2 (ONEDNN_MAX_CPU_ISA=AVX2,
what an AVX2-only CPU runs; a no-op on one); prints JSON: each variant's relative L2 and max abs distance from
float32 on this CPU's kernels at 2 threads, and its encode time (issue #15: why Whisper computes in float32).

    python benchmarks/whisper_isa_drift.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = [(ct, n) for ct in ("int8", "float32") for n in (1, 2)]


def encode_all(out: Path) -> dict:
    """Encode the clip in every variant, save the frames under `out`, return the times."""
    import numpy as np

    from acoustemo.data.media import load_audio
    from acoustemo.features.whisper import WhisperEncoder
    from predict_latency import make_clip

    wav_path, _ = make_clip(out)
    wav = load_audio(wav_path)
    times = {}
    for ct, n in VARIANTS:
        enc = WhisperEncoder(compute_type=ct, threads=n)
        enc.encode(wav)  # load + warm-up
        t = time.perf_counter()
        frames = enc.encode(wav)
        times[f"{ct}-{n}"] = round(time.perf_counter() - t, 3)
        np.save(out / f"{ct}-{n}.npy", frames)
    return times


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(encode_all(Path(sys.argv[2]))))
        return
    import numpy as np

    from acoustemo.hardware import hardware_report

    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for name, env in (("this_cpu", {}), ("onednn_avx2", {"ONEDNN_MAX_CPU_ISA": "AVX2"})):
            folder = Path(tmp) / name
            folder.mkdir()
            child = subprocess.run([sys.executable, __file__, "--child", str(folder)], env={**os.environ, **env},
                                   capture_output=True, text=True, check=True, cwd=Path(__file__).parent)
            runs[name] = json.loads(child.stdout.strip().splitlines()[-1])
        ref = np.load(Path(tmp) / "this_cpu" / "float32-2.npy")
        report = {"machine": hardware_report(), "reference": "float32, 2 threads, this CPU's kernels", "variants": {}}
        for name, times in runs.items():
            for key, seconds in times.items():
                x = np.load(Path(tmp) / name / f"{key}.npy")
                report["variants"][f"{name}/{key}"] = {
                    "rel_l2": round(float(np.linalg.norm(x - ref) / np.linalg.norm(ref)), 5),
                    "max_abs": round(float(np.abs(x - ref).max()), 4), "encode_s": seconds}
        a, b = (np.load(Path(tmp) / n / "int8-2.npy") for n in runs)
        report["int8_this_cpu_vs_onednn_avx2_rel_l2"] = round(float(np.linalg.norm(a - b) / np.linalg.norm(b)), 5)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
