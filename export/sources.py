"""The Keras source models of an export: the run's own, and the pruned / clustered / QAT ones.

Each step fine-tunes a copy of its parent on the training split and reports what it did
(method, sparsity or distinct values per layer, the fine-tune, seconds); the exporter
records that under ``manifest["stages"]["export"]["sources"]``.
"""
from __future__ import annotations

import time

from edgesmith.core.data import DataSpec, load_split

from .config import ExportConfig


def build_sources(model, config: ExportConfig, spec: DataSpec, log) -> tuple[dict, dict]:
    """Keras models per source (``base``, ``pruned``, ...) and what each took.

    Args:
        model: the run's float tf_keras model (the ``base`` source; not modified).
        config: which sources to make, and their fine-tunes.
        spec: the run's dataset; its training split feeds the fine-tunes.
        log: called with one-line progress messages.

    Returns:
        ``(models, info)``: source name -> tf_keras model, source name -> its record.

    Raises:
        DataError: the training split cannot be loaded.
    """
    models, info = {"base": model}, {"base": {"model": "model.keras"}}
    if not (config.pruning or config.qat or config.cluster):
        return models, info
    train = load_split(spec, "train")
    if config.pruning:
        models["pruned"], info["pruned"] = _pruned(model, config, train, spec.seed, log)
    if config.cluster is not None:
        parent = "pruned" if config.pruning else "base"
        models["clustered"], info["clustered"] = _clustered(models[parent], parent, config, train, spec.seed, log)
    if config.qat:
        for src, parent in (("qat", "base"), ("pruned_qat", "pruned"), ("clustered_qat", "clustered")):
            if parent in models:
                models[src], info[src] = _qat(models[parent], parent, config, train, spec.seed, log)
    return models, info


def _pruned(model, config: ExportConfig, train, seed: int, log):
    from .prune import layer_sparsity, prune  # looked up at call time (tests replace prune)

    target = 0.5 if config.structured_2_4 else config.prune
    log(f"pruning to {target:.0%} sparsity{' (2:4)' if config.structured_2_4 else ''}, fine-tuning "
        f"{config.prune_tune.epochs} epoch(s) on {min(len(train), config.prune_tune.limit or len(train))} "
        "training images")
    t = time.perf_counter()
    pruned = prune(model, train.images, train.labels, sparsity=config.prune or 0.5, tune=config.prune_tune,
                   structured_2_4=config.structured_2_4, seed=seed)
    return pruned, {
        "method": "TF-MOT prune_low_magnitude, " + (
            "2:4 structured (sparsity_m_by_n)" if config.structured_2_4 else
            "PolynomialDecay 0 -> target over 2/3 of the fine-tune") + ", strip_pruning",
        "target_sparsity": target, "layer_sparsity": layer_sparsity(pruned),
        "fine_tune": vars(config.prune_tune), "seconds": round(time.perf_counter() - t, 1)}


def _clustered(parent_model, parent: str, config: ExportConfig, train, seed: int, log):
    from .cluster import cluster, layer_unique_values
    from .prune import layer_sparsity

    log(f"clustering the {parent} model to {config.cluster} values per kernel"
        f"{' (sparsity-preserving)' if config.pruning else ''}, fine-tuning {config.cluster_tune.epochs} epoch(s)")
    t = time.perf_counter()
    clustered = cluster(parent_model, train.images, train.labels, clusters=config.cluster,
                        preserve_sparsity=config.pruning, tune=config.cluster_tune, seed=seed)
    return clustered, {
        "method": "TF-MOT cluster_weights, KMEANS_PLUS_PLUS, per-tensor"
                  + (", preserve_sparsity" if config.pruning else "") + ", strip_clustering",
        "from": parent, "clusters": config.cluster,
        "layer_unique_values": layer_unique_values(clustered),
        "layer_sparsity": layer_sparsity(clustered), "fine_tune": vars(config.cluster_tune),
        "seconds": round(time.perf_counter() - t, 1)}


def _qat_method(parent: str, keep_zeros: bool) -> str:
    if parent == "clustered":
        scheme = (f"Default8BitClusterPreserveQuantizeScheme(preserve_sparsity={keep_zeros}) "
                  f"({'PCQAT' if keep_zeros else 'CQAT'})")
    elif parent == "pruned":
        scheme = "Default8BitPrunePreserveQuantizeScheme (PQAT)"
    else:
        scheme = "Default8BitQuantizeScheme"
    return f"TF-MOT quantize_apply, {scheme}; Rescaling gets an output-only quantize config"


def _qat(parent_model, parent: str, config: ExportConfig, train, seed: int, log):
    from .qat import quantize_aware

    keep_zeros = parent == "pruned" or (parent == "clustered" and config.pruning)
    log(f"quantization-aware training of the {parent} model"
        f"{' (cluster-preserving)' if parent == 'clustered' else ''}"
        f"{' (prune-preserving)' if keep_zeros else ''}, {config.qat_tune.epochs} epoch(s)")
    t = time.perf_counter()
    qat = quantize_aware(parent_model, train.images, train.labels, tune=config.qat_tune,
                         preserve_sparsity=keep_zeros, preserve_clusters=parent == "clustered", seed=seed)
    return qat, {"method": _qat_method(parent, keep_zeros), "from": parent, "fine_tune": vars(config.qat_tune),
                 "seconds": round(time.perf_counter() - t, 1)}
