"""A rich progress bar for Keras training: one bar over all steps, one line per epoch."""
from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from edgesmith.tfshim import keras


class RichProgress(keras.callbacks.Callback):
    """Shows ``epoch e/E`` with a bar over steps and prints each epoch's metrics."""

    def __init__(self, epochs: int, steps_per_epoch: int, console: Console | None = None):
        super().__init__()
        self.epochs, self.steps = epochs, steps_per_epoch
        self.console = console or Console(stderr=True)
        self._progress: Progress | None = None

    def on_train_begin(self, logs=None):
        self._progress = Progress(TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
                                  BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                                  TimeRemainingColumn(), console=self.console, transient=True)
        self._progress.start()
        self._task = self._progress.add_task("train", total=self.steps, epoch=1, epochs=self.epochs, info="")

    def on_epoch_begin(self, epoch, logs=None):
        self._progress.reset(self._task, total=self.steps, epoch=epoch + 1, epochs=self.epochs, info="")

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        info = f"loss {logs.get('loss', float('nan')):.3f} acc {logs.get('accuracy', float('nan')):.3f}"
        self._progress.update(self._task, completed=batch + 1, info=info)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        parts = " ".join(f"{k} {v:.4f}" for k, v in logs.items() if isinstance(v, (int, float)) and k != "lr")
        self._progress.console.print(f"epoch {epoch + 1}/{self.epochs}: {parts}")

    def on_train_end(self, logs=None):
        if self._progress is not None:
            self._progress.stop()
