"""Per-class quality: confusion matrix, per-class recall and precision, class weights. numpy only.

Training (``metrics.json``, the console) and the bench report (``results.json``, ``report.md``)
both compute their per-class figures here, from the same ``(K, K)`` confusion matrix, so the two
agree on what "per-class accuracy" means: the **recall** of a class, the share of its test images
predicted as it. A real folder is rarely balanced; top-1 alone hides a class the model never gets.

Example::

    cm = confusion_matrix(labels, probs.argmax(1), num_classes=3)
    summary = per_class_summary(cm, ("cat", "dog", "frog"))
    print("\\n".join(confusion_markdown(cm, ("cat", "dog", "frog"))))
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .cpuinfo import machine_stamp
from .errors import BackendUnavailable, DataError
from .fsutil import atomic_path

PLOTS_HINT = "pip install 'edgesmith[plots]'"


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts of (true class, predicted class) pairs.

    Args:
        labels: ``(N,)`` int true class ids in ``[0, num_classes)``.
        preds: ``(N,)`` int predicted class ids in ``[0, num_classes)``.

    Returns:
        ``(num_classes, num_classes) int64``: row = true class, column = predicted class.

    Raises:
        DataError: shapes differ, or an id lies outside ``[0, num_classes)``.
    """
    labels, preds = np.asarray(labels, dtype=np.int64).ravel(), np.asarray(preds, dtype=np.int64).ravel()
    if labels.shape != preds.shape:
        raise DataError(f"{len(labels)} labels but {len(preds)} predictions")
    for name, a in (("label", labels), ("prediction", preds)):
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            raise DataError(f"a {name} lies outside [0, {num_classes}): {int(a.min())}..{int(a.max())}")
    return np.bincount(labels * num_classes + preds, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes)


def per_class_summary(confusion: np.ndarray, class_names, *, top_confusions: int = 5) -> dict:
    """Per-class figures of a confusion matrix, as JSON-ready numbers.

    Args:
        confusion: ``(K, K)`` counts from :func:`confusion_matrix` (row = true class).
        class_names: the K names, index = class id.
        top_confusions: how many of the largest off-diagonal cells to list.

    Returns:
        ``class_names``; ``confusion`` (K lists of K ints); ``per_class``: one dict per class with
        ``class``, ``support`` (test images of it), ``correct``, ``recall`` (= per-class accuracy,
        fraction; None without images) and ``precision`` (fraction of the images predicted as it
        that are it; None when nothing was); ``balanced_accuracy`` (mean recall over the classes
        that have images); ``most_confused``: ``{"true", "predicted", "count"}`` by count, largest first.
    """
    cm = np.asarray(confusion, dtype=np.int64)
    names = [str(n) for n in class_names]
    if cm.shape != (len(names), len(names)):
        raise DataError(f"a {cm.shape} confusion matrix for {len(names)} classes")
    support, predicted, correct = cm.sum(1), cm.sum(0), np.diag(cm)
    rows = [{"class": n, "support": int(s), "correct": int(c),
             "recall": float(c / s) if s else None, "precision": float(c / p) if p else None}
            for n, s, p, c in zip(names, support, predicted, correct)]
    recalls = [r["recall"] for r in rows if r["recall"] is not None]
    off = [(int(cm[i, j]), i, j) for i in range(len(names)) for j in range(len(names)) if i != j and cm[i, j]]
    off.sort(key=lambda t: (-t[0], t[1], t[2]))
    return {"class_names": names, "confusion": cm.tolist(), "per_class": rows,
            "balanced_accuracy": float(np.mean(recalls)) if recalls else None,
            "most_confused": [{"true": names[i], "predicted": names[j], "count": k}
                              for k, i, j in off[:top_confusions]]}


def per_class_markdown(summary: dict) -> list[str]:
    """A Markdown table of :func:`per_class_summary`: class, images, recall, precision (lines)."""
    lines = ["| class | images | accuracy (recall) | precision |", "|---|---:|---:|---:|"]
    for r in summary["per_class"]:
        lines.append(f"| {r['class']} | {r['support']} | {_pct(r['recall'])} | {_pct(r['precision'])} |")
    return lines


def confusion_markdown(confusion, class_names) -> list[str]:
    """The confusion matrix as Markdown lines: one row per true class, one column per prediction."""
    names = [str(n) for n in class_names]
    lines = ["| true \\ predicted | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for name, row in zip(names, np.asarray(confusion).tolist()):
        lines.append(f"| {name} | " + " | ".join(str(int(v)) for v in row) + " |")
    return lines


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def plot_confusion(confusion, class_names, path: str | Path, *, title: str = "",
                   machine: str | None = None) -> Path:
    """Draw the confusion matrix, rows normalised to recall (counts in the cells), as a PNG.

    The title ends with the machine and date that made the numbers: ``machine`` (a
    ``machine_stamp()`` line, e.g. from a bench report's CPU and date), else this machine, today.

    Side effects: writes ``path`` atomically.

    Raises:
        BackendUnavailable: matplotlib (the ``[plots]`` extra) is not installed.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise BackendUnavailable(f"drawing {Path(path).name} needs matplotlib: {PLOTS_HINT}") from None
    cm = np.asarray(confusion, dtype=np.int64)
    names = [str(n) for n in class_names]
    k = len(names)
    rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    side = min(14.0, 2.5 + 0.55 * k)
    fig = Figure(figsize=(side, side * 0.9))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    stamp = machine or machine_stamp()
    ax.set_title(f"{title}\n{stamp}" if title else stamp, fontsize=10)
    if k <= 30:  # numbers stay legible
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if rates[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Inverse-frequency class weights, normalised so the average weight per training image is 1.

    ``w_c = N / (K * n_c)`` (scikit-learn's ``"balanced"``): every class then carries the same total
    weight in the loss, and the learning rate keeps its meaning. A class with no training image
    gets weight 0 (it never appears in the loss).

    Args:
        labels: ``(N,)`` int class ids of the training images.

    Returns:
        ``(num_classes,) float64`` weights.

    Raises:
        DataError: no labels.
    """
    labels = np.asarray(labels, dtype=np.int64).ravel()
    if not labels.size:
        raise DataError("class weights need at least one training image")
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = labels.size / (present.sum() * counts[present])
    return weights
