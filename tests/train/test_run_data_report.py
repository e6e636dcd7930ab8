"""The library's train() writes the data report and the split into the run it finalises (not only the CLI)."""
import json


def test_train_writes_the_data_report_and_split_into_the_run(trained_run):
    root = trained_run.root  # made by edgesmith.train.train(), no CLI involved
    report = json.loads((root / "data_report.json").read_text())
    assert report["source"] == "synthetic" and "nothing skipped" in report["summary"]
    assert (root / "data_report.md").read_text().strip()
    assert json.loads((root / "split.json").read_text()) == {"source": "synthetic", "splits": {}}  # named: its own split
