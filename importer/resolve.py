"""A run directory, or a model file imported into a new one: what ``edgesmith export PATH`` starts from."""
from __future__ import annotations

import datetime as _dt
from pathlib import Path

from edgesmith.core.errors import ConfigError
from edgesmith.core.rundir import RunDir


def default_out(model_file: str | Path) -> Path:
    """``runs/import-<model file stem>-<local timestamp>``, the default run directory of an import."""
    return Path("runs") / f"import-{Path(model_file).stem}-{_dt.datetime.now():%Y%m%d-%H%M%S}"


def resolve_run(path: str | Path, *, data: str | None = None, labels: str | Path | None = None,
                preprocess: str = "none", outputs: str = "auto", trust_model_code: bool = False,
                out: str | Path | None = None, overwrite: bool = False, limit_train: int | None = None,
                limit_test: int | None = None, seed: int = 0, image_size: tuple[int, int] | None = None,
                resize: str = "squash", test_split: float | None = None,
                strict: bool = False) -> tuple[RunDir, bool]:
    """The run at ``path``; or, for a model file with ``data``, a new run importing it.

    Side effects: an import writes a run directory at ``out`` (default :func:`default_out`).

    Example::

        run, imported = resolve_run("mobilenet.h5", data="cifar10", preprocess="minus1to1")

    Args:
        path: a run directory (has ``manifest.json``), or a ``.keras`` / ``.h5`` file or
            SavedModel directory to import. Anything else is returned as it is, for the
            next stage to report.
        data: the dataset to import against (``synthetic``, ``cifar10`` or a folder); only
            with a model file. ``limit_train`` / ``limit_test`` / ``seed`` (also the split seed),
            ``image_size`` (``(H, W)``, px; default: the model's input size when the folder's
            images differ in size), ``resize``, ``test_split`` and ``strict`` shape it
            (:class:`edgesmith.core.data.DataSpec`).
        labels, preprocess, outputs, trust_model_code, overwrite: as
            :func:`edgesmith.importer.import_model` (``labels`` is its ``labels_file``).
        out: the run directory to create (model files only).

    Returns:
        ``(run, imported)``: ``imported`` is true when the model file was imported just now
        (its test top-1 is in ``run.metrics``).

    Raises:
        ConfigError: import options given with a run directory, or a model file without ``data``.
        ModelFileError, UnsafeModelError, ModelMismatchError, DataError: as
            :func:`edgesmith.importer.import_model`.
    """
    path = Path(path)
    if (path / "manifest.json").is_file():
        if data or labels or out or image_size or test_split is not None or strict or resize != "squash":
            raise ConfigError(f"{path} is already a run directory; data, labels, out and the image options "
                              "(image_size, resize, test_split, strict) are for model files", field="resolve_run.data")
        return RunDir(path), False
    if not data:
        if path.is_file() or (path / "saved_model.pb").is_file():
            raise ConfigError(f"{path} is a model file, not a run directory: give data to import it",
                              field="resolve_run.data")
        return RunDir(path), False  # not a run either: export reports it
    from edgesmith.core.data import DataSpec

    from .importer import import_model

    spec = DataSpec(data, limit_train, limit_test, seed, image_size=image_size, resize=resize, test_split=test_split,
                    split_seed=seed, strict=strict)
    run = import_model(path, data=spec, out=out or default_out(path),
                       labels_file=labels, preprocess=preprocess, outputs=outputs,
                       trust_model_code=trust_model_code, overwrite=overwrite)
    return run, True
