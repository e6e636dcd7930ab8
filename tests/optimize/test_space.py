"""What `edgesmith optimize` searches, per CPU kind (ISA injected), and the export line that remakes a file. No TF."""
import shlex

import pytest
from edgesmith.export.targets import Machine
from edgesmith.optimize import OptimizeConfig, candidates, export_command

from edgesmith.core.durations import parse_budget
from edgesmith.core.errors import ConfigError

VNNI = Machine("x86_64", frozenset({"avx2", "avx512f", "avx512_vnni"}))
AVX2 = Machine("x86_64", frozenset({"avx2", "fma"}))
ARM = Machine("aarch64", frozenset({"asimd", "asimddp"}))


def _labels(machine, **kw):
    return [c.label for c in candidates(OptimizeConfig(**kw), machine)]


@pytest.mark.parametrize("machine, first_form, extra", [(VNNI, "u8s8", "s8s8"), (AVX2, "u8u8", "u8s8_7bit"),
                                                        (ARM, "s8s8", None)])
def test_candidates_follow_the_cpu(machine, first_form, extra):
    cands = candidates(OptimizeConfig(), machine)
    first = cands[0]
    assert first.label == "" and first.config.variants == ("fp32", "fp16", "dynamic", "int8")
    assert [p for p, _ in first.config.onnx_forms(machine)] == [first_form]
    labels = [c.label for c in cands]
    assert labels[1:3] == ["entropy", "percentile"] and labels[-1] == "fallback"
    # with VNNI the exact S8S8 form is measured too; without, the fast U8S8 form with 7-bit weights
    assert labels[3:-1] == ([extra] if extra else [])
    by = {c.label: c.config for c in cands}
    assert by["entropy"].calibration == "entropy" and by["entropy"].formats == ("onnx",)
    assert by["fallback"].fallback == "auto" and by["fallback"].max_accuracy_drop == 0.5


def test_the_space_shrinks_with_the_options():
    assert _labels(VNNI, formats=("tflite",)) == ["", "fallback"]
    assert _labels(VNNI, calibrations=("entropy",), forms=False, fallback=False) == [""]
    assert _labels(VNNI, variants=("fp32", "fp16")) == [""]  # nothing int8: nothing else to try
    assert candidates(OptimizeConfig(formats=("tflite",)), VNNI)[0].config.variants == ("fp32", "fp16", "dynamic",
                                                                                           "int8")
    assert candidates(OptimizeConfig(formats=("onnx",)), VNNI)[0].config.variants == ("fp32", "dynamic", "int8")


@pytest.mark.parametrize("kw, message", [
    ({"calibrations": ("kl",)}, "calibration"), ({"targets": ("riscv",)}, "target"),
    ({"accuracy_budget": -1}, "^accuracy_budget must be >= 0"), ({"budget_s": 0}, "^budget_s must"),
    ({"formats": ("tflite",), "variants": ("int8-tflite",)}, "int8-tflite")])
def test_bad_configs_are_refused(kw, message):
    with pytest.raises(ConfigError, match=message):
        OptimizeConfig(**kw)


def test_export_command_remakes_each_kind_of_file():
    by = {c.label: c for c in candidates(OptimizeConfig(calibration_size=128), AVX2)}
    onnx = {"format": "onnx", "variant": "int8", "targets": ["x86-avx2"], "float_layers": []}
    cmd = shlex.split(export_command("runs/my run", onnx, by["entropy"]))
    assert cmd[:3] == ["edgesmith", "export", "runs/my run"]
    assert " ".join(cmd[3:]) == ("--formats onnx --variants int8 --target x86-avx2 --calibration entropy "
                                 "--calibration-size 128")
    assert "--onnx-preset u8s8-7bit" in export_command("r", onnx, by["u8s8_7bit"])
    tfl = {"format": "tflite", "variant": "int8", "targets": ["x86-avx2"], "float_layers": ["conv2d_1", "dense"]}
    cmd = export_command("r", tfl, by["fallback"])
    assert cmd.endswith("--float-layers conv2d_1,dense") and "--fallback" not in cmd  # exact, no search
    assert "--calibration " not in cmd  # TFLite has no calibration method to repeat
    assert export_command("r", {"format": "tflite", "variant": "fp16"}, by[""]).endswith("--variants fp16 "
                                                                                         "--calibration-size 128")


def test_budget_durations():
    assert parse_budget("1h30m") == 5400 and parse_budget("90s") == 90
    with pytest.raises(ConfigError):
        parse_budget("soon")
