"""``make demo``: baseline vs + GloRe / + GC / + NL on ``distant-digits`` (task ``select``).

Trains each variant through the engine of ``glore train`` (:func:`glore.engine.runner.train`) from its
config in ``configs/demo/<variant>.yaml``, with one budget and one seed, prints a table (validation
accuracy, parameters, GMACs, seconds per epoch) and writes ``<output>/summary.json`` and
``<output>/curves.png``. Each variant's folder ``<output>/<variant>/`` is a ``glore train`` run folder
(``config.yaml``, ``checkpoints/last.ckpt``, ``checkpoints/best.ckpt``, ``metrics.json``, ``csv/``), so
``glore evaluate`` and ``glore analyze`` read it.

    python -m glore.demo --output results/demo [--seed 0] [--epochs 5] [--variants baseline,glore,gc,nl]

``--task video`` does the same on the video set ``distant-clips`` with
:func:`glore.models.video.distant_clips_net` from ``configs/demo/video_<variant>.yaml`` (default
output ``results/demo_video``; see ``docs/video.md``).

The budget (epochs, samples, batch size, learning rate, ...) is read from those configs
(:func:`budget`; ``DEFAULTS`` and ``VIDEO_DEFAULTS`` are the image and video budgets).

Modules: :mod:`.runs` trains the variants and writes the summary, :mod:`.metrics_csv` reads a run's
per-epoch metrics, :mod:`.plots` draws the curves and formats the table, :mod:`.cli` is the command
line (``python -m glore.demo``, ``glore demo``). Their names are importable from here; only the
command line is imported with the package (``glore --help`` stays fast: the engine takes seconds to
import).
"""

from .._lazy import lazy_exports
from .cli import DESCRIPTION, main, register

_EXPORTS = {
    "VARIANTS": "glore.demo.runs",
    "TASKS": "glore.demo.runs",
    "DEFAULT_OUTPUT": "glore.demo.runs",
    "CONFIG_DIR": "glore.demo.runs",
    "CONFIG_KEYS": "glore.demo.runs",
    "DEFAULTS": "glore.demo.runs",
    "VIDEO_DEFAULTS": "glore.demo.runs",
    "budget": "glore.demo.runs",
    "config_path": "glore.demo.runs",
    "variant_config": "glore.demo.runs",
    "count_gmacs": "glore.demo.runs",
    "train_variant": "glore.demo.runs",
    "run": "glore.demo.runs",
    "epoch_metrics": "glore.demo.metrics_csv",
    "plot_curves": "glore.demo.plots",
    "format_table": "glore.demo.plots",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted([*_EXPORTS, "DESCRIPTION", "main", "register"])
