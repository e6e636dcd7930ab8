"""Training throughput per precision, input-pipeline throughput, and the fast preset.

Run: ``python tools/perf_training.py --data DATA [--fast OUT] [--ceiling OUT]`` (needs the
``[train]`` extra; DATA is a class-folder dataset, ``cifar10`` or ``synthetic``).

* model training img/s for ResNet-8 under fp32, bf16 and auto (one ``fit`` epoch on
  ``--images`` training images after a warm-up epoch; includes the input pipeline, which
  is far faster, see below);
* input pipeline img/s: iterating the augmented, batched tf.data pipeline alone;
* ``--ceiling OUT``: one long run (``--ceiling-epochs``, default 40) of ResNet-8 (or
  ``--ceiling-model``) that also
  scores the whole test split after every epoch (reporting only: nothing is selected on
  it), writes ``OUT/test_curve.csv`` and prints the ceiling (best test top-1), and the
  epoch and training minutes at which the run first came within 1 point of it. One-cycle
  anneals only at the end, so a shorter schedule gets there sooner: the figure is an upper
  bound on the time to within 1 point;
* ``--fast OUT``: trains the fast preset (``edgesmith train --preset fast``) on the full
  dataset into OUT, exports int8 TFLite (256 calibration images), and prints float and
  int8 top-1 on the whole test split plus the training minutes.

Figures depend on what else the machine runs at the time; the script prints them, it does
not assert them. A research script of the project (``make bench``), not part of the installed
package; TensorFlow is imported inside the functions only.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path


def train_throughput(images, labels, precision: str, *, batch_size: int = 128) -> tuple[str, float]:
    """``(policy, img/s)`` of ResNet-8 training steps under ``precision`` (after a warm-up epoch)."""
    from edgesmith.train import build_model
    from edgesmith.tfshim import keras, tf
    from edgesmith.train.input import make_dataset
    from edgesmith.train.precision import resolve_policy
    from edgesmith.train.recipe import compile_model

    policy = resolve_policy(precision, gpus=len(tf.config.list_physical_devices("GPU")))
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build_model("resnet8", images.shape[1:], int(labels.max()) + 1)
        steps = -(-len(images) // batch_size)
        compile_model(model, peak_lr=3e-3, schedule_kind="cosine", steps_per_epoch=steps, epochs=2,
                      weight_decay=0.0, label_smoothing=0.0, policy=policy)
        ds = make_dataset(images, labels, batch_size=batch_size, training=True)
        model.fit(ds, epochs=1, verbose=0)  # warm-up: tracing, oneDNN primitive caches
        t0 = time.perf_counter()
        model.fit(ds, epochs=1, verbose=0)
        return policy, len(images) / (time.perf_counter() - t0)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def fast_preset(data: str, out: Path) -> dict:
    """Train the fast preset into ``out``, export int8 TFLite, return the figures."""
    import json

    import numpy as np

    from edgesmith.core.data import DataSpec, load_dataset
    from edgesmith.export.tflite import to_tflite
    from edgesmith.runtime import load
    from edgesmith.train import train
    from edgesmith.tfshim import keras
    from edgesmith.train.config import preset_config

    config = preset_config("fast", DataSpec(data))  # what `edgesmith train --preset fast` resolves to
    started = time.perf_counter()
    run = train(config, out, overwrite=True)
    wall = time.perf_counter() - started
    metrics = json.loads(run.metrics.read_text())
    train_split, test_split = load_dataset(config.data)
    model = keras.models.load_model(run.model)
    calib = train_split.images[np.random.default_rng(0).permutation(len(train_split))[:256]]
    path = to_tflite(model, out / "fast_int8.tflite", precision="int8", representative=calib)
    runner = load(path)
    preds = np.concatenate([runner.predict(test_split.images[i:i + 500]).argmax(1)
                            for i in range(0, len(test_split), 500)])
    return {"float_top1": metrics["top1"], "int8_top1": float((preds == test_split.labels).mean()),
            "train_minutes": metrics["train_seconds"] / 60, "wall_minutes": wall / 60,
            "train_img_per_s": metrics["train_img_per_s"], "policy": metrics["precision_policy"],
            "epochs": metrics["epochs"]}


def test_curve_callback(images, labels, rows: list):
    """A Keras callback that appends ``(epoch, training s so far, test top-1)`` to ``rows``
    after every epoch; the evaluation itself is not counted as training time.

    Args:
        images / labels: ``(N, H, W, C) uint8`` test pixels and ``(N,)`` classes.
    """
    import numpy as np

    from edgesmith.tfshim import keras

    class TestCurve(keras.callbacks.Callback):  # one instance across a run's fit calls
        def __init__(self):
            super().__init__()
            self.train_s, self.t0 = 0.0, time.perf_counter()

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.train_s += time.perf_counter() - self.t0
            probs = self.model.predict(images, batch_size=500, verbose=0)
            rows.append((epoch + 1, round(self.train_s, 1), float(np.mean(np.argmax(probs, 1) == labels))))
            print(f"epoch {epoch + 1}: {self.train_s / 60:.1f} min training, test top-1 {rows[-1][2]:.2%}", flush=True)

    return TestCurve()


def ceiling(data: str, out: Path, *, epochs: int, precision: str, model: str = "resnet8",
            batch_size: int = 128, optimizer: str = "adam", learning_rate: float | None = None,
            weight_decay: float = 0.0) -> dict:
    """Train ``model`` for ``epochs`` (one-cycle, label smoothing 0.1, the given optimizer;
    ``learning_rate`` None is the optimizer's default), scoring the test split each epoch.

    Returns:
        ``ceiling_top1`` (best test top-1), ``final_top1``, ``within_1pt_epoch`` and
        ``within_1pt_minutes`` (training minutes, evaluation excluded), ``train_minutes``,
        ``img_per_s``, and ``curve`` rows ``(epoch, training s, top-1)``; the curve also goes
        to ``out/test_curve.csv``.
    """
    import csv
    import json

    from edgesmith.core.data import DataSpec, load_split
    from edgesmith.train import train
    from edgesmith.train.config import TrainConfig

    test = load_split(DataSpec(data), "test")
    rows: list = []
    config = TrainConfig(DataSpec(data), model=model, epochs=epochs, precision=precision, val_split=0.0,
                         batch_size=batch_size, optimizer=optimizer, learning_rate=learning_rate,
                         weight_decay=weight_decay)
    run = train(config, out, overwrite=True, callbacks=[test_curve_callback(test.images, test.labels, rows)])
    with open(run.root / "test_curve.csv", "w", newline="") as f:
        csv.writer(f).writerows([("epoch", "train_s", "test_top1"), *rows])
    best = max(r[2] for r in rows)
    first = next(r for r in rows if r[2] >= best - 0.01)
    metrics = json.loads(run.metrics.read_text())
    return {"ceiling_top1": best, "final_top1": rows[-1][2], "within_1pt_epoch": first[0],
            "within_1pt_minutes": first[1] / 60, "train_minutes": rows[-1][1] / 60,
            "img_per_s": metrics["train_img_per_s"], "policy": metrics["precision_policy"], "curve": rows}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="cifar10",
                    help="class-folder dataset (ROOT/{train,test}/<class>/), cifar10 (the default) or synthetic")
    ap.add_argument("--images", type=int, default=5120, help="training images per throughput epoch")
    ap.add_argument("--precisions", default="fp32,bf16,auto")
    ap.add_argument("--fast", type=Path, help="also train the fast preset into this run directory")
    ap.add_argument("--ceiling", type=Path, help="also train the long ResNet-8 ceiling run into this directory")
    ap.add_argument("--ceiling-epochs", type=int, default=40)
    ap.add_argument("--ceiling-model", default="resnet8", help="architecture of the ceiling run (e.g. resnet20)")
    ap.add_argument("--ceiling-batch", type=int, default=128)
    ap.add_argument("--ceiling-precision", default="auto", help="fp32, bf16 or auto for the ceiling run")
    ap.add_argument("--ceiling-optimizer", default="adam", help="adam or sgd for the ceiling run")
    ap.add_argument("--ceiling-lr", type=float, default=None, help="peak learning rate [default: the optimizer's]")
    ap.add_argument("--ceiling-weight-decay", type=float, default=0.0, help="decoupled weight decay")
    ap.add_argument("--skip-throughput", action="store_true", help="skip the per-precision img/s figures")
    args = ap.parse_args(argv)

    from edgesmith.benchmarks.env import environment
    from edgesmith.core.data import DataSpec, load_split
    from edgesmith.train.input import pipeline_throughput

    # minutes and img/s below hold for this machine only
    env = environment()
    print(f"machine: {env['cpu']}, {env['cpu_count']} logical CPUs")
    if not args.skip_throughput:
        split = load_split(DataSpec(args.data, limit_train=args.images), "train")
        print(f"data: {args.data} ({len(split)} training images for throughput), batch 128")
        print(f"input pipeline alone (default augmentation): {pipeline_throughput(split.images, split.labels):,.0f} img/s")
        for precision in args.precisions.split(","):
            policy, ips = train_throughput(split.images, split.labels, precision)
            print(f"ResNet-8 training, --precision {precision:4s} ({policy}): {ips:,.0f} img/s")
    if args.ceiling:
        c = ceiling(args.data, args.ceiling, epochs=args.ceiling_epochs, precision=args.ceiling_precision,
                    model=args.ceiling_model, batch_size=args.ceiling_batch, optimizer=args.ceiling_optimizer,
                    learning_rate=args.ceiling_lr, weight_decay=args.ceiling_weight_decay)
        print(f"ceiling run: {args.ceiling_model}, {args.ceiling_epochs} epochs, {args.ceiling_optimizer} "
              f"(weight decay {args.ceiling_weight_decay:g}), {c['policy']}, {c['img_per_s']:,.0f} img/s, "
              f"{c['train_minutes']:.1f} min training; best test top-1 {c['ceiling_top1']:.2%} "
              f"(final {c['final_top1']:.2%}); first within 1 pt at epoch {c['within_1pt_epoch']} "
              f"after {c['within_1pt_minutes']:.1f} min")
    if args.fast:
        r = fast_preset(args.data, args.fast)
        print(f"fast preset: {r['epochs']} epochs, {r['train_minutes']:.1f} min training "
              f"({r['wall_minutes']:.1f} min wall incl. load + test), {r['train_img_per_s']:,.0f} img/s, "
              f"{r['policy']}; test top-1 float {r['float_top1']:.2%}, int8 TFLite {r['int8_top1']:.2%}")


if __name__ == "__main__":
    main()
