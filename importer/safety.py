"""Look inside a foreign model file before anything loads it: format, Keras version, code.

Nothing here imports or runs code from the file. The architecture is read as JSON
(``config.json`` inside a ``.keras`` zip, the ``model_config`` attribute of an ``.h5``
file, ``keras_metadata.pb`` of a tf_keras SavedModel) and every serialized object in it
is checked:

* ``Lambda`` layers (and ``__lambda__`` objects) carry Python bytecode that tf_keras runs
  when it loads them - silently for ``.h5`` and SavedModel - so they are refused unless
  the caller trusts the file.
* Objects whose class is not a stock tf_keras layer / initializer / regularizer /
  constraint, or whose ``module`` is not ``keras``/``tf_keras``, are custom code: tf_keras
  would ``import`` that module (running its top-level code) to find the class, so they
  are refused too, unless trusted.

Files written by Keras 3 get the same checks (their built-in classes are recognised by
their ``keras.*`` module) and are then loaded by Keras 3 in a child process (:mod:`.keras3`).

A SavedModel additionally holds TensorFlow graphs that run when it is loaded and called
(TF ops, not Python: they can read and write files the process can reach, and TF kernels
have had memory-safety bugs); that risk cannot be removed by inspection, see docs/import.md.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from edgesmith.core.errors import ConfigError, DataError

ZIP_MAGIC, HDF5_MAGIC = b"PK\x03\x04", b"\x89HDF\r\n\x1a\n"
_SPECIAL = {"__tensor__", "__numpy__", "__bytes__", "__typespec__", "__tuple__", "__passive_serialization__"}
_CODE = {"Lambda", "__lambda__"}
_NOT_LOADED = {"training_config", "compile_config"}  # optimizer/loss: ignored by load_model(compile=False)
# our own wrapper layer, in a re-imported run (its module before and after the import stage moved)
_OURS = {"edgesmith.importer.savedmodel", "edgesmith.export.byom_savedmodel"}
# Keras 3 objects that tf_keras has no class for (its layers carry their module, see _keras3_builtins)
_KERAS3_CLASSES = {"DTypePolicy", "FloatDTypePolicy", "QuantizedDTypePolicy", "QuantizedFloat8DTypePolicy",
                   "DTypePolicyMap", "Operation"}


class ModelFileError(DataError):
    """A model file is missing, corrupt, truncated, or in a format edgesmith cannot read."""


class UnsafeModelError(ConfigError):
    """A model file holds code (Lambda layers, custom objects) and the caller did not trust it."""


@dataclass(frozen=True)
class ModelInfo:
    """What :func:`inspect_model_file` found.

    Attributes:
        kind: ``keras`` (tf_keras zip), ``h5``, ``keras3`` / ``keras3_h5`` (written by Keras 3:
            loaded by Keras 3 in a child process, see :mod:`.keras3`), ``savedmodel`` (tf_keras
            SavedModel with Keras metadata) or ``raw_savedmodel`` (no Keras metadata: Keras 3
            ``model.export``, ``tf.saved_model.save``, or custom layers that are only graphs).
        keras_version: as recorded in the file, if any.
        code_layers: names of Lambda layers (only non-empty when trusted).
        custom: descriptions of custom objects (only non-empty when trusted).
    """

    kind: str
    keras_version: str | None = None
    code_layers: tuple[str, ...] = field(default=())
    custom: tuple[str, ...] = field(default=())


def _known_classes() -> frozenset[str]:
    from edgesmith.tfshim import keras

    names = {"Functional", "Sequential", "Model", "TFOpLambda", "SlicingOpLambda", "InputLayer", "Policy",
             "TensorShape", "TypeSpec", "TensorSpec"}  # the last three: shapes in SavedModel metadata
    for mod in (keras.layers, keras.initializers, keras.regularizers, keras.constraints, keras.optimizers,
                keras.losses, keras.metrics):
        names.update(n for n in dir(mod) if n[:1].isupper())
    return frozenset(names)


def _module_ok(module) -> bool:
    return (module is None or module in ("keras", "tf_keras", "builtins") or module in _OURS
            or module.startswith(("keras.", "tf_keras.", "tensorflow.")))


def scan_config(config, known: frozenset[str]) -> tuple[list[str], list[str]]:
    """``(lambda_layers, custom_objects)`` found anywhere in a serialized Keras config."""
    code, custom = [], []

    def walk(node):
        if isinstance(node, dict):
            cls = node.get("class_name")
            if isinstance(cls, str) and (cls in _CODE or not (cls in _SPECIAL or cls.startswith("__"))):
                inner = node.get("config")
                name = inner.get("name") if isinstance(inner, dict) else None
                label = f"'{name}' ({cls})" if name else cls
                module = node.get("module")
                if cls in _CODE:
                    code.append(label)
                elif module in _OURS or node.get("registered_name") == "edgesmith>SavedModelLayer":
                    pass
                elif cls not in known or not _module_ok(module) or (
                        isinstance(node.get("registered_name"), str) and ">" in node["registered_name"]):
                    custom.append(label + (f" from module '{module}'" if module and not _module_ok(module) else ""))
            for key, v in node.items():
                if key not in _NOT_LOADED:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(config)
    return code, custom


def _keras3_builtins(node) -> set[str]:
    """Class names a Keras 3 config files under Keras's own modules and registers under no other name
    (Keras 3 resolves those from its own namespace; a custom class names its module or a package)."""
    found = set()
    if isinstance(node, dict):
        cls, module, reg = node.get("class_name"), node.get("module"), node.get("registered_name")
        if isinstance(cls, str) and isinstance(module, str) and (module == "keras" or module.startswith("keras.")) \
                and reg in (None, cls):
            found.add(cls)
        for v in node.values():
            found |= _keras3_builtins(v)
    elif isinstance(node, list):
        for v in node:
            found |= _keras3_builtins(v)
    return found


def _check(path: Path, config, trusted: bool, *, keras3: bool = False) -> tuple[tuple[str, ...], tuple[str, ...]]:
    known = _known_classes() | (_KERAS3_CLASSES | _keras3_builtins(config) if keras3 else set())
    code, custom = scan_config(config, frozenset(known))
    code, custom = list(dict.fromkeys(code)), list(dict.fromkeys(custom))  # nested configs repeat layers
    if not trusted and code:
        raise UnsafeModelError(f"{path} contains Lambda layer {', '.join(code)}: Python code that would run "
                               "when the model is loaded; refused. Pass trust_model_code=True only if you trust "
                               "whoever made the file", field="ImportConfig.trust_model_code")
    if not trusted and custom:
        raise UnsafeModelError(f"{path} uses custom object {', '.join(custom[:5])}: code edgesmith will not "
                               "import; refused. Pass trust_model_code=True only if you trust whoever made the "
                               "file (a SavedModel runs them as graphs; .keras/.h5 need their Python classes)",
                               field="ImportConfig.trust_model_code")
    return tuple(code), tuple(custom)


def _read_keras_zip(path: Path, trusted: bool) -> ModelInfo:
    try:
        with zipfile.ZipFile(path) as z:
            meta = json.loads(z.read("metadata.json")) if "metadata.json" in z.namelist() else {}
            config = json.loads(z.read("config.json"))
            if z.testzip() is not None:
                raise zipfile.BadZipFile("CRC mismatch")
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError, OSError, EOFError) as e:
        raise ModelFileError(f"{path} is not a readable .keras file (corrupt or truncated: {e})") from None
    version = str(meta.get("keras_version", "")) or None
    keras3 = bool(version and version.split(".")[0] == "3")
    code, custom = _check(path, config, trusted, keras3=keras3)
    return ModelInfo("keras3" if keras3 else "keras", version, code, custom)


def _read_h5(path: Path, trusted: bool) -> ModelInfo:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
            version = f.attrs.get("keras_version")
    except (OSError, ValueError, RuntimeError) as e:
        raise ModelFileError(f"{path} is not a readable .h5 file (corrupt or truncated: {str(e)[:200]})") from None
    version = version.decode() if isinstance(version, bytes) else (str(version) if version is not None else None)
    if raw is None:
        raise ModelFileError(f"{path} holds weights only (no model_config): save the whole model with "
                             "model.save(), not model.save_weights()")
    keras3 = bool(version and version.split(".")[0] == "3")
    try:
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{path}: unreadable model_config ({e})") from None
    code, custom = _check(path, config, trusted, keras3=keras3)
    return ModelInfo("keras3_h5" if keras3 else "h5", version, code, custom)


def _read_savedmodel(path: Path, trusted: bool) -> ModelInfo:
    meta_file = path / "keras_metadata.pb"
    if not meta_file.is_file():
        return ModelInfo("raw_savedmodel")
    from tf_keras.protobuf import saved_metadata_pb2

    meta = saved_metadata_pb2.SavedMetadata()
    try:
        meta.ParseFromString(meta_file.read_bytes())
        nodes = [json.loads(n.metadata) for n in meta.nodes
                 if n.identifier.startswith("_tf_keras_") and n.identifier != "_tf_keras_metric"]
    except Exception as e:  # protobuf DecodeError, bad JSON: a damaged SavedModel
        raise ModelFileError(f"{path}: unreadable keras_metadata.pb (corrupt or truncated: {e})") from None
    version = next((str(n.version.producer) for n in meta.nodes if n.version.producer), None)
    code, custom = _check(path, nodes, trusted)
    # tf_keras revives custom layers of a SavedModel from their graphs, but cannot re-save them:
    # take the graph route (the serving signature) for those.
    return ModelInfo("raw_savedmodel" if custom else "savedmodel", version, code, custom)


def inspect_model_file(path: str | Path, *, trust_model_code: bool = False) -> ModelInfo:
    """Identify and check a model file or SavedModel directory without loading it.

    Raises:
        ModelFileError: missing, corrupt, truncated, weights-only, or not a model.
        UnsafeModelError: Lambda layers or custom objects and ``trust_model_code`` is false.
    """
    path = Path(path)
    if path.is_dir():
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return _read_savedmodel(path, trust_model_code)
        raise ModelFileError(f"{path} is a directory but neither a SavedModel (no saved_model.pb) "
                             "nor an edgesmith run (no manifest.json)")
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(ZIP_MAGIC):
        return _read_keras_zip(path, trust_model_code)
    if head == HDF5_MAGIC:
        return _read_h5(path, trust_model_code)
    raise ModelFileError(f"{path} is neither a .keras (zip) nor an .h5 (HDF5) model file nor a SavedModel "
                         "directory; it may be corrupt or truncated")
