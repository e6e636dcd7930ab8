"""The one decision rule of bench --recommend, optimize and doctor: ties within noise go to the smaller, then the
simpler file, and are said; the file is named by its path. Pure figures, no measuring."""
import pytest

from edgesmith.benchmarks.verdicts import measured_verdict
from edgesmith.benchmarks.recommend import recommend
from edgesmith.benchmarks.stats import paired_drop_ci95_pts, two_proportion_ci95_pts


def _row(name, file, p50, top1, size, precision="int8", parent="onnx_fp32", runtime="ort-cpu", iqr=0.004):
    return {"artifact": name, "file": f"artifacts/{file}", "format": file.rsplit(".", 1)[1], "precision": precision,
            "float_parent": parent, "runtime": runtime, "threads": 1, "batch": 1, "top1": top1, "n_test": 1000,
            "bytes": size, "latency_ms": {"p50": p50, "p25": p50 - iqr / 2, "p75": p50 + iqr / 2, "n": 400}}


FLOAT = _row("onnx_fp32", "model_fp32.onnx", 0.175, 0.6540, 320_000, precision="fp32", parent=None)


def test_a_tie_within_noise_goes_to_the_simpler_file_and_is_said():
    rows = [FLOAT, _row("onnx_int8_entropy", "model_int8_entropy.onnx", 0.1249, 0.6529, 110_000),
            _row("onnx_int8", "model_int8.onnx", 0.1251, 0.6529, 110_000)]
    rec = recommend(rows, 0.6540, 0.5, run_dir="runs/demo")
    # entropy is 0.0002 ms faster: far inside the noise band, so the simpler name wins
    assert rec.artifact == "onnx_int8" and rec.file == "runs/demo/artifacts/model_int8.onnx"
    assert rec.tie_note == ("model_int8.onnx and model_int8_entropy.onnx tie within noise (0.125 vs 0.125 ms, "
                            "65.29% both); picked the simpler")
    assert [t["artifact"] for t in rec.ties] == ["onnx_int8_entropy"]
    assert rec.sentence.startswith("ship runs/demo/artifacts/model_int8.onnx: int8 runs about 1.4x faster than float")


def test_a_tie_goes_to_the_smaller_file_then_tflite_before_onnx():
    rows = [FLOAT, _row("onnx_int8", "model_int8.onnx", 0.125, 0.6529, 110_000),
            _row("tflite_int8", "model_int8.tflite", 0.126, 0.6525, 95_000, parent="tflite_fp32", runtime="litert-cpu")]
    rec = recommend(rows, 0.6540, 0.5)
    assert rec.artifact == "tflite_int8" and rec.tie_note.endswith("picked the smaller")
    same_size = [rows[1], {**rows[2], "bytes": 110_000}]
    assert recommend(same_size, 0.6540, 0.5).artifact == "tflite_int8"  # then the simpler: TFLite


def test_without_a_tie_the_fastest_within_budget_wins_and_nothing_is_said():
    rows = [FLOAT, _row("onnx_int8", "model_int8.onnx", 0.125, 0.6529, 110_000),
            _row("onnx_int8_s8s8", "model_int8_s8s8.onnx", 0.160, 0.6530, 100_000),  # smaller but clearly slower
            _row("onnx_int8_x86_avx2", "model_int8_x86_avx2.onnx", 0.090, 0.6400, 100_000)]  # 1.4 pt: over budget
    rec = recommend(rows, 0.6540, 0.5)
    assert (rec.artifact, rec.rule, rec.ties, rec.tie_note) == ("onnx_int8", "fastest within budget", [], "")
    assert recommend(rows, 0.6540, 2.0).artifact == "onnx_int8_x86_avx2"
    assert recommend(rows, 0.90, 0.5).rule == "smallest (none within budget)"
    with pytest.raises(ValueError, match="^budget_pts must be >= 0 points"):
        recommend(rows, 0.6540, -1)


def test_accuracy_intervals():
    assert paired_drop_ci95_pts(0, 0, 1000) == 0.0  # two files that agree on every image
    assert paired_drop_ci95_pts(12, 15, 1000) == pytest.approx(1.02, abs=0.01)  # 3 of 1000 flipped net, 27 in all
    assert two_proportion_ci95_pts(0.65, 1000, 0.65, 1000) == pytest.approx(4.18, abs=0.01)
    assert two_proportion_ci95_pts(0.65, 0, 0.65, 1000) == 0.0


def test_doctor_quotes_the_measured_speedup_with_the_file():
    rows = [FLOAT, _row("onnx_int8", "model_int8.onnx", 0.125, 0.6529, 110_000)]
    v = measured_verdict({"results": rows, "reference": {"top1": 0.654, "n_test": 1000},
                          "config": {"n_test": 1000}, "environment": {"cpu": "AMD EPYC"}}, "runs/demo",
                         here_cpu="AMD EPYC")
    assert v["sentence"] == "int8 runs about 1.4x faster than float on this CPU; ship runs/demo/artifacts/model_int8.onnx"
    other = measured_verdict({"results": rows, "environment": {"cpu": "Cortex-A76"}}, here_cpu="AMD EPYC")
    assert "on Cortex-A76" in other["sentence"]
