"""The optimisation recipe: learning-rate schedule, optimizer, loss scaling, loss and metrics.

Schedules (``--schedule``), over the steps of one training phase:

``cosine``    linear warm-up for one epoch from lr/10 to the peak, then cosine decay to 0
              (Loshchilov & Hutter, 2017, SGDR, without restarts; Goyal et al., 2017, warm-up).
``onecycle``  warm-up over the first 30% of the steps from lr/25 to the peak, then cosine
              decay to 0 (the learning-rate half of Smith & Topin, 2018, "Super-Convergence").
``constant``  the peak learning rate throughout.

Optimizers (``--optimizer``):

``adam``  Adam (Kingma & Ba, 2015); weight decay > 0 makes it AdamW (decoupled weight decay,
          Loshchilov & Hutter, 2019). Default peak learning rate 3e-3.
``sgd``   SGD with Nesterov momentum 0.9 and decoupled weight decay, the recipe the CIFAR
          ResNets were published with (He et al., 2016). Default peak learning rate
          0.1 per 128 images of batch (Goyal et al., 2017, linear scaling rule).

Decoupled weight decay shrinks each weight by ``lr * weight_decay`` per step, BatchNorm
parameters and biases excluded. Under ``mixed_float16`` the optimizer
is wrapped in a dynamic ``LossScaleOptimizer`` (Micikevicius et al., 2018), so small fp16
gradients do not flush to zero; bf16 has float32's exponent range and needs none.
"""
from __future__ import annotations

from edgesmith.tfshim import keras, tf

from .config import OPTIMIZERS, SCHEDULES, default_learning_rate  # noqa: F401  (re-exported)


def schedule(kind: str, peak_lr: float, steps_per_epoch: int, total_steps: int):
    """A learning-rate schedule (or float) for ``total_steps`` optimizer steps."""
    if kind == "constant":
        return peak_lr
    if kind == "onecycle":
        warmup, start = max(1, int(0.3 * total_steps)), peak_lr / 25
    else:
        warmup, start = min(steps_per_epoch, total_steps // 2), peak_lr / 10
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=start, decay_steps=max(total_steps - warmup, 1),
        warmup_target=peak_lr, warmup_steps=warmup)


def make_optimizer(lr, *, weight_decay: float, policy: str, optimizer: str = "adam"):
    """``adam`` (AdamW when ``weight_decay`` > 0) or ``sgd`` (Nesterov momentum 0.9, decoupled
    weight decay), loss-scaled under ``mixed_float16``.

    Raises:
        ValueError: ``optimizer`` is not one of :data:`OPTIMIZERS`.
    """
    if optimizer == "sgd":
        opt = keras.optimizers.SGD(learning_rate=lr, momentum=0.9, nesterov=True,
                                   weight_decay=weight_decay or None)
    elif optimizer != "adam":
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    elif weight_decay > 0:
        opt = keras.optimizers.AdamW(learning_rate=lr, weight_decay=weight_decay)
    else:
        opt = keras.optimizers.Adam(learning_rate=lr)
    if weight_decay > 0:
        opt.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    if policy == "mixed_float16":
        opt = keras.mixed_precision.LossScaleOptimizer(opt)
    return opt


def make_loss(label_smoothing: float):
    """Sparse categorical cross-entropy on probabilities, with optional label smoothing.

    ``(B,) int`` labels and ``(B, K)`` probabilities in; label smoothing ``e`` trains
    against ``(1 - e) * one_hot + e / K`` (Szegedy et al., 2016).
    """
    if label_smoothing <= 0:
        return keras.losses.SparseCategoricalCrossentropy()
    def smoothed_sparse_cce(y_true, y_pred):
        # Per-example losses: Keras applies the reduction, which a distribution strategy
        # requires (a reducing Loss object called in here is refused under MirroredStrategy).
        labels = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
        one_hot = tf.one_hot(labels, tf.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(one_hot, y_pred, label_smoothing=label_smoothing)

    return smoothed_sparse_cce


def compile_model(model, *, peak_lr: float, schedule_kind: str, steps_per_epoch: int, epochs: int,
                  weight_decay: float, label_smoothing: float, policy: str, optimizer: str = "adam",
                  steps_per_execution: int = 1) -> None:
    """Compile ``model`` for ``epochs`` epochs of ``steps_per_epoch`` steps (call inside the strategy scope).

    ``steps_per_execution`` steps run inside one ``tf.function`` call (Keras ``compile``), so
    per-batch callbacks see every k-th step only.
    """
    lr = schedule(schedule_kind, peak_lr, steps_per_epoch, epochs * steps_per_epoch)
    model.compile(optimizer=make_optimizer(lr, weight_decay=weight_decay, policy=policy, optimizer=optimizer),
                  loss=make_loss(label_smoothing),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                  steps_per_execution=steps_per_execution)
