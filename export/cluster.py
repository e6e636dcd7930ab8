"""Weight clustering (TF-MOT): few distinct weight values per kernel, so the file gzips small.

Pruning alone leaves every surviving int8 weight at ~7 bits of entropy; clustering each
kernel to ``clusters`` shared values (k-means++ centroids, fine-tuned) cuts that to at most
``log2(clusters)`` bits. After pruning, ``preserve_sparsity`` keeps the zeros as their own
cluster. Source of the method: Han et al., "Deep Compression" (2016), as implemented by
``tfmot.clustering.keras.cluster_weights``; combined with pruning and
cluster-preserving QAT it is TF-MOT's "collaborative optimization"
(https://www.tensorflow.org/model_optimization/guide/combine/collaborative_optimization).
"""
from __future__ import annotations

import numpy as np

from edgesmith.core.errors import ConfigError
from edgesmith.train._keras import keras

from .prune import PRUNABLE, FineTune, copy_model, fit


def check_clusters(clusters: int) -> None:
    """Raises ConfigError unless ``2 <= clusters <= 256`` (an int8 kernel has 256 values)."""
    if not 2 <= clusters <= 256:
        raise ConfigError(f"--cluster must be in 2..256 clusters, got {clusters}")


def cluster(model: keras.Model, images: np.ndarray, labels: np.ndarray, *, clusters: int,
            preserve_sparsity: bool = False, per_channel: bool = False,
            tune: FineTune = FineTune(epochs=2, learning_rate=1e-4), seed: int = 0) -> keras.Model:
    """Cluster ``model``'s Conv2D/Dense/DepthwiseConv2D kernels while fine-tuning, then strip.

    Only those layers are wrapped (``clone_model`` with a ``clone_function``): TF-MOT
    refuses preprocessing layers such as ``Rescaling``. Centroids start at k-means++
    and are trained with the rest of the network; each weight follows its nearest
    centroid. Layers with no more weights than clusters are left as they are.

    Args:
        model: trained float tf_keras model (not modified), e.g. the pruned one.
        images / labels: ``(N, H, W, C) uint8`` training pixels and ``(N,)`` classes.
        clusters: distinct values per kernel (per output channel with ``per_channel``), 2..256.
        preserve_sparsity: keep exact zeros at zero (for a pruned model).
        per_channel: cluster each Conv2D output channel separately (Dense stays per-tensor).

    Returns:
        A new float model without clustering wrappers whose kernels hold at most
        ``clusters`` distinct values each (bias and BatchNorm untouched).

    Raises:
        ConfigError: clusters outside 2..256.
    """
    import tensorflow_model_optimization as tfmot

    check_clusters(clusters)
    cl = tfmot.clustering.keras
    init = cl.CentroidInitialization.KMEANS_PLUS_PLUS

    def wrap(layer):  # layers of a private copy: their weights carry over
        kind = type(layer).__name__
        if kind in PRUNABLE:
            return cl.cluster_weights(  # preserve_sparsity / per-channel: passed through as kwargs
                layer, number_of_clusters=clusters, cluster_centroids_init=init,
                preserve_sparsity=preserve_sparsity, cluster_per_channel=per_channel and kind == "Conv2D")
        return layer

    tf_seed(seed)
    clone = keras.models.clone_model(copy_model(model), clone_function=wrap)
    fit(clone, images, labels, tune, seed=seed)
    return copy_model(cl.strip_clustering(clone))


def tf_seed(seed: int) -> None:
    """Seed TensorFlow's global generator (k-means++ draws its first centroids from it)."""
    from edgesmith.train._keras import tf

    tf.random.set_seed(seed)


def layer_unique_values(model: keras.Model, *, per_channel: bool = False) -> dict[str, int]:
    """Distinct kernel values of each Conv2D/Dense/DepthwiseConv2D layer, by layer name.

    With ``per_channel`` the figure is the largest count over the output channels (last axis).
    """
    out = {}
    for layer in model.layers:
        if type(layer).__name__ in PRUNABLE and layer.get_weights():
            w = layer.get_weights()[0]
            if per_channel and type(layer).__name__ == "Conv2D":
                w = w.reshape(-1, w.shape[-1])
                out[layer.name] = max(len(np.unique(w[:, c])) for c in range(w.shape[1]))
            else:
                out[layer.name] = int(len(np.unique(w)))
    return out
