"""A run's log.jsonl (one JSON row per logged step, stage-1 epoch, validation and the end) and its loss.png."""

from __future__ import annotations

import json
import os
from pathlib import Path

from acoustemo.data.manifest import write_text_atomic


class RunLog:
    """log.jsonl in the run folder (main process only); rows after a resumed step are dropped on resume."""

    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = path, enabled

    def truncate_after(self, step: int) -> None:
        if not self.enabled or not self.path.exists():
            return
        keep = [row for row in self.rows() if row.get("step", 0) <= step and row.get("event") != "end"]
        write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in keep))

    def rows(self) -> list[dict]:
        if not self.path.exists():
            return []
        rows = []
        for line in self.path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill
                continue
        return rows

    def write(self, row: dict) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")


def plot_loss(rows: list[dict], out_png: Path) -> Path:
    """Training loss per step (and validation loss) as a PNG, written atomically (matplotlib Agg, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    train_rows = [r for r in rows if "loss" in r and "step" in r]
    val_rows = [r for r in rows if r.get("val_loss") is not None]
    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if train_rows:
        ax.plot([r["step"] for r in train_rows], [r["loss"] for r in train_rows], lw=1, label="train loss")
    if val_rows:
        ax.plot([r["step"] for r in val_rows], [r["val_loss"] for r in val_rows], "o-", label="validation loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (answer tokens)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    fig.tight_layout()
    tmp = out_png.with_name(f"{out_png.stem}.tmp-{os.getpid()}.png")
    fig.savefig(tmp)
    os.replace(tmp, out_png)
    return out_png
