"""How often torch's int8-weight kernel answers wrongly, per input width and activation dtype, on this CPU.

    python benchmarks/int8_kernel_widths.py [--draws 200]

For each width, `--draws` random nn.Linear(width, 24) layers are quantised by acoustemo's Int8Linear and each is called
once on one random row, straight through `torch.ops.aten._weight_int8pack_mm` (the decoding path, whatever
Int8Linear's own guard says); a call is wrong when it is not within 0.05 + 2 % of the float32 layer. Prints JSON:
the CPU capability and, per activation dtype, the wrong share per width. Int8Linear.kernel_ok keeps bf16 / fp16 input
off the kernel at the widths where it fails (BENCHMARKS.md, issue #15, session 13).
"""

from __future__ import annotations

import argparse
import json

import torch

WIDTHS = (8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 120, 136)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--draws", type=int, default=200)
    args = ap.parse_args()

    from acoustemo.hardware import cpu_capability, cpu_has_native_bf16
    from acoustemo.model.llm import Int8Linear

    torch.manual_seed(0)
    report = {"cpu_capability": cpu_capability(), "native_bf16": cpu_has_native_bf16(),
              "draws": args.draws, "wrong_pct": {}}
    for dtype in (torch.bfloat16, torch.float32):
        wrong = {}
        for width in WIDTHS:
            n = 0
            for _ in range(args.draws):
                linear = torch.nn.Linear(width, 24, bias=False)
                q = Int8Linear(linear, dtype)
                x = torch.randn(1, width)
                y = torch.ops.aten._weight_int8pack_mm(x.to(dtype), q.weight_int8, q.kernel_scale).float()
                n += not torch.allclose(y, linear(x), atol=0.05, rtol=0.02)
            wrong[width] = round(100 * n / args.draws, 1)
        report["wrong_pct"][str(dtype).removeprefix("torch.")] = wrong
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
