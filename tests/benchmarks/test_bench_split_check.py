"""bench refuses a folder split here (``ROOT/<class>/``) that no longer splits as the run recorded, as export
does: otherwise images the model trained on could be measured as test images."""
from PIL import Image
from typer.testing import CliRunner

from edgesmith.cli import app
from edgesmith.core.data import DataSpec
from edgesmith.core.datareport import write_data_report
from edgesmith.core.rundir import load_manifest, save_manifest


def test_bench_refuses_a_folder_that_no_longer_splits_as_recorded(tiny_run, tmp_path):
    root = tmp_path / "flat"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (32, 32), (40 * i, 0, 0)).save(root / c / f"{i}.png")
    spec = DataSpec(str(root))
    m = load_manifest(tiny_run)
    m["dataset"] = {**m["dataset"], **spec.to_dict()}
    save_manifest(tiny_run, m)
    write_data_report(spec, tiny_run.root)  # RUN/split.json as training wrote it
    for i in range(6, 30):  # images added after training reshuffle the seeded split
        Image.new("RGB", (32, 32)).save(root / "a" / f"{i}.png")
    r = CliRunner().invoke(app, ["bench", str(tiny_run.root), "--runtime", "litert-cpu", "--runs", "10"])
    assert r.exit_code == 1 and "no longer splits as this run recorded" in r.output, r.output
    assert not (tiny_run.root / "bench").exists()
