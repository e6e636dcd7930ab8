"""Exported files describe themselves: labels + input spec inside the .tflite / .onnx file."""
import json
import shutil

import numpy as np
import pytest

from edgesmith.core.data import synthetic_split
from edgesmith.core.errors import ConfigError
from edgesmith.export.embed import embed_metadata
from edgesmith.runtime import load
from edgesmith.runtime.modelmeta import SCHEMA, read_tflite_metadata

FILES = ["model_fp32.tflite", "model_int8.tflite", "model_fp32.onnx", "model_int8.onnx"]
LABELS = [f"class{i}" for i in range(10)]


@pytest.mark.parametrize("name", ["model_fp32.tflite", "model_int8.tflite"])
def test_exported_tflite_files_embed_labels_and_input_spec(trained_run, name):
    doc = read_tflite_metadata(trained_run.artifacts / name)
    assert doc["schema"] == SCHEMA and doc["labels"] == LABELS
    assert doc["input"] == {"height": 32, "width": 32, "channels": 3, "color": "RGB", "dtype": "uint8",
                            "value_range": [0, 255], "layout": "NHWC",
                            "tensor_dtype": "uint8" if "int8" in name else "float32", "resize": "squash"}
    assert doc["output"] == {"kind": "probabilities", "num_classes": 10}


@pytest.mark.parametrize("name", ["model_fp32.onnx", "model_int8.onnx"])
def test_exported_onnx_files_keep_the_old_keys_and_add_the_input_spec(trained_run, name):
    import onnx

    props = {p.key: p.value for p in onnx.load(str(trained_run.artifacts / name)).metadata_props}
    assert json.loads(props["edgesmith.labels"]) == LABELS
    assert props["edgesmith.layout"] == "NHWC" and json.loads(props["edgesmith.value_range"]) == [0, 255]
    assert json.loads(props["edgesmith.input"])["height"] == 32 and props["edgesmith.schema"] == SCHEMA


@pytest.mark.parametrize("name", FILES)
def test_the_model_file_alone_is_enough(trained_run, tmp_path, name):
    x = synthetic_split("test", 20).images
    alone = tmp_path / name  # no manifest beside it
    shutil.copy(trained_run.artifacts / name, alone)
    runner = load(alone, threads=1)
    assert runner.labels == tuple(LABELS) and runner.metadata["labels"] == LABELS
    assert runner.input_spec.shape == (32, 32, 3) and runner.input_spec.value_range == (0.0, 255.0)
    np.testing.assert_array_equal(runner.predict(x), load(trained_run.artifacts / name, threads=1).predict(x))


@pytest.mark.parametrize("name", ["model_int8.tflite", "model_fp32.onnx"])
def test_re_embedding_replaces_the_entry_and_leaves_the_model_unchanged(trained_run, tmp_path, name):
    x = synthetic_split("test", 20).images
    path = tmp_path / name
    shutil.copy(trained_run.artifacts / name, path)
    before = load(path, threads=1).predict(x)
    new = [f"n{i}" for i in range(10)]
    embed_metadata(path, labels=new)
    embed_metadata(path, labels=new)
    runner = load(path, threads=1)
    assert runner.labels == tuple(new)
    np.testing.assert_array_equal(runner.predict(x), before)
    if name.endswith(".tflite"):
        from ai_edge_litert import schema_py_generated as schema

        model = schema.Model.GetRootAs(path.read_bytes(), 0)
        names = [model.Metadata(i).Name() for i in range(model.MetadataLength())]
        assert names.count(b"edgesmith") == 1


def test_labels_fall_back_to_the_run_manifest_for_files_without_metadata(trained_run, tmp_path):
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    model = fbu.read_model_from_bytearray(bytearray((trained_run.artifacts / "model_int8.tflite").read_bytes()))
    model.metadata = [m for m in model.metadata if m.name not in ("edgesmith", b"edgesmith")]
    (tmp_path / "artifacts").mkdir()
    bare = tmp_path / "artifacts" / "old.tflite"
    bare.write_bytes(bytes(fbu.convert_object_to_bytearray(model)))
    assert read_tflite_metadata(bare) is None and schema.Model.ModelBufferHasIdentifier(bare.read_bytes(), 0)
    assert load(bare).labels is None
    shutil.copy(trained_run.root / "manifest.json", tmp_path / "manifest.json")
    assert load(bare).labels == tuple(LABELS)


def test_unknown_suffix_is_a_config_error(tmp_path):
    (tmp_path / "m.pb").write_bytes(b"x")
    with pytest.raises(ConfigError, match="cannot embed"):
        embed_metadata(tmp_path / "m.pb", labels=LABELS)


def test_onnx_converters_stamp_the_whole_document_themselves(trained_run, tmp_path):
    import onnx

    from edgesmith.export.onnx import quantize_onnx_dynamic

    new = [f"n{i}" for i in range(10)]
    out = quantize_onnx_dynamic(trained_run.artifacts / "model_fp32.onnx", tmp_path / "d.onnx", labels=new)
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}  # no embed_metadata call
    assert json.loads(props["edgesmith.labels"]) == new and props["edgesmith.schema"] == SCHEMA
    assert json.loads(props["edgesmith.input"])["tensor_dtype"] == "float32"
    assert load(out, threads=1).labels == tuple(new)
