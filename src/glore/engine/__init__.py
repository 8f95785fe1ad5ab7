"""Training and evaluation on PyTorch Lightning.

Contract shared by the tasks (classification, segmentation, video, detection):

- A run is described by a nested config dict, loaded from YAML by ``glore.engine.config.load_config``
  with ``key.sub=value`` overrides. Top-level keys: ``task``, ``seed``, ``output_dir``, ``model``,
  ``data``, ``optim``, ``trainer``.
- ``glore.engine.<task>`` (module named in ``TASKS``) provides ``build_module(cfg)`` returning a
  ``glore.engine.base.TaskModule`` (a LightningModule) and ``build_datamodule(cfg)`` returning a
  LightningDataModule; optionally ``evaluate(module, datamodule, cfg, **options) -> dict``.
- ``glore.engine.runner`` trains and evaluates any task through that interface.
"""

TASKS = {
    "classification": "glore.engine.classification",
    "segmentation": "glore.engine.segmentation",
    "video": "glore.engine.video",
    "detection": "glore.engine.detection",
}
