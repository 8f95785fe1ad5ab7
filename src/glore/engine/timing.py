"""``EpochTimer``: logs ``time/train_epoch_s``, the wall seconds of each training epoch without the
validation pass that Lightning runs inside it (``csv/version_N/metrics.csv`` of a run has a row per
epoch)."""

from __future__ import annotations

import time

from lightning.pytorch.callbacks import Callback

METRIC = "time/train_epoch_s"


class EpochTimer(Callback):
    """Wall time of each training epoch, validation excluded, logged as :data:`METRIC`."""

    def __init__(self):
        self._start = None
        self._validation_start = None
        self._validation_seconds = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()
        self._validation_seconds = 0.0

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._validation_start = time.perf_counter()

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self._start is not None and self._validation_start is not None:
            self._validation_seconds += time.perf_counter() - self._validation_start

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._start is None:
            return
        seconds = time.perf_counter() - self._start - self._validation_seconds
        pl_module.log(METRIC, seconds, on_step=False, on_epoch=True)
        self._start = None
