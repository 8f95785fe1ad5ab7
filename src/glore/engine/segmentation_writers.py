"""Lightning callbacks that write the predictions of segmentation validation steps as PNGs.

Both read the ``{"pred": (B, H, W) train ids, "names": [str]}`` that
:meth:`glore.engine.segmentation.SegmentationModule.validation_step` returns.
"""

from __future__ import annotations

import os

import numpy as np
from lightning.pytorch.callbacks import Callback
from PIL import Image

from glore.data.cityscapes import train_id_to_id_lut
from glore.data.seg_palette import colour_image


def _predictions(outputs) -> list[tuple[str, np.ndarray]]:
    pred = outputs["pred"].detach().cpu().numpy()
    return list(zip(outputs["names"], pred))


class CityscapesResultWriter(Callback):
    """Cityscapes benchmark results: ``directory/<city>/<city>_<seq>_<frame>_leftImg8bit.png``, uint8
    label ids (the 34-id table, not train ids), one per image, at the input image's size.

    The benchmark's ``evalPixelLevelSemanticLabeling`` (and the test server, given a zip of
    ``directory``) finds a prediction by its ``<city>_<seq>_<frame>`` prefix anywhere below the folder.
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = os.fspath(directory)
        self._to_label_ids = train_id_to_id_lut()
        self.written: list[str] = []

    def path(self, name: str) -> str:
        city = name.split("_")[0]
        return os.path.join(self.directory, city, f"{name}_leftImg8bit.png")

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        for name, train_ids in _predictions(outputs):
            path = self.path(name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            label_ids = self._to_label_ids[train_ids.astype(np.int64).clip(0, 255)]
            Image.fromarray(label_ids.astype(np.uint8), mode="L").save(path)
            self.written.append(path)


class ColouredPredictionWriter(Callback):
    """RGB previews ``directory/<name>_pred.png`` of the first ``limit`` predictions (on each process)."""

    def __init__(self, directory: str | os.PathLike, colours: np.ndarray, limit: int):
        self.directory = os.fspath(directory)
        self.colours = colours
        self.limit = int(limit)
        self.count = 0

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        for name, train_ids in _predictions(outputs):
            if self.count >= self.limit:
                return
            os.makedirs(self.directory, exist_ok=True)
            rgb = colour_image(train_ids, self.colours)
            Image.fromarray(rgb).save(os.path.join(self.directory, f"{name}_pred.png"))
            self.count += 1
