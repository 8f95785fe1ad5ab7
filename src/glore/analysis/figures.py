"""Drawing the analysis figures (matplotlib, Agg backend, no pyplot state).

Every figure has an exact pixel size, given by the ``*_size`` helpers, so that callers and tests
know what a PNG will be.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from glore.errors import ArgumentError

DPI = 100


def _figure(width: int, height: int) -> Figure:
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def display_image(image: torch.Tensor) -> np.ndarray:
    """``(C, H, W)`` tensor -> ``(H, W)`` gray or ``(H, W, 3)`` RGB array in ``[0, 1]`` (min-max
    scaled; channel counts other than 1 and 3 are averaged to gray)."""
    if image.dim() != 3:
        raise ArgumentError(f"expected an image of shape (C, H, W), got {tuple(image.shape)}")
    img = image.detach().float().cpu()
    img = img.permute(1, 2, 0) if img.shape[0] == 3 else img.mean(dim=0)
    lo, hi = img.min(), img.max()
    return ((img - lo) / (hi - lo) if hi > lo else torch.zeros_like(img)).numpy()


def cell_shape(image_hw, cell: int) -> tuple[int, int]:
    """``(width, height)`` in pixels of one panel: ``cell`` wide, height keeping the aspect ratio."""
    if not isinstance(cell, int) or cell < 16:
        raise ArgumentError(f"cell must be an int >= 16 (pixels), got {cell!r}")
    h, w = image_hw
    return cell, max(1, round(cell * h / w))


def grid_size(rows: int, cols: int, image_hw, cell: int) -> tuple[int, int]:
    """``(width, height)`` in pixels of a :func:`save_map_grid` figure."""
    cw, ch = cell_shape(image_hw, cell)
    return cols * cw, rows * ch


def save_map_grid(path, images: torch.Tensor, maps: torch.Tensor, *, labels: list[str],
                  markers=None, cell: int = 96, alpha: float = 0.6, cmap: str = "jet") -> Path:
    """One row per image: the image, then each map overlaid on it (own colour scale per map).

    ``images`` ``(B, C, H, W)``; ``maps`` ``(B, K, H, W)`` already at the image's size; ``labels``
    the K column labels; ``markers`` optional K ``(x, y)`` pixel positions (query points) or None
    entries, drawn as crosses. The PNG is :func:`grid_size` ``(B, K + 1, (H, W), cell)``.
    """
    if images.dim() != 4 or maps.dim() != 4 or maps.shape[0] != images.shape[0] \
            or maps.shape[2:] != images.shape[2:]:
        raise ArgumentError(f"expected images (B, C, H, W) and maps (B, K, H, W) of the same B, H, W, "
                         f"got {tuple(images.shape)} and {tuple(maps.shape)}")
    rows, k = images.shape[0], maps.shape[1]
    if len(labels) != k:
        raise ArgumentError(f"expected {k} labels (one per map), got {len(labels)}")
    markers = [None] * k if markers is None else list(markers)
    width, height = grid_size(rows, k + 1, images.shape[2:], cell)
    cw, ch = cell_shape(images.shape[2:], cell)
    fig = _figure(width, height)
    for r in range(rows):
        base = display_image(images[r])
        for c in range(k + 1):
            ax = fig.add_axes((c * cw / width, 1 - (r + 1) * ch / height, cw / width, ch / height))
            ax.set_axis_off()
            ax.imshow(base, cmap="gray", interpolation="nearest", vmin=0, vmax=1)
            if c == 0:
                continue
            m = maps[r, c - 1].detach().float().cpu().numpy()
            ax.imshow(m, cmap=cmap, alpha=alpha, interpolation="bilinear")
            if markers[c - 1] is not None:
                x, y = markers[c - 1]
                ax.plot([x], [y], marker="x", color="white", markersize=max(4, cell // 12),
                        markeredgewidth=2)
            if r == 0:
                ax.text(0.03, 0.97, labels[c - 1], transform=ax.transAxes, va="top", ha="left",
                        fontsize=max(6, cell // 14), color="black",
                        bbox={"facecolor": "white", "alpha": 0.8, "pad": 1, "linewidth": 0})
    return _save(fig, path)


def graph_figure_size(layers: int, cell: int = 320) -> tuple[int, int]:
    """``(width, height)`` in pixels of a :func:`save_graph_figure` figure."""
    if not isinstance(cell, int) or cell < 64:
        raise ArgumentError(f"cell must be an int >= 64 (pixels), got {cell!r}")
    return (layers + 1) * cell, cell


def save_graph_figure(path, adjacency: torch.Tensor, norms: torch.Tensor | None, *,
                      title: str = "", cell: int = 320) -> Path:
    """Heat map of each layer's ``(N, N)`` adjacency, then a bar chart of the node-feature norms
    (mean over images, with the standard deviation) when ``norms`` ``(B, N)`` is given.

    The PNG is :func:`graph_figure_size` ``(layers, cell)``.
    """
    if adjacency.dim() != 3 or adjacency.shape[1] != adjacency.shape[2]:
        raise ArgumentError(f"expected adjacency of shape (layers, N, N), got {tuple(adjacency.shape)}")
    layers, n = adjacency.shape[:2]
    if norms is not None and (norms.dim() != 2 or norms.shape[1] != n):
        raise ArgumentError(f"expected norms of shape (B, {n}), got {tuple(norms.shape)}")
    width, height = graph_figure_size(layers, cell)
    fig = _figure(width, height)
    fs = max(6, cell // 32)
    pad_l, pad_b, pad_t = 0.16, 0.14, 0.12
    for i in range(layers):
        a = adjacency[i].detach().float().cpu().numpy()
        lim = float(np.abs(a).max()) or 1.0
        ax = fig.add_axes(((i + pad_l) / (layers + 1), pad_b, 0.62 / (layers + 1), 1 - pad_b - pad_t))
        im = ax.imshow(a, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_title(f"{title} adjacency, layer {i}".strip(), fontsize=fs)
        ax.set_xlabel("node j", fontsize=fs)
        ax.set_ylabel("node i", fontsize=fs)
        ax.tick_params(labelsize=fs)
        cax = fig.add_axes(((i + 0.82) / (layers + 1), pad_b, 0.04 / (layers + 1), 1 - pad_b - pad_t))
        fig.colorbar(im, cax=cax).ax.tick_params(labelsize=fs)
    ax = fig.add_axes(((layers + pad_l) / (layers + 1), pad_b, 0.78 / (layers + 1), 1 - pad_b - pad_t))
    if norms is not None:
        values = norms.detach().float().cpu()
        std = values.std(dim=0, unbiased=False).numpy() if values.shape[0] > 1 else None
        ax.bar(np.arange(n), values.mean(dim=0).numpy(), yerr=std, color="tab:blue", width=0.8)
        ax.set_title(f"node-feature norm |V_n| ({values.shape[0]} images)", fontsize=fs)
        ax.set_xlabel("node n", fontsize=fs)
    else:
        ax.set_axis_off()
    ax.tick_params(labelsize=fs)
    return _save(fig, path)


def panels_size(panels: int, cell: int = 280) -> tuple[int, int]:
    """``(width, height)`` in pixels of a row of ``panels`` plots (:func:`save_selectivity_histograms`,
    :func:`save_class_activations`)."""
    if not isinstance(cell, int) or cell < 64:
        raise ArgumentError(f"cell must be an int >= 64 (pixels), got {cell!r}")
    return panels * cell, round(cell * 0.8)


def _panel(fig: Figure, i: int, panels: int):
    return fig.add_axes(((i + 0.18) / panels, 0.17, 0.74 / panels, 0.70))


def save_selectivity_histograms(path, indices: dict[str, dict[str, torch.Tensor]], *, bins: int = 20,
                                cell: int = 280) -> Path:
    """GCNet Figure 7: one panel per layer (outer keys), the histogram of its units' class selectivity
    indices in [0, 1] for each model (inner keys, e.g. ``baseline`` and ``gc``), overlaid. The PNG is
    :func:`panels_size` ``(layers, cell)``."""
    if not indices:
        raise ArgumentError("expected at least one layer of selectivity indices")
    width, height = panels_size(len(indices), cell)
    fig = _figure(width, height)
    fs = max(6, cell // 32)
    edges = np.linspace(0.0, 1.0, bins + 1)
    for i, (layer, models) in enumerate(indices.items()):
        ax = _panel(fig, i, len(indices))
        for label, values in models.items():
            ax.hist(values.detach().double().cpu().numpy(), bins=edges, alpha=0.5, label=label)
        ax.set_title(layer, fontsize=fs)
        ax.set_xlabel("class selectivity index", fontsize=fs)
        ax.set_xlim(0, 1)
        ax.tick_params(labelsize=fs)
        if i == 0:
            ax.set_ylabel("units", fontsize=fs)
            ax.legend(fontsize=fs)
    return _save(fig, path)


def save_class_activations(path, activations: dict[str, torch.Tensor], classes: list[int], *,
                           cell: int = 280) -> Path:
    """GCNet Figure 6: one panel per block (keys), the class means ``(K, C)`` of its channel
    activations over the channel index, one line per class in ``classes``. The PNG is
    :func:`panels_size` ``(blocks, cell)``."""
    if not activations:
        raise ArgumentError("expected at least one block of class activations")
    width, height = panels_size(len(activations), cell)
    fig = _figure(width, height)
    fs = max(6, cell // 32)
    for i, (name, means) in enumerate(activations.items()):
        if any(not 0 <= k < means.shape[0] for k in classes):
            raise ArgumentError(f"classes must be in [0, {means.shape[0] - 1}], got {classes}")
        ax = _panel(fig, i, len(activations))
        for k in classes:
            ax.plot(np.arange(means.shape[1]), means[k].detach().double().cpu().numpy(), linewidth=0.8,
                    label=f"class {k}")
        ax.set_title(name, fontsize=fs)
        ax.set_xlabel("channel", fontsize=fs)
        ax.tick_params(labelsize=fs)
        if i == 0:
            ax.set_ylabel("mean activation", fontsize=fs)
            ax.legend(fontsize=fs)
    return _save(fig, path)
