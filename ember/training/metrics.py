"""The run directory's metrics.jsonl (one JSON object per line) and its loss-curve PNG."""

from __future__ import annotations

import json
import math
import os


class MetricsLog:
    """Appends records to `path`; `truncate_after(step)` drops records past a resumed step, so a resumed
    run's log reads as if it had never stopped."""

    def __init__(self, path: str):
        self.path = path

    def truncate_after(self, step: int) -> None:
        """Keep only records with record['step'] <= step (all of them when the file does not exist)."""
        if not os.path.exists(self.path):
            return
        keep = [r for r in read_metrics(self.path) if r.get("step", 0) <= step]
        text = "".join(json.dumps(r) + "\n" for r in keep)
        from ..io import atomic_write
        atomic_write(self.path, lambda f: f.write(text.encode()))

    def write(self, record: dict) -> None:
        """Append one record (a JSON-safe dict) and flush it to disk."""
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def read_metrics(path: str) -> list[dict]:
    """All records of a metrics.jsonl file, skipping a torn last line."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def plot_loss_curve(metrics_path: str, png_path: str, title: str = "") -> None:
    """Draw train loss (and val loss where present) against step into a PNG (matplotlib, Agg backend)."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    train = [(r["step"], r["loss"]) for r in records if r.get("split") == "train" and "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if r.get("split") == "val" and "val_loss" in r]
    acc = [(r["step"], r["accuracy"]) for r in records if r.get("split") == "val" and "accuracy" in r]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train), label="train loss", lw=1)
    if val:
        ax.plot(*zip(*val), "o-", label="val loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if train and all(v > 0 and math.isfinite(v) for _, v in train):
        ax.set_yscale("log")
    handles = ax.get_lines()
    if acc:
        ax2 = ax.twinx()
        handles += ax2.plot(*zip(*acc), "s--", color="tab:green", label="val accuracy")
        ax2.set_ylabel("accuracy")
        ax2.set_ylim(0, 1)
    if handles:  # one legend for both axes, where it hides the least
        ax.legend(handles=handles, labels=[h.get_label() for h in handles], loc="center right",
                  framealpha=0.8)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = png_path + ".tmp.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, png_path)
