import json

import pytest

from edgesmith.core.errors import RunDirError
from edgesmith.core.fsutil import atomic_path, write_json
from edgesmith.core.rundir import RunDir, file_record, load_manifest, new_manifest, require_model, save_manifest, verify_file


def test_atomic_path_leaves_nothing_when_the_body_fails(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_a_directory_whole(tmp_path):
    target = tmp_path / "dir"
    target.mkdir()
    (target / "old").write_text("x")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new").write_text("y")
    assert sorted(p.name for p in target.iterdir()) == ["new"]


def test_manifest_round_trip_and_tamper_detection(tmp_path):
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    (run.root / "model.keras").write_bytes(b"weights")
    m = new_manifest(run, {"source": "synthetic", "class_names": ["a", "b"]})
    m["model"] = file_record(run.model, "model.keras", format="keras")
    save_manifest(run, m)
    loaded, path = require_model(run)
    assert loaded["model"]["bytes"] == 7 and path == run.model
    assert "numpy" in loaded["versions"]
    run.model.write_bytes(b"tampered")
    with pytest.raises(RunDirError, match="sha256 mismatch"):
        verify_file(run, loaded["model"])


def test_missing_run_and_foreign_schema(tmp_path):
    with pytest.raises(RunDirError, match="does not exist"):
        load_manifest(RunDir(tmp_path / "nope"))
    tmp_path.joinpath("m").mkdir()
    with pytest.raises(RunDirError, match="no manifest.json"):
        load_manifest(RunDir(tmp_path / "m"))
    write_json(tmp_path / "m" / "manifest.json", {"schema_version": 99})
    with pytest.raises(RunDirError, match="schema 99"):
        load_manifest(RunDir(tmp_path / "m"))
    write_json(tmp_path / "m" / "manifest.json", new_manifest(RunDir(tmp_path / "m"), {}))
    with pytest.raises(RunDirError, match="no trained model"):
        require_model(RunDir(tmp_path / "m"))


def test_cpu_info_parses_x86_and_arm_and_tolerates_absence(tmp_path):
    from edgesmith.core.cpuinfo import cpu_info

    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nmodel name\t: Test Xeon\ncpu MHz\t\t: 2100.5\nflags\t\t: avx2 amx_bf16\n")
    info = cpu_info(str(x86))
    assert info.model == "Test Xeon" and info.mhz == 2100.5 and {"avx2", "amx_bf16"} <= info.flags
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd asimddp\n")
    assert "asimddp" in cpu_info(str(arm)).flags
    assert cpu_info(str(tmp_path / "missing")).flags == frozenset()
