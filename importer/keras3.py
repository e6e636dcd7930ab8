"""Keras 3 model files in: a child process loads them with Keras 3 and writes a SavedModel.

edgesmith runs on tf_keras (Keras 2: TF-MOT needs it), which cannot read a ``.keras`` or
``.h5`` file written by Keras 3. So :func:`keras3_to_savedmodel` starts a child Python
(``python -m edgesmith.importer.keras3``, with ``KERAS_BACKEND=tensorflow``) that imports the
``keras`` 3.x package, loads the file with ``keras.saving.load_model(compile=False,
safe_mode=True)`` (``safe_mode=False`` only when the caller trusts the file), takes out the
layers that act only in training (:mod:`.training_only`: augmentation, dropout, noise) and
writes the rest as a TensorFlow SavedModel whose ``serving_default`` signature calls the model
with ``training=False`` (``keras.export.ExportArchive``). The parent process never imports
Keras 3; it takes the SavedModel route of :mod:`.savedmodel`.

The file is checked before the child starts, by :func:`.safety.inspect_model_file` with the
rules every model file gets: Lambda layers and custom objects are refused unless trusted.

Pruning, clustering and QAT need the model's layers as tf_keras layers, which the SavedModel
route does not give (the model is one graph-calling layer): :func:`require_tf_keras` refuses
them with one line (:data:`NEEDS_TF_KERAS`).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from edgesmith.core.errors import ConfigError

from .safety import ModelFileError

KINDS = ("keras3", "keras3_h5")
REMOVED_TAG = "edgesmith-keras3-removed:"
TIMEOUT_S = 600
NEEDS_TF_KERAS = ("prune, cluster and qat fine-tune the model's layers and need a tf_keras (Keras 2) model; "
                  "this run's model is a SavedModel graph (imported from a Keras 3 file, or a SavedModel without "
                  "Keras metadata), for which float and PTQ int8 exports work")


def require_tf_keras(manifest: dict, config) -> None:
    """Refuse fine-tuning options (``prune``, ``cluster``, ``qat``) on a run whose model is a
    SavedModel graph (imported from a Keras 3 file or a raw SavedModel): they need tf_keras layers.

    Args:
        manifest: the run's ``manifest.json`` content.
        config: the export's ``ExportConfig`` (its ``prune``, ``cluster``, ``qat``).

    Raises:
        ConfigError: one of those options is set on such a run (one line, :data:`NEEDS_TF_KERAS`).
    """
    fmt = ((manifest.get("model") or {}).get("source") or {}).get("format")
    asked = [name for name, on in (("prune", bool(getattr(config, "pruning", False))),
                                   ("cluster", getattr(config, "cluster", None) is not None),
                                   ("qat", bool(getattr(config, "qat", False)))) if on]
    if asked and fmt in (*KINDS, "raw_savedmodel"):
        raise ConfigError(f"{NEEDS_TF_KERAS}; drop {', '.join(asked)}, or import a tf_keras .keras/.h5 file",
                          field=f"ExportConfig.{asked[0]}")


def keras3_to_savedmodel(src: str | Path, dest: str | Path, *,
                         trust_model_code: bool = False) -> tuple[Path, list[dict]]:
    """Load the Keras 3 file ``src`` in a child process and export it as a SavedModel at ``dest``.

    Side effects: runs ``python -m edgesmith.importer.keras3`` (Keras 3 on the TensorFlow
    backend) and writes the SavedModel directory ``dest``. The child takes the training-only
    layers out first (:func:`.training_only.inference_form`, checked against the model called
    with ``training=False``) and exports the rest called with ``training=False``.

    Args:
        src: a ``.keras`` or ``.h5`` file written by Keras 3, already checked by
            :func:`.safety.inspect_model_file`.
        dest: the SavedModel directory to create (must not exist).
        trust_model_code: load with ``safe_mode=False`` (Lambda bytecode runs in the child).

    Returns:
        ``(dest, removed)``: ``removed`` lists the layers taken out, ``{"name", "class", "as"}`` each.

    Raises:
        ModelFileError: Keras 3 is not installed, or it cannot load or export the file
            (one line with the child's reason).
    """
    dest = Path(dest)
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, "-m", "edgesmith.importer.keras3", str(src), str(dest), "1" if trust_model_code else "0"]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
                              check=False)
    except subprocess.TimeoutExpired:
        raise ModelFileError(f"{src}: Keras 3 did not load and export it within {TIMEOUT_S} s") from None
    if done.returncode != 0 or not (dest / "saved_model.pb").is_file():
        lines = [ln for ln in done.stderr.strip().splitlines() if ln.startswith("edgesmith-keras3:")]
        why = lines[-1].split(":", 1)[1].strip() if lines else (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelFileError(f"{src}: Keras 3 could not load it and export a SavedModel ({why[:300]})")
    tagged = [ln for ln in done.stdout.splitlines() if ln.startswith(REMOVED_TAG)]
    return dest, (json.loads(tagged[-1][len(REMOVED_TAG):]) if tagged else [])


def _export_at_inference(keras, model, dest: str) -> None:
    """Write ``model`` as a SavedModel whose ``serving_default`` calls it with ``training=False``
    (``model.export`` traces it with ``training`` unset, which Keras 3's augmentation layers take
    as training)."""
    import tensorflow as tf

    if len(model.inputs) != 1:  # the parent refuses it with its own message
        model.export(dest, verbose=False)
        return
    spec = model.inputs[0]
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", lambda images: model(images, training=False),
                         input_signature=[tf.TensorSpec((None, *spec.shape[1:]), spec.dtype, name="images")])
    archive.write_out(dest, verbose=False)


def _child(src: str, dest: str, trusted: bool) -> int:
    """In the child: load with Keras 3, take out training-only layers, export at inference.

    A failure is one ``edgesmith-keras3: ...`` line on stderr; the layers taken out are one
    ``edgesmith-keras3-removed: <json list>`` line on stdout.
    """
    try:
        import keras
    except ImportError:
        print("edgesmith-keras3: the keras 3.x package is not installed (pip install 'keras>=3')", file=sys.stderr)
        return 2
    if not keras.__version__.startswith("3."):
        print(f"edgesmith-keras3: found keras {keras.__version__}, need 3.x", file=sys.stderr)
        return 2
    from .training_only import check_same_at_inference, inference_form

    try:
        model = keras.saving.load_model(src, compile=False, safe_mode=not trusted)
        rebuilt, removed = inference_form(keras, model, keras3=True)
        if rebuilt is not model:
            check_same_at_inference(model, rebuilt)
        _export_at_inference(keras, rebuilt, dest)
    except Exception as e:  # noqa: BLE001 - a foreign file can fail anywhere in Keras/TF/h5py
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        print(f"edgesmith-keras3: {type(e).__name__}: {first}", file=sys.stderr)
        return 1
    print(f"{REMOVED_TAG} {json.dumps(removed)}")
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1], sys.argv[2], sys.argv[3] == "1"))
