"""Distribution strategy: one device, MirroredStrategy over local devices, or multi-worker.

``none``        the default strategy (one device).
``mirrored``    :class:`tf.distribute.MirroredStrategy` over every local GPU; on a machine
                without GPUs, over the logical CPU devices (one unless the process split
                its CPU with ``tf.config.set_logical_device_configuration``, as the tests do).
``multiworker`` :class:`tf.distribute.MultiWorkerMirroredStrategy`; the cluster and this
                process's role come from the ``TF_CONFIG`` environment variable.
``auto``        ``multiworker`` when ``TF_CONFIG`` names more than one process, ``mirrored``
                with two or more GPUs, else ``none``.

``TF_CONFIG`` follows TensorFlow's format: ``cluster`` lists ``worker`` addresses and
optionally one ``chief`` (a worker with the extra duty of saving). The chief writes the run
directory: the ``chief`` task when the cluster has one, else worker 0. Parameter servers and
evaluators belong to other strategies and are refused.

The configured batch size is per replica: the global batch is ``batch_size * replicas``
and the peak learning rate scales linearly with it (Goyal et al., 2017, "Accurate, Large
Minibatch SGD", the linear scaling rule; the warm-up the loop already does is their remedy
for the early instability it causes).

Strategies must be created before TensorFlow runs any op (collective ops are configured at
program start-up), so :func:`make_strategy` is the first TF call of a training run.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from edgesmith.core.errors import ConfigError

from .config import STRATEGIES



@dataclass(frozen=True)
class Placement:
    """The strategy chosen for a run and what it means for this process.

    Attributes:
        strategy: the ``tf.distribute.Strategy`` to build and fit the model under.
        kind: ``none``, ``mirrored`` or ``multiworker``.
        replicas: replicas in sync across the whole cluster.
        workers: worker processes (1 unless multi-worker).
        task_index: this process's rank in the cluster: 0 is the chief, which writes the
            run directory (see :func:`cluster_role`).
    """

    strategy: object
    kind: str
    replicas: int
    workers: int = 1
    task_index: int = 0

    @property
    def is_chief(self) -> bool:
        return self.task_index == 0


def tf_config() -> dict:
    """The parsed ``TF_CONFIG`` (``{}`` when unset).

    Raises:
        ConfigError: ``TF_CONFIG`` is not JSON, or its cluster lists no ``worker`` or ``chief``.
    """
    raw = os.environ.get("TF_CONFIG", "")
    if not raw.strip():
        return {}
    try:
        cfg = json.loads(raw)
        cluster = cfg["cluster"]
        if not any(isinstance(cluster.get(k), list) and cluster[k] for k in ("worker", "chief")):
            raise KeyError
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ConfigError('TF_CONFIG must be JSON like {"cluster": {"worker": ["host:port", ...]}, '
                          '"task": {"type": "worker", "index": 0}}') from None
    return cfg


def cluster_role(cfg: dict) -> tuple[int, int]:
    """``(processes, rank)`` for a parsed ``TF_CONFIG``: the training processes in the
    cluster (chief plus workers) and this process's rank, 0 for the chief.

    The ``chief`` task is rank 0 and worker ``i`` rank ``i + 1`` when the cluster has a chief;
    without one, worker ``i`` is rank ``i`` (TensorFlow makes worker 0 the chief then).

    Raises:
        ConfigError: more than one chief, a ``ps`` or ``evaluator`` task (other strategies),
            or a task type or index the cluster does not have.
    """
    cluster = cfg.get("cluster", {})
    chiefs, workers = list(cluster.get("chief", [])), list(cluster.get("worker", []))
    others = sorted(set(cluster) - {"chief", "worker"})
    if others:
        raise ConfigError(f"TF_CONFIG cluster has {', '.join(others)} tasks: multi-worker training "
                          "takes only chief and worker tasks (parameter servers need another strategy)")
    if len(chiefs) > 1:
        raise ConfigError(f"TF_CONFIG lists {len(chiefs)} chiefs; a cluster has at most one")
    task = cfg.get("task", {})
    kind, index = task.get("type", "worker"), task.get("index", 0)
    size = {"chief": len(chiefs), "worker": len(workers)}.get(kind)
    if size is None or not isinstance(index, int) or not 0 <= index < size:
        raise ConfigError(f"TF_CONFIG task {kind} {index} is not in the cluster "
                          f"({len(chiefs)} chief, {len(workers)} workers)")
    return len(chiefs) + len(workers), (index if kind == "chief" else index + len(chiefs))


def resolve_kind(name: str, *, gpus: int, cfg: dict | None = None) -> str:
    """The concrete strategy kind for ``name`` (see the module docstring).

    Raises:
        ConfigError: unknown name, ``multiworker`` without a ``TF_CONFIG``, or a ``TF_CONFIG``
            :func:`cluster_role` refuses.
    """
    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    cfg = tf_config() if cfg is None else cfg
    n_workers = cluster_role(cfg)[0] if cfg else 0
    if name == "auto":
        return "multiworker" if n_workers > 1 else "mirrored" if gpus >= 2 else "none"
    if name == "multiworker" and not cfg:
        raise ConfigError("strategy multiworker needs TF_CONFIG describing the cluster "
                          "(see docs/training.md, 'Training on several GPUs or machines')", field="TrainConfig.strategy")
    return name


def make_strategy(name: str) -> Placement:
    """Build the strategy for ``name`` in this process.

    Raises:
        ConfigError: as :func:`resolve_kind`.
    """
    from edgesmith.tfshim import tf

    gpus = tf.config.list_physical_devices("GPU")
    cfg = tf_config()  # read once: resolve_kind and the multi-worker branch share it
    kind = resolve_kind(name, gpus=len(gpus), cfg=cfg)
    if kind == "none":
        return Placement(tf.distribute.get_strategy(), "none", 1)
    if kind == "mirrored":
        if gpus:
            strategy = tf.distribute.MirroredStrategy()
        else:
            cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
            strategy = tf.distribute.MirroredStrategy(
                devices=cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())
        return Placement(strategy, "mirrored", strategy.num_replicas_in_sync)
    workers, rank = cluster_role(cfg)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    return Placement(strategy, "multiworker", strategy.num_replicas_in_sync, workers=workers, task_index=rank)
