"""The training benchmark's ceiling run: a test curve scored after every epoch, and its summary."""
import csv

from edgesmith.benchmarks.perf_training import ceiling


def test_ceiling_run_scores_every_epoch_and_finds_the_first_within_1pt(tmp_path):
    c = ceiling("synthetic", tmp_path / "run", epochs=3, precision="fp32", model="cnn", batch_size=64,
                optimizer="sgd", weight_decay=5e-3)
    with open(tmp_path / "run" / "test_curve.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    top1 = [float(r["test_top1"]) for r in rows]
    assert c["ceiling_top1"] == max(top1) > 0.3  # learnable data: chance is 0.1
    first = next(i for i, t in enumerate(top1) if t >= max(top1) - 0.01)
    assert c["within_1pt_epoch"] == first + 1 and c["final_top1"] == top1[-1]
    assert 0 < c["within_1pt_minutes"] <= c["train_minutes"]
