"""Training curves as a PNG (matplotlib, no display needed)."""
from __future__ import annotations

from pathlib import Path

from edgesmith.core.cpuinfo import machine_stamp
from edgesmith.core.fsutil import atomic_path


def plot_curves(history: dict[str, list[float]], path: Path) -> None:
    """Write accuracy and loss per epoch, train vs validation, side by side, to ``path``; the title names
    this machine's CPU and today's date."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("accuracy", "loss")):
        for prefix, label in (("", "train"), ("val_", "validation")):
            values = history.get(prefix + key)
            if values:
                ax.plot(range(1, len(values) + 1), values, marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"training curves: {machine_stamp()}", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
