"""The import stage: turn a Keras model trained elsewhere into an edgesmith run.

:func:`import_model` reads a ``.keras`` file, a legacy ``.h5`` file or a SavedModel
directory **without executing code from it** (see :mod:`.safety` for what is
checked), takes out the layers that act only in training (augmentation, dropout, noise: see
:mod:`.training_only`; the ``import`` record lists them), wraps it so it takes raw pixels
like edgesmith's own models, measures its test top-1 and writes a run directory + manifest (an ``import`` stage record where ``train``
writes a ``train`` one), so ``export``, ``bench`` and the runtime work unchanged.

Keras 3 files (``.keras`` / ``.h5`` written by Keras 3) are loaded by Keras 3 in a child
process and exported as a SavedModel there (:mod:`.keras3`); this process takes the
SavedModel route, so Keras 3 is never imported beside tf_keras.

The wrapper, built from stock tf_keras layers only (input ``(N, H, W, C)`` float32
pixels 0-255, the data's image size)::

    images -> [Resizing, bilinear] -> [preprocessing] -> foreign model -> [Softmax]

* Resizing: only when the model's input size differs from the data's; bilinear
  interpolation with half-pixel centres, no antialiasing (``tf.image.resize``,
  which TFLite runs as RESIZE_BILINEAR and ONNX as Resize linear).
* Preprocessing (``PREPROCESS``): ``none`` (the model expects 0-255 pixels),
  ``scale01`` (x / 255), ``minus1to1`` (x / 127.5 - 1, MobileNet / Inception
  style), ``imagenet`` (x / 255, minus mean (0.485, 0.456, 0.406), divided by
  std (0.229, 0.224, 0.225) per RGB channel, the torchvision / Keras ``mode="torch"``
  convention; caffe-style BGR mean subtraction is not offered).
* Softmax: appended when the model outputs logits; ``outputs="auto"`` decides from the
  model's outputs on test images (probabilities = every row non-negative and summing
  to 1 within 1e-3; anything else is treated as logits).
"""
from __future__ import annotations

import contextlib
import json
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from edgesmith.core.data import NAMED_SOURCES, DataSpec, Split, common_size, load_split
from edgesmith.core.datareport import write_data_report
from edgesmith.core.errors import ConfigError, DataError
from edgesmith.core.fsutil import atomic_path, sha256_file, write_json
from edgesmith.core.rundir import RunDir
from edgesmith.core.runlock import run_lock
from edgesmith.core.stages import ImportStage, create_run_manifest, model_record

from .keras3 import KINDS as KERAS3_KINDS
from .keras3 import keras3_to_savedmodel
from .safety import ModelFileError, ModelInfo, UnsafeModelError, inspect_model_file
from .training_only import (
    InferenceFormError,
    check_deterministic,
    check_same_at_inference,
    inference_form,
    removed_layers_note,
)

__all__ = ["import_model", "ImportConfig", "PREPROCESS", "OUTPUTS", "ModelFileError", "UnsafeModelError",
           "ModelMismatchError", "read_labels", "import_summary"]

PREPROCESS = ("none", "scale01", "minus1to1", "imagenet")
OUTPUTS = ("auto", "logits", "probabilities")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# how each kind of file became the run's tf_keras model (manifest["model"]["source"]["route"])
_ROUTES = {"raw_savedmodel": "SavedModel serving signature (edgesmith>SavedModelLayer)",
           "keras3": "Keras 3 child process: load_model + model.export -> SavedModel serving signature",
           "keras3_h5": "Keras 3 child process: load_model + model.export -> SavedModel serving signature"}


class ModelMismatchError(DataError):
    """The model does not fit the data: channels, class count or labels disagree."""


@dataclass(frozen=True)
class ImportConfig:
    """How to bring a foreign model in (recorded in ``RUN/config.json``).

    Attributes:
        preprocess: one of :data:`PREPROCESS`: what the model expects its pixels to be.
        outputs: one of :data:`OUTPUTS`: ``logits`` appends a softmax, ``probabilities``
            keeps the outputs, ``auto`` decides from the outputs on test images.
        trust_model_code: allow ``Lambda`` layers (Python bytecode in the file, run on load).
    """

    preprocess: str = "none"
    outputs: str = "auto"
    trust_model_code: bool = False

    def __post_init__(self):
        if self.preprocess not in PREPROCESS:
            raise ConfigError(f"unknown preprocess {self.preprocess!r}; choose {', '.join(PREPROCESS)}",
                              field="ImportConfig.preprocess")
        if self.outputs not in OUTPUTS:
            raise ConfigError(f"unknown outputs {self.outputs!r}; choose {', '.join(OUTPUTS)}",
                              field="ImportConfig.outputs")


def read_labels(path: str | Path) -> list[str]:
    """Class names from a text file, one per line (blank lines ignored), index = class id.

    Raises:
        DataError: the file cannot be read, is empty or repeats a name.
    """
    try:
        names = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read labels file {path}: {e}") from None
    if not names:
        raise DataError(f"labels file {path} holds no class names")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"labels file {path} repeats class name(s) {dup}")
    return names


def _load(path: Path, kind: str, trusted: bool):
    """tf_keras model from a checked file (see :func:`.safety.inspect_model_file`)."""
    from edgesmith.tfshim import keras

    try:
        if kind == "keras":
            return keras.models.load_model(path, compile=False, safe_mode=not trusted)
        return keras.models.load_model(path, compile=False)
    except Exception as e:  # a foreign file can fail in any layer of Keras/TF/h5py
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelFileError(f"cannot load {path} as a tf_keras model ({type(e).__name__}: {first[:300]})") from None


def _model_io(model, path: Path) -> tuple[tuple, int]:
    """``((H, W, C), K)`` of a single-input image classifier; H/W may be None."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelMismatchError(f"{path}: expected one image input and one class output, got "
                                 f"{len(model.inputs)} input(s) and {len(model.outputs)} output(s)")
    ishape, oshape = tuple(model.inputs[0].shape), tuple(model.outputs[0].shape)
    if len(ishape) != 4:
        raise ModelMismatchError(f"{path}: input shape {ishape} is not (N, H, W, C) images")
    if len(oshape) != 2 or oshape[1] is None:
        raise ModelMismatchError(f"{path}: output shape {oshape} is not (N, num_classes)")
    return ishape[1:], int(oshape[1])


def _preprocess_layers(name: str) -> list:
    from edgesmith.tfshim import keras

    L = keras.layers
    if name == "scale01":
        return [L.Rescaling(1.0 / 255, name="preprocess_scale01")]
    if name == "minus1to1":
        return [L.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess_minus1to1")]
    if name == "imagenet":  # on raw pixels: (x - 255 mean) / (255 std), one affine op per channel
        # a Rescaling, not a Normalization: tf2onnx makes Normalization's mean and variance graph inputs
        return [L.Rescaling([1 / (255 * s) for s in IMAGENET_STD],
                            [-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)], name="preprocess_imagenet")]
    return []


def _is_probabilities(out: np.ndarray) -> bool:
    return bool(out.min() >= -1e-4 and np.allclose(out.sum(1), 1.0, atol=1e-3))


def _sha256_tree(root: Path) -> str:
    """sha256 over ``relative/path\\0<sha256 of file>\\n`` of every file, sorted (a SavedModel dir)."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(root).as_posix()}\0{sha256_file(f)}\n".encode())
    return h.hexdigest()


def _predict(model, images: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(images.astype(np.float32), batch_size=256, verbose=0), dtype=np.float32)


@contextlib.contextmanager
def _open(src: Path, info: ModelInfo, trust_model_code: bool):
    """``(model, removed)``: the foreign tf_keras model of a checked file at inference, and the
    training-only layers taken out of it (:mod:`.training_only`).

    Raw SavedModels and Keras 3 files take the serving-signature route (Keras 3 files exported
    to a temporary SavedModel by a Keras 3 child process that takes those layers out, removed
    on exit; the run's ``model.keras`` keeps a copy); a raw SavedModel's graph is used as it is,
    once it gives the same outputs twice for the same images.
    """
    from .savedmodel import savedmodel_as_keras

    if info.kind == "raw_savedmodel":
        model = savedmodel_as_keras(src)
        try:
            check_deterministic(model)
        except InferenceFormError as e:
            raise ModelFileError(f"{src}: {e}") from None
        yield model, []
    elif info.kind in KERAS3_KINDS:
        with tempfile.TemporaryDirectory(prefix="edgesmith-keras3-") as tmp:
            saved, removed = keras3_to_savedmodel(src, Path(tmp) / "saved_model", trust_model_code=trust_model_code)
            yield savedmodel_as_keras(saved), removed
    else:
        yield _at_inference(_load(src, info.kind, trust_model_code), src)


def _at_inference(model, src: Path):
    """``(model, removed)``: a tf_keras model without its training-only layers, checked against
    the model called with ``training=False``."""
    from edgesmith.tfshim import keras

    rebuilt, removed = inference_form(keras, model, keras3=False)
    if rebuilt is not model:
        try:
            check_same_at_inference(model, rebuilt)
        except InferenceFormError as e:
            raise ModelFileError(f"{src}: {e}") from None
    return rebuilt, removed


def import_summary(path: str | Path, run: RunDir) -> str:
    """What ``edgesmith`` prints after an import: where the run is, its test top-1, and the
    training-only layers taken out (from the run's ``import`` stage record)."""
    m = json.loads(run.metrics.read_text())
    removed = (json.loads(run.manifest.read_text()).get("stages", {}).get("import") or {}).get("removed_layers") or []
    note = removed_layers_note(removed)
    return (f"imported {path} -> {run.root}: test top-1 {m['top1']:.2%} on {m['n_test']} images"
            + (f"\n{note}" if note else ""))


def _class_order(src: Path, k: int, names: list[str], labels: list[str] | None,
                 labels_file) -> tuple[list[str], list[int] | None]:
    """``(class names, order)``: ``order[i]`` is the model output of dataset class ``i`` (``None``: same order)."""
    if labels is None:
        return names, None
    if len(labels) != k:
        raise ModelMismatchError(f"labels file {labels_file} names {len(labels)} classes but {src} predicts {k}")
    if sorted(labels) == sorted(names) and labels != names:
        return names, [labels.index(n) for n in names]  # model output j -> dataset class
    return labels, None  # same or different names: matched to the data's classes by index


def _check_fit(src: Path, data: DataSpec, test: Split, channels: int | None, k: int) -> None:
    c, names = test.image_shape[2], list(test.class_names)
    if channels is not None and channels != c:
        raise ModelMismatchError(f"{src} takes {channels}-channel images but {data.source} has {c}-channel images")
    if k != len(names):
        raise ModelMismatchError(f"{src} predicts {k} classes but {data.source} has {len(names)} "
                                 f"({', '.join(names[:12])}{', ...' if len(names) > 12 else ''})")


def _sized(data: DataSpec, model_hw: tuple, src: Path) -> DataSpec:
    """``data`` with ``image_size`` the model's input ``(H, W)`` when a folder's images differ in size and
    none was given (said on stderr); else ``data`` as it is.

    Raises:
        DataError: the images differ in size and the model takes any size (give ``image_size``).
    """
    if data.image_size is not None or data.source in NAMED_SOURCES or common_size(data) is not None:
        return data
    if None in model_hw:
        raise DataError(f"images in {data.source} differ in size and {src} takes any size: give image_size",
                        field="DataSpec.image_size")
    import sys

    print(f"images in {data.source} differ in size: decoding them to {model_hw[0]}x{model_hw[1]}, the input "
          f"size of {src.name}, by --resize {data.resize} (--image-size to choose)", file=sys.stderr)
    return replace(data, image_size=tuple(model_hw))


def _wrap(foreign, src: Path, image_shape: tuple, resize, config: ImportConfig, *, order, images: np.ndarray):
    """``(model, outputs kind)``: raw pixels -> [resize] -> [preprocessing] -> foreign -> [softmax] -> [reorder]."""
    from edgesmith.tfshim import keras

    L = keras.layers
    inp = keras.Input(shape=image_shape, name="images")
    x = inp
    if resize:
        x = L.Resizing(resize[0], resize[1], interpolation="bilinear", name="resize")(x)
    for layer in _preprocess_layers(config.preprocess):
        x = layer(x)
    body = keras.Model(inp, foreign(x), name="imported_body")
    kind = config.outputs if config.outputs != "auto" else (
        "probabilities" if _is_probabilities(_predict(body, images[:256])) else "logits")
    y = body.output
    if kind == "logits":
        y = L.Softmax(name="probs")(y)
    if order is not None:  # a 0/1 permutation matrix: exact in float and in int8 (weight 1 -> 127 * 1/127)
        k = len(order)
        perm = L.Dense(k, use_bias=False, name="reorder_classes")
        y = perm(y)
        perm.set_weights([np.eye(k, dtype=np.float32)[:, order]])  # out[i] = in[order[i]]
    return keras.Model(inp, y, name=f"imported_{src.stem}"[:60]), kind


def _measure(model, src: Path, kind: str, test: Split) -> dict:
    """Test top-1 of the wrapped model (the metrics the import stage records)."""
    started = time.perf_counter()
    probs = _predict(model, test.images)
    if not _is_probabilities(probs):
        raise ModelMismatchError(f"{src}: its output rows are not probabilities even after outputs {kind} "
                                 f"(they must be non-negative and sum to 1); try outputs logits",
                                 field="ImportConfig.outputs")
    return {"top1": float((probs.argmax(1) == test.labels).mean()), "n_test": len(test),
            "eval_seconds": round(time.perf_counter() - started, 2),
            "source": "imported model, measured by edgesmith on the test split"}


def _source_record(src: Path, info: ModelInfo, model_input: tuple, k: int, resize, *, config: ImportConfig,
                   kind: str, labels_file, order) -> dict:
    """What the run's model was made from (``manifest["model"]["source"]``)."""
    mh, mw, mc = model_input
    return {"path": str(src.resolve()), "format": info.kind, "keras_version": info.keras_version,
            "sha256": _sha256_tree(src) if src.is_dir() else sha256_file(src),
            "bytes": None if src.is_dir() else src.stat().st_size,
            "input_shape": [None, mh, mw, mc], "num_classes": k, "preprocess": config.preprocess,
            "resize": None if resize is None else {"to": list(resize), "interpolation": "bilinear",
                                                   "half_pixel_centers": True, "antialias": False},
            "outputs": kind, "outputs_option": config.outputs, "trusted_code": info.code_layers,
            "route": _ROUTES.get(info.kind, "tf_keras load_model"),
            "labels_from": str(labels_file) if labels_file is not None else "dataset class folders",
            "labels_reordered": order is not None}


def _write_run(out: Path, model, data: DataSpec, *, python_code: bool, run_config: dict, metrics: dict, dataset: dict,
               architecture: str, source: dict, image_shape: tuple, k: int, removed: list[dict]) -> RunDir:
    """Build the run in a temporary sibling of ``out`` and rename it into place when complete."""
    with run_lock(out, what="import", missing_ok=True), atomic_path(out) as tmp:  # waits for a writer of a run it replaces
        tmp.mkdir(parents=True)
        run = RunDir(tmp)
        _save(model, run.model, code=python_code)
        write_json(run.config, run_config)
        write_json(run.metrics, metrics)
        write_data_report(data, tmp)  # used and skipped files, the split: RUN/data_report.md, split.json
        record = model_record(run.model, run.model.name, format="h5" if python_code else "keras",
                              architecture=architecture,
                              params=model.count_params(), image_shape=image_shape, num_classes=k, source=source)
        create_run_manifest(run, out.name, dataset=dataset, model=record,
                            record=ImportStage(config=run_config, metrics=metrics, imported_from=source["path"],
                                               removed_layers=removed))
    return RunDir(out)


def import_model(model_file: str | Path, *, data: DataSpec, out: str | Path, labels_file: str | Path | None = None,
                 preprocess: str = "none", outputs: str = "auto", trust_model_code: bool = False,
                 overwrite: bool = False) -> RunDir:
    """Bring a Keras model trained elsewhere into a new run directory at ``out``.

    Checks the file without running code from it, loads it with tf_keras (safe mode for
    ``.keras``), takes out the layers that act only in training (:mod:`.training_only`, listed
    in the record's ``removed_layers``), wraps it (resize, preprocessing, softmax: see the module docstring) so it
    takes ``(N, H, W, C)`` float32 pixels 0-255 at the data's image size, measures test
    top-1 on ``data``'s test split and writes ``RUN/{model.keras, config.json,
    metrics.json, manifest.json}`` (built in a temporary sibling, renamed when complete).
    The manifest records an ``import`` stage (:class:`edgesmith.core.stages.ImportStage`).

    Example::

        run = import_model("mobilenet.h5", data=DataSpec("cifar10"), out="runs/mine", preprocess="minus1to1")

    Args:
        model_file: ``.keras`` or legacy ``.h5`` file (written by tf_keras / Keras 2, or by
            Keras 3: loaded by Keras 3 in a child process and taken through a SavedModel, see
            :mod:`.keras3`), or a SavedModel directory written by tf_keras ``model.save`` or
            Keras 3 ``model.export``.
        data: the dataset the model classifies; its test split gives top-1, its classes
            the labels unless ``labels_file`` is given.
            A folder of images of mixed sizes without ``image_size`` is decoded to the model's
            input size. ``RUN/data_report.{json,md}`` and ``RUN/split.json`` record the files used,
            skipped and the split.
        out: run directory to create.
        labels_file: class names, one per line, in the model's output order. Names that are
            the dataset's classes in another order are re-ordered to the dataset's order.
        preprocess: :data:`PREPROCESS`; outputs: :data:`OUTPUTS`.
        trust_model_code: accept ``Lambda`` layers (their Python bytecode runs on load,
            here and in every later ``export``).
        overwrite: replace ``out`` if it exists.

    Returns:
        The new :class:`RunDir`; ``metrics.json`` holds the wrapped model's test ``top1``.

    Raises:
        ConfigError: bad option, or ``out`` exists without ``overwrite``.
        ModelFileError: missing, corrupt, truncated or unsupported model file, Keras 3 (needed
            for a Keras 3 file) missing or unable to load it, or a SavedModel whose serving
            signature is random (augmentation traced in training mode).
        UnsafeModelError: ``Lambda`` layers without ``trust_model_code``, or custom objects.
        ModelMismatchError: channels, class count or labels disagree with the data.
        DataError: the dataset cannot be loaded.
    """
    config = ImportConfig(preprocess, outputs, trust_model_code)
    src, out = Path(model_file), Path(out)
    if out.exists() and not overwrite:
        raise ConfigError(f"run directory {out} already exists (choose another out or pass overwrite=True)",
                          field="import_model.out")
    info = inspect_model_file(src, trust_model_code=trust_model_code)  # raises before anything is loaded
    labels = read_labels(labels_file) if labels_file is not None else None
    with _open(src, info, trust_model_code) as (foreign, removed):
        (mh, mw, mc), k = _model_io(foreign, src)
        data = _sized(data, (mh, mw), src)
        test = load_split(data, "test")
        _check_fit(src, data, test, mc, k)
        names, order = _class_order(src, k, list(test.class_names), labels, labels_file)
        h, w, c = test.image_shape
        resize = (mh, mw) if (mh, mw) != (h, w) and mh is not None and mw is not None else None
        model, kind = _wrap(foreign, src, (h, w, c), resize, config, order=order, images=test.images)
        metrics = _measure(model, src, kind, test)
        source = _source_record(src, info, (mh, mw, mc), k, resize, config=config, kind=kind, labels_file=labels_file,
                                order=order)
        run_config = {"import": {"model_file": str(src), **asdict(config),
                                 "labels_file": None if labels_file is None else str(labels_file)},
                      "data": data.to_dict()}
        dataset = {**data.to_dict(), "class_names": names, "image_shape": [h, w, c],
                   "n_train": None, "n_val": 0, "n_test": len(test)}
        # trusted Lambda layers are Python in the wrapper; on the SavedModel route they stay graph code
        python_code = bool(info.code_layers) and info.kind not in ("raw_savedmodel", *KERAS3_KINDS)
        return _write_run(out, model, data, python_code=python_code, run_config=run_config, metrics=metrics,
                          dataset=dataset, architecture=f"imported:{src.name}", source=source,
                          image_shape=(h, w, c), k=k, removed=removed)


def _save(model, path: Path, *, code: bool) -> None:
    """Save the wrapper; with trusted Lambda layers as HDF5 under the same name.

    The native ``.keras`` format refuses Python lambdas when loaded in safe mode (as
    ``export`` loads it), so a model the user trusted is stored in the legacy HDF5
    layout, which tf_keras loads (running the lambda's bytecode) whatever the file name.
    """
    try:
        if not code:
            model.save(path)
            return
        h5 = path.with_name(path.name + ".h5")
        model.save(h5, save_format="h5")
        h5.replace(path)
    except Exception as e:  # layers tf_keras revived but cannot serialize again
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelFileError(f"the imported model cannot be saved as a tf_keras file ({type(e).__name__}: "
                             f"{first[:300]}); export it as a SavedModel with a serving signature "
                             "(Keras 3: model.export(DIR)) and import that directory") from None
