"""Per-class accuracy and confusion matrices: the numbers (edgesmith.core.perclass), the bench
worker's accuracy pass and the report sections. TF-free."""
import json

import numpy as np
import pytest

from edgesmith.benchmarks import report as rp
from edgesmith.benchmarks.worker import accuracy
from edgesmith.core.errors import DataError
from edgesmith.core.perclass import (class_weights, confusion_markdown, confusion_matrix, per_class_summary,
                                     plot_confusion)

NAMES = ("cat", "dog", "frog")
# 4 cats (3 right, 1 called dog), 2 dogs (both right), 3 frogs (1 right, 2 called cat), nothing else
LABELS = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2])
PREDS = np.array([0, 0, 0, 1, 1, 1, 2, 0, 0])


def test_confusion_and_per_class_figures_are_exact():
    cm = confusion_matrix(LABELS, PREDS, 3)
    assert cm.tolist() == [[3, 1, 0], [0, 2, 0], [2, 0, 1]]
    s = per_class_summary(cm, NAMES)
    rows = {r["class"]: r for r in s["per_class"]}
    assert rows["cat"] == {"class": "cat", "support": 4, "correct": 3, "recall": 0.75, "precision": 0.6}
    assert rows["dog"]["recall"] == 1.0 and rows["dog"]["precision"] == pytest.approx(2 / 3)
    assert rows["frog"]["recall"] == pytest.approx(1 / 3) and rows["frog"]["precision"] == 1.0
    assert s["balanced_accuracy"] == pytest.approx((0.75 + 1 + 1 / 3) / 3)
    assert s["most_confused"][0] == {"true": "frog", "predicted": "cat", "count": 2}
    assert json.loads(json.dumps(s)) == s  # JSON-ready as it is
    assert confusion_markdown(cm, NAMES)[2:] == ["| cat | 3 | 1 | 0 |", "| dog | 0 | 2 | 0 |", "| frog | 2 | 0 | 1 |"]


def test_a_class_never_predicted_or_absent_has_no_precision_or_recall():
    s = per_class_summary(confusion_matrix([0, 0, 1], [0, 0, 0], 3), NAMES)
    assert [r["recall"] for r in s["per_class"]] == [1.0, 0.0, None]
    assert [r["precision"] for r in s["per_class"]] == [pytest.approx(2 / 3), None, None]
    with pytest.raises(DataError, match="outside"):
        confusion_matrix([0, 3], [0, 0], 3)


def test_class_weights_balance_an_imbalanced_set():
    labels = np.array([0] * 80 + [1] * 15 + [2] * 5)
    w = class_weights(labels, 3)
    np.testing.assert_allclose(w, [100 / 240, 100 / 45, 100 / 15])
    # every class carries the same total weight, and the mean weight per image is 1
    np.testing.assert_allclose(w * np.bincount(labels), 100 / 3)
    assert w[labels].mean() == pytest.approx(1.0)
    assert class_weights(np.array([0, 0, 2]), 3)[1] == 0  # a class with no image never enters the loss


class _Fixed:
    """A runner whose predictions are fixed: probabilities one-hot at PREDS, per call window."""

    def __init__(self):
        self.i = 0

    def predict(self, x):
        out = np.eye(3, dtype=np.float32)[PREDS[self.i:self.i + len(x)]]
        self.i += len(x)
        return out


def test_the_bench_worker_returns_the_confusion_matrix_of_its_predictions():
    acc = accuracy(_Fixed(), np.zeros((9, 4, 4, 3), np.uint8), LABELS, 3)
    assert acc["top1"] == pytest.approx(6 / 9)
    assert acc["correct"] == [3, 2, 1] and acc["total"] == [4, 2, 3]
    assert acc["confusion"] == [[3, 1, 0], [0, 2, 0], [2, 0, 1]]


def _report(tmp_path):
    cm = confusion_matrix(LABELS, PREDS, 3).tolist()
    other = [[4, 0, 0], [0, 2, 0], [2, 0, 1]]
    acc = [{"artifact": "tflite_int8", "runtime": "litert-cpu", "top1": 6 / 9, "n_test": 9,
            "per_class": {"cat": 0.75, "dog": 1.0, "frog": 1 / 3}, "confusion": cm},
           {"artifact": "tflite_int8", "runtime": "litert-xnnpack", "top1": 6 / 9, "n_test": 9,
            "per_class": {"cat": 0.75, "dog": 1.0, "frog": 1 / 3}, "confusion": cm},
           {"artifact": "onnx_fp32", "runtime": "ort-cpu", "top1": 7 / 9, "n_test": 9,
            "per_class": {"cat": 1.0, "dog": 1.0, "frog": 1 / 3}, "confusion": other}]
    return {"class_names": list(NAMES), "accuracy": acc}


def test_the_report_gives_per_class_recall_and_one_confusion_matrix_per_artifact(tmp_path):
    report = _report(tmp_path)
    found = rp.confusions(report)
    assert found["tflite_int8"]["same_on"] == ["litert-xnnpack"] and set(found) == {"tflite_int8", "onnx_fp32"}
    md = "\n".join(rp.per_class_lines(report))
    assert "| tflite_int8 | litert-cpu | 69.4% | 75.0% | 100.0% | 33.3% |" in md  # balanced, then per class
    assert "### Confusion matrix: tflite_int8 (litert-cpu, litert-xnnpack;" in md
    assert "| frog | 2 | 0 | 1 |" in md and "| cat | 4 | 0 | 0 |" in md
    assert "Most confused: frog -> cat (2); cat -> dog (1)." in md
    # a worker of an older edgesmith sends no matrix: the table stays, no matrix is made up
    report["accuracy"] = [{**a, "confusion": None} for a in report["accuracy"]]
    md = "\n".join(rp.per_class_lines(report))
    assert "75.0%" in md and "Confusion matrix" not in md


@pytest.mark.plots
def test_the_confusion_matrix_is_drawn_with_matplotlib(tmp_path):
    path = plot_confusion(confusion_matrix(LABELS, PREDS, 3), NAMES, tmp_path / "c.png", title="x")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
