import threading

import numpy as np
import pytest

from edgesmith.core.data import synthetic_split
from edgesmith.core.errors import BackendUnavailable, ConfigError, DataError, EdgesmithError
from edgesmith.runtime import load
from edgesmith.runtime.onnxrt import select_providers

FILES = ["model_fp32.tflite", "model_int8.tflite", "model_fp32.onnx", "model_int8.onnx"]


@pytest.fixture(scope="module")
def images():
    return synthetic_split("test", 300).images


@pytest.mark.parametrize("name", FILES)
def test_predict_returns_probabilities_for_any_batch_size(tiny_run, images, name):
    runner = load(tiny_run.artifacts / name, threads=1)
    assert runner.input_spec.shape == (32, 32, 3)
    assert runner.labels[0] == "class0" and runner.device_kind == "cpu"
    full = runner.predict(images)
    assert full.shape == (300, 10) and full.dtype == np.float32
    np.testing.assert_allclose(full.sum(1), 1, atol=0.02)
    np.testing.assert_allclose(runner.predict(images[:7]), full[:7], atol=1e-5)
    np.testing.assert_allclose(runner.predict(images[3]), full[3:4], atol=1e-5)  # one (H, W, C) image


@pytest.mark.parametrize("name", FILES)
def test_one_runner_shared_by_8_threads_matches_sequential_calls(tiny_run, images, name):
    runner = load(tiny_run.artifacts / name, threads=1)
    batches = [images[i * 30:(i + 1) * 30 + i] for i in range(8)]  # different sizes, too
    expected = [runner.predict(b) for b in batches]
    got = [None] * 8

    def work(i):
        for _ in range(5):
            got[i] = runner.predict(batches[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(e, g)


def test_bad_inputs_are_clear_errors(tiny_run, images):
    runner = load(tiny_run.artifacts / "model_int8.tflite")
    with pytest.raises(DataError, match="uint8"):
        runner.predict(images.astype(np.float32))
    with pytest.raises(DataError, match=r"\(N, 32, 32, 3\)"):
        runner.predict(images[:, :16])
    with pytest.raises(ConfigError, match="unknown model format"):
        load(tiny_run.model)
    with pytest.raises(ConfigError, match="unknown device"):
        load(tiny_run.artifacts / "model_int8.tflite", device="tpu")
    with pytest.raises(EdgesmithError, match="does not exist"):
        load(tiny_run.artifacts / "missing.onnx")


@pytest.mark.parametrize("name", ["bad.tflite", "bad.onnx"])
def test_corrupt_model_file_is_an_edgesmith_error(tmp_path, name):
    (tmp_path / name).write_bytes(b"\x00garbage" * 10)
    with pytest.raises(EdgesmithError, match="not a"):
        load(tmp_path / name)


def test_gpu_device_on_a_tflite_file_says_what_is_missing(tiny_run):
    with pytest.raises(BackendUnavailable, match="GPU delegate"):
        load(tiny_run.artifacts / "model_fp32.tflite", device="gpu")


@pytest.mark.onnx
def test_gpu_device_without_a_gpu_says_what_is_missing(tiny_run):
    import onnxruntime as ort

    if set(ort.get_available_providers()) & {"CUDAExecutionProvider", "TensorrtExecutionProvider"}:
        pytest.skip("this machine has a GPU execution provider")
    with pytest.raises(BackendUnavailable, match="onnxruntime-gpu"):
        load(tiny_run.artifacts / "model_fp32.onnx", device="gpu")
    auto = load(tiny_run.artifacts / "model_fp32.onnx", device="auto")
    assert auto.device_kind == "cpu" and "no CUDA/TensorRT" in auto.device_reason


@pytest.mark.parametrize("device, available, expected", [
    ("auto", ["CPUExecutionProvider"], ["CPUExecutionProvider"]),
    ("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"]),
    ("gpu", ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
     ["TensorrtExecutionProvider", "CUDAExecutionProvider"]),
    ("cpu", ["CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]),
])
def test_execution_provider_selection(device, available, expected):
    assert select_providers(device, available) == expected


def test_explicit_execution_providers_override_the_device():
    both = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    # pin CUDA although TensorRT would come first; CPU stays as the per-operator fallback
    assert select_providers("gpu", both, ["CUDAExecutionProvider"]) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert select_providers("auto", both, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    with pytest.raises(BackendUnavailable, match="CUDAExecutionProvider is not available"):
        select_providers("auto", ["CPUExecutionProvider"], ["CUDAExecutionProvider"])


def test_execution_providers_apply_to_onnx_files_only(tiny_run):
    with pytest.raises(ConfigError, match=".onnx files only"):
        load(tiny_run.artifacts / "model_int8.tflite", providers=["CPUExecutionProvider"])


@pytest.mark.onnx
def test_load_with_providers(tiny_run):
    r = load(tiny_run.artifacts / "model_int8.onnx", providers=["CPUExecutionProvider"])
    assert r.providers == ("CPUExecutionProvider",) and "requested" in r.device_reason
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(BackendUnavailable, match="CUDAExecutionProvider"):
            load(tiny_run.artifacts / "model_int8.onnx", providers=["CUDAExecutionProvider"])
