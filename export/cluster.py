"""Weight clustering (TF-MOT): few distinct weight values per kernel, so the file gzips small.

Pruning alone leaves every surviving int8 weight at ~7 bits of entropy; clustering each
kernel to ``clusters`` shared values (k-means++ centroids, fine-tuned) cuts that to at most
``log2(clusters)`` bits. After pruning, ``preserve_sparsity`` keeps the zeros as their own
cluster. Source of the method: Han et al., "Deep Compression" (2016), as implemented by
``tfmot.clustering.keras.cluster_weights``; combined with pruning and
cluster-preserving QAT it is TF-MOT's "collaborative optimization"
(https://www.tensorflow.org/model_optimization/guide/combine/collaborative_optimization).

The steps compose (:func:`cluster` runs them all)::

    wrapped = cluster_weights(model, clusters=16)
    fine_tune(wrapped, images, labels, tune)
    clustered = strip_clustering(wrapped)
"""
from __future__ import annotations

import numpy as np

from edgesmith.core.errors import ConfigError

from .finetune import FineTune, copy_model, fine_tune, is_prunable, wrap_layers


def check_clusters(clusters: int) -> None:
    """Raises ConfigError unless ``2 <= clusters <= 256`` (an int8 kernel has 256 values)."""
    if not 2 <= clusters <= 256:
        raise ConfigError(f"ExportConfig.cluster must be in 2..256 clusters, got {clusters}",
                          field="ExportConfig.cluster")


def cluster_weights(model, *, clusters: int, preserve_sparsity: bool = False):
    """A copy of ``model`` with its Conv2D/Dense/DepthwiseConv2D layers wrapped for clustering.

    Centroids start at k-means++ (drawn from TF's global generator: seed it first).
    Only those layers are wrapped: TF-MOT refuses preprocessing layers such as
    ``Rescaling``. ``model`` is not modified.

    Raises:
        ConfigError: clusters outside 2..256.
    """
    import tensorflow_model_optimization as tfmot

    check_clusters(clusters)
    cl = tfmot.clustering.keras
    init = cl.CentroidInitialization.KMEANS_PLUS_PLUS

    def wrap(layer):
        if is_prunable(layer):
            return cl.cluster_weights(  # preserve_sparsity: passed through as a kwarg
                layer, number_of_clusters=clusters, cluster_centroids_init=init,
                preserve_sparsity=preserve_sparsity)
        return layer

    return wrap_layers(model, wrap)


def strip_clustering(model):
    """The clustered model without its wrappers: a plain float model with few values per kernel."""
    import tensorflow_model_optimization as tfmot

    return copy_model(tfmot.clustering.keras.strip_clustering(model))


def cluster(model, images: np.ndarray, labels: np.ndarray, *, clusters: int,
            preserve_sparsity: bool = False,
            tune: FineTune = FineTune(epochs=2, learning_rate=1e-4), seed: int = 0):
    """Cluster ``model``'s Conv2D/Dense/DepthwiseConv2D kernels while fine-tuning, then strip.

    Centroids start at k-means++ and are trained with the rest of the network; each
    weight follows its nearest centroid. Layers with no more weights than clusters are
    left as they are.

    Clustering is per tensor (one set of centroids per kernel), not per output channel
    (TF-MOT's ``cluster_per_channel``): on the pruned ResNet-8 of docs/shrinking.md, per-channel
    16-level k-means followed by per-channel int8 gave kernels that gzip ~19% larger
    (48.1 vs 40.5 kB) than this per-tensor clustering, because every channel brings its
    own int8 levels and the layer's byte alphabet grows (gzip's Huffman tables are per
    block, not per channel).

    Example::

        clustered = cluster(pruned, train.images, train.labels, clusters=16, preserve_sparsity=True)

    Args:
        model: trained float tf_keras model (not modified), e.g. the pruned one.
        images / labels: ``(N, H, W, C) uint8`` training pixels and ``(N,)`` classes.
        clusters: distinct values per kernel, 2..256.
        preserve_sparsity: keep exact zeros at zero (for a pruned model).

    Returns:
        A new float model without clustering wrappers whose kernels hold at most
        ``clusters`` distinct values each (bias and BatchNorm untouched).

    Raises:
        ConfigError: clusters outside 2..256.
    """
    from edgesmith.tfshim import tf

    check_clusters(clusters)
    tf.random.set_seed(seed)  # k-means++ draws its first centroids from TF's generator
    wrapped = cluster_weights(model, clusters=clusters, preserve_sparsity=preserve_sparsity)
    fine_tune(wrapped, images, labels, tune, seed=seed)
    return strip_clustering(wrapped)


def layer_unique_values(model) -> dict[str, int]:
    """Distinct kernel values of each Conv2D/Dense/DepthwiseConv2D layer, by layer name."""
    return {layer.name: int(len(np.unique(layer.get_weights()[0])))
            for layer in model.layers if is_prunable(layer) and layer.get_weights()}
