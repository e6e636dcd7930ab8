"""Make the small model files the TF-free test tier runs on: ``tests/fixtures/models/``.

Trains a tiny CNN (about 4 k parameters) with edgesmith's training recipe on the deterministic
synthetic data (``DataSpec("synthetic", limit_train=1500, limit_test=300)``), writes it as a run
directory and exports it with :func:`edgesmith.export.export`: float32 and full-integer int8
TFLite, float32 and QDQ int8 ONNX, each verified against the Keras model and carrying its
labels and input spec. The four artifacts, the Keras model and ``models.json`` (dataset,
class names, Keras test top-1, the export records) are copied into the fixtures folder, where
``tests/conftest.py`` (fixture ``tiny_run``) builds a run directory from them without
TensorFlow. Together they stay well under 1 MB.

Usage (needs the ``[train]`` extra; rerun after a change to the export formats)::

    python tools/make_test_models.py [--out tests/fixtures/models] [--epochs 6]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from edgesmith.core.data import DataSpec, load_dataset
from edgesmith.core.fsutil import write_json
from edgesmith.core.rundir import RunDir, load_manifest, stage
from edgesmith.core.stages import TrainStage, create_run_manifest, model_record

SPEC = DataSpec("synthetic", limit_train=1500, limit_test=300)
RUN_NAME = "synthetic-tiny"
OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "models"
RECIPE = {"epochs": 6, "batch_size": 64, "learning_rate": 3e-3, "schedule": "onecycle", "optimizer": "adam",
          "label_smoothing": 0.1, "weight_decay": 0.0, "augment": "default", "seed": 0, "precision": "fp32"}


def tiny_cnn(input_shape=(32, 32, 3), num_classes: int = 10):
    """Rescaling -> Conv8 -> AvgPool 4 -> Conv16 -> AvgPool 2 -> Dense: about 4 k parameters.

    Raw ``(N, 32, 32, 3)`` float32 pixels 0-255 in, ``(N, num_classes)`` float32 probabilities
    out, like every edgesmith model; pooling down to 4x4 keeps the synthetic classes' 4x4
    colour patterns apart.
    """
    from edgesmith.tfshim import keras

    layers = keras.layers
    inp = keras.Input(shape=tuple(input_shape), name="images")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inp)
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = layers.AveragePooling2D(4)(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = layers.AveragePooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(num_classes, name="logits")(x)
    out = layers.Activation("softmax", dtype="float32", name="probs")(x)
    return keras.Model(inp, out, name="tiny_cnn")


def train_tiny(run: RunDir, epochs: int) -> dict:
    """Train :func:`tiny_cnn` on :data:`SPEC` and write ``run`` (model.keras + manifest); returns its metrics."""
    from edgesmith.tfshim import keras
    from edgesmith.train.input import make_dataset
    from edgesmith.train.recipe import compile_model

    train, test = load_dataset(SPEC)
    keras.utils.set_random_seed(RECIPE["seed"])
    model = tiny_cnn(train.image_shape, len(train.class_names))
    bs = RECIPE["batch_size"]
    steps = -(-len(train) // bs)
    compile_model(model, peak_lr=RECIPE["learning_rate"], schedule_kind=RECIPE["schedule"], steps_per_epoch=steps,
                  epochs=epochs, weight_decay=RECIPE["weight_decay"], label_smoothing=RECIPE["label_smoothing"],
                  optimizer=RECIPE["optimizer"], policy="float32")
    model.fit(make_dataset(train.images, train.labels, batch_size=bs, training=True, seed=RECIPE["seed"],
                           augment=RECIPE["augment"]), epochs=epochs, verbose=0)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    loss, top1 = model.evaluate(make_dataset(test.images, test.labels, batch_size=256, training=False), verbose=0)
    run.root.mkdir(parents=True)
    model.save(run.model)
    metrics = {"top1": float(top1), "loss": float(loss), "n_test": len(test), "epochs": epochs}
    dataset = {**SPEC.to_dict(), "class_names": list(train.class_names), "image_shape": list(train.image_shape),
               "n_train": len(train), "n_val": 0, "n_test": len(test)}
    create_run_manifest(run, RUN_NAME, dataset=dataset, model=model_record(
        run.model, run.model.name, architecture="tiny_cnn", params=model.count_params(),
        image_shape=train.image_shape, num_classes=len(train.class_names)),
        record=TrainStage(config={**RECIPE, "epochs": epochs, "model": "tiny_cnn", "data": SPEC.to_dict()},
                          precision_policy="float32", metrics=metrics))
    return metrics


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=OUT, help="fixtures folder (replaced as a whole)")
    ap.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    args = ap.parse_args(argv)

    from edgesmith.export import ExportConfig, export

    with tempfile.TemporaryDirectory(prefix="edgesmith-fixtures-") as tmp:
        run = RunDir(Path(tmp) / RUN_NAME)
        metrics = train_tiny(run, args.epochs)
        records = export(run.root, ExportConfig(verify_size=SPEC.limit_test))
        manifest = load_manifest(run)
        args.out.mkdir(parents=True, exist_ok=True)
        for old in args.out.iterdir():
            old.unlink()
        shutil.copy(run.model, args.out / run.model.name)
        for rec in records:
            shutil.copy(run.root / rec["file"], args.out / Path(rec["file"]).name)
        write_json(args.out / "models.json", {
            "made_by": "tools/make_test_models.py", "run": RUN_NAME, "dataset": manifest["dataset"],
            "model": manifest["model"], "train": stage(manifest, "train"), "export": stage(manifest, "export"),
            "artifacts": [{**rec, "file": Path(rec["file"]).name} for rec in records]})
    total = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"Keras top-1 {metrics['top1']:.2%} on {metrics['n_test']} test images")
    for rec in records:
        print(f"  {rec['name']:<12} {rec['bytes'] / 1024:6.1f} KiB  top-1 {rec['fidelity']['top1']:.2%}, "
              f"agreement {rec['fidelity']['top1_agreement']:.1%}")
    print(f"{args.out}: {total / 1024:.1f} KiB in {len(list(args.out.iterdir()))} files")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
