"""The splits a training run reads: in memory, or streamed from their files when they would not fit.

:func:`prepare` turns a :class:`~edgesmith.train.TrainConfig` into three :class:`Source` s (fit,
validation, test). A source is either a decoded :class:`~edgesmith.core.data.Split` (named
datasets, and folders that fit the memory budget) or a file list read by the one decoder while
training (:func:`.input.make_file_dataset`), chosen by :func:`.input.should_stream` or
``TrainConfig.stream``. Validation comes from ``ROOT/val`` when the folder has one, else from a
seeded hold-out of the training split (:func:`hold_out_indices`), the same images either way.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
import numpy as np

from edgesmith.core import data as _data
from edgesmith.core.data import Split
from edgesmith.core.errors import ConfigError, DataError


def hold_out_indices(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(fit, validation)`` indices into ``n`` training images: a seeded (``seed + 1``) random
    ``fraction`` held out, so a run and its tune trial hold out the same images."""
    n_val = int(round(n * fraction))
    idx = np.random.default_rng(seed + 1).permutation(n)
    return idx[n_val:], idx[:n_val]


@dataclass
class Source:
    """One split for training: decoded images in memory, or files streamed by ``decoder``.

    Attributes:
        labels: ``(N,) int64`` class ids (in file order when streamed).
        class_names: label names, index = class id.
        image_shape: ``(H, W, C)`` of every image the pipeline yields.
        split: the decoded images, or None when streamed.
        files: the image paths when streamed.
        decoder: a :class:`.input.FileDecoder` when streamed.
    """

    labels: np.ndarray
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]
    split: Split | None = None
    files: list | None = None
    decoder: object | None = None

    @classmethod
    def of(cls, split: Split) -> "Source":
        return cls(split.labels, split.class_names, split.image_shape, split=split)

    @property
    def streamed(self) -> bool:
        return self.split is None

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: np.ndarray) -> "Source":
        if self.split is not None:
            s = self.split
            return Source.of(Split(s.images[idx], s.labels[idx], s.class_names))
        return replace(self, labels=self.labels[idx], files=[self.files[i] for i in idx])

    def dataset(self, **kw) -> "tf.data.Dataset":  # noqa: F821
        """The batched ``tf.data`` pipeline (keywords of :func:`.input.make_dataset`)."""
        from .input import make_dataset, make_file_dataset

        if self.split is not None:
            return make_dataset(self.split.images, self.split.labels, **kw)
        return make_file_dataset(self.files, self.labels, self.decoder, **kw)

    def kept_labels(self) -> np.ndarray:
        """The labels of the images a pass over the dataset yielded (files that failed to decode
        are dropped from the stream, so their labels are too)."""
        if self.split is not None or not self.decoder.failed:
            return self.labels
        keep = np.asarray([str(f) not in self.decoder.failed for f in self.files])
        return self.labels[keep]


@dataclass
class TrainData:
    """``fit``, ``val`` (None without validation) and ``test`` sources, and how they were read."""

    fit: Source
    val: Source | None
    test: Source
    n_train: int
    streamed: bool
    why: str
    val_from: str
    decoders: list = field(default_factory=list)
    listing_skipped: list = field(default_factory=list)

    def stream_failures(self) -> dict[str, str]:
        """Files left out of the streamed splits so far, path -> reason: junk and unreadable headers
        found while listing, then the files the decoders could not read."""
        out = dict(self.listing_skipped)
        for d in self.decoders:
            out.update(d.failed)
        return out

    def raise_strict_error(self) -> None:
        """Raise the first decoding error a strict streaming decoder met, if any."""
        for d in self.decoders:
            if d.error is not None:
                raise d.error


def _is_folder(spec) -> bool:
    return spec.source not in _data.NAMED_SOURCES


def _has_val(spec) -> bool:
    has = getattr(_data, "has_split", None)
    return bool(has and _is_folder(spec) and has(spec, "val"))


def _load(spec, split: str) -> Split:
    return _data.load_split(spec, split)


def _list(spec, split: str):
    """``(files, labels, class_names, channels, skipped)`` of a folder split, without decoding.

    Raises:
        DataError: as :func:`edgesmith.core.data.list_split`.
    """
    fs = _data.list_split(spec, split)
    return list(fs.files), np.asarray(fs.labels, dtype=np.int64), tuple(fs.class_names), int(fs.channels), \
        tuple(fs.skipped)


def _image_hw(spec, first) -> tuple[tuple[int, int] | None, tuple[int, int]]:
    """``(size given to the decoder or None, (H, W) every image comes out at)``."""
    if spec.image_size is not None:
        return spec.image_size, spec.image_size
    from edgesmith.core.images import decode_image

    return None, tuple(decode_image(first).shape[:2])


def test_source(spec, image_hw: tuple[int, int]) -> Source:
    """The test split alone, decoded into memory at ``image_hw`` (``(H, W)`` px, the size the run's
    model was trained at), for scoring a finished run without reading its training images.

    Raises:
        DataError: the test split cannot be read.
    """
    if spec.image_size is None and _is_folder(spec):  # what prepare() takes from the training images
        spec = replace(spec, image_size=tuple(image_hw))
    return Source.of(_load(spec, "test"))


def prepare(config, *, log=None) -> TrainData:
    """The fit / validation / test sources of ``config``, streamed or in memory.

    Args:
        config: a :class:`~edgesmith.train.TrainConfig`.
        log: called with one line saying how the data is read (or None).

    Raises:
        ConfigError: ``stream`` asked for a dataset that is not a folder.
        DataError: the dataset cannot be read, or its splits disagree.
    """
    from .input import FileDecoder, should_stream

    spec = config.data
    folder = _is_folder(spec)
    if config.stream and not folder:
        raise ConfigError(f"stream reads images from their files: data must be a folder, not {spec.source}",
                          field="TrainConfig.stream")
    train_files = None
    if folder:
        train_files = files, labels, names, channels, _ = _list(spec, "train")
        size, hw = _image_hw(spec, files[0])
        stream, why = should_stream(len(files), (*hw, channels), config.stream)
    else:
        stream, why = False, f"{spec.source} is a named dataset, not files"
    val_from = "ROOT/val" if _has_val(spec) else f"{config.val_split:.0%} held out of train (seed {config.seed + 1})"
    decoders, listing_skipped = [], []
    if stream:
        def source(split: str, listed=None) -> Source:
            f, y, n, c, skipped = listed or _list(spec, split)
            listing_skipped.extend(skipped)
            if n != names:
                raise DataError(f"{spec.source}: {split} classes {list(n)} differ from train classes {list(names)}")
            if c != channels:  # as in memory: the splits must agree
                raise DataError(f"{spec.source}: train images are {(*hw, channels)}, {split} images {(*hw, c)}")
            dec = FileDecoder(c, size, spec.resize, strict=spec.strict, expect_hw=hw,
                              on_failure=lambda path, why: _data.note_decode_failure(spec, split, Path(path), why))
            decoders.append(dec)
            return Source(y, n, (*hw, c), files=f, decoder=dec)

        train = source("train", train_files)
        test = source("test")
        val = source("val") if _has_val(spec) else None
    else:
        train, test = Source.of(_load(spec, "train")), Source.of(_load(spec, "test"))
        val = Source.of(_load(spec, "val")) if _has_val(spec) else None
        for name, other in (("test", test), ("val", val)):
            if other is None:
                continue
            if other.class_names != train.class_names:
                raise DataError(f"{spec.source}: train classes {list(train.class_names)} differ from "
                                f"{name} classes {list(other.class_names)}")
            if other.image_shape != train.image_shape:
                raise DataError(f"{spec.source}: train images are {train.image_shape}, {name} images "
                                f"{other.image_shape}")
    if val is None:
        fit_idx, val_idx = hold_out_indices(len(train), config.val_split, config.seed)
        fit, val = (train.subset(fit_idx), train.subset(val_idx) if len(val_idx) else None)
    else:
        fit = train
    if log is not None:
        how = "streamed from the files" if stream else "decoded into memory"
        log(f"input: {len(train)} training images {how} ({why}); validation: "
            f"{val_from if val is not None else 'none'}")
    return TrainData(fit, val, test, len(train), stream, why, val_from if val is not None else "none", decoders,
                     [(str(f), why) for f, why in listing_skipped])
