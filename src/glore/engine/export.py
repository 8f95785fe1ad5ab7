"""Export a trained network for deployment: ``glore export``.

:func:`export` rebuilds the network of a ``glore train`` checkpoint and writes it as

- ``onnx``: an ONNX model through ``torch.onnx.export(..., dynamo=True)`` (the ``torch.export``-based
  exporter), the batch dimension dynamic (and a segmenter's height and width); ``check`` runs it in
  ONNX Runtime on fresh random inputs of another batch size and compares with the network in PyTorch
  (``rtol=1e-3``, ``atol=1e-4``);
- ``pt2``: an ``ExportedProgram`` through ``torch.export.export`` and ``torch.export.save`` (read it with
  ``torch.export.load(path).module()``); ``check`` compares the loaded program with the network.

The example input follows the run's data: ``(B, C, H, W)`` images of the evaluation size, ``(B, C, T,
H, W)`` clips, a list of images for a detector. Classification networks with every block (GloRe, NL,
SNL, GC, SE), the segmenter and the video networks export to both formats. torchvision's Faster / Mask
R-CNN do not: their forward takes a list of images of any sizes and returns a list of dicts whose
lengths depend on the data (proposal filtering, ``batched_nms``), which ``torch.export`` cannot trace
into one graph; :class:`ExportError` says so.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from glore.data._options import dataset_option
from glore.data.distant_clips import DistantClips
from glore.data.distant_digits import DistantDigits
from glore.data.moving_digits import MovingDigits
from glore.data.seg_digits import SegDigits
from glore.errors import ArgumentError, GloreError, RunFolderError
from .runner import restore
from .schema import data_section, model_section

FORMATS = ("onnx", "pt2")
RTOL, ATOL = 1e-3, 1e-4


class ExportError(GloreError, RuntimeError):
    """A network that cannot be exported in the asked format, or whose export does not match it."""


def example_input(cfg: dict, batch: int = 2) -> torch.Tensor:
    """A random input of the shape the run's network reads at evaluation (``batch`` samples)."""
    data, model = data_section(cfg.get("task", "classification"), cfg["data"]), cfg["model"]
    name, options = data.name, dict(data.options or {})
    def option(dataset, key):
        return int(dataset_option(dataset, options, key))

    shapes = {
        "distant-digits": lambda: (int(model.get("in_chans") or 1), option(DistantDigits, "canvas"),
                                   option(DistantDigits, "canvas")),
        "imagefolder": lambda: (3, data.image_size, data.image_size),
        "seg-digits": lambda: (3, option(SegDigits, "canvas"), option(SegDigits, "canvas")),
        "cityscapes": lambda: (3, *_pair(data.crop_size)),
        "kinetics": lambda: (3, int(data.num_frames), int(data.crop), int(data.crop)),
        "moving-digits": lambda: (option(MovingDigits, "channels"), option(MovingDigits, "num_frames"),
                                  option(MovingDigits, "size"), option(MovingDigits, "size")),
        "distant-clips": lambda: (int(model.get("in_chans") or 1), option(DistantClips, "num_frames"),
                                  option(DistantClips, "canvas"), option(DistantClips, "canvas")),
    }
    if name not in shapes:
        raise ArgumentError(f"glore export has no example input for data.name={name!r}; expected one of "
                            f"{', '.join(shapes)}")
    return torch.rand(batch, *shapes[name]())


def _pair(size) -> tuple[int, int]:
    return (int(size[0]), int(size[1])) if isinstance(size, (list, tuple)) else (int(size), int(size))


def dynamic_shapes(task: str, example: torch.Tensor) -> tuple:
    """The batch dimension dynamic; a segmenter's height and width too."""
    dims = {0: torch.export.Dim("batch", min=1, max=1024)}
    if task == "segmentation":
        dims.update({2: torch.export.Dim("height", min=32, max=4096), 3: torch.export.Dim("width", min=32, max=4096)})
    return (dims,)


def trace_detector(network: torch.nn.Module, cfg: dict) -> None:
    """Try ``torch.export`` on a detector; :class:`ExportError` with the reason it fails."""
    size = model_section("detection", cfg["model"]).test_size
    try:
        with contextlib.redirect_stderr(io.StringIO()):        # torch.export prints the partial graph there
            torch.export.export(network, ([torch.rand(3, size, size)],))
    except Exception as exc:
        raise ExportError("cannot export the detector: the post-processing of torchvision's Faster / Mask R-CNN "
                          "keeps a number of boxes that depends on the data (proposal filtering, batched_nms), "
                          f"which torch.export cannot trace into one graph ({type(exc).__name__}: {_reason(exc)})"
                          ) from exc
    raise ExportError("the detector traced with torch.export, but glore export does not write detectors yet")


def _reason(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else type(exc).__name__


def _write_atomic(path: Path, write) -> None:
    """``write(tmp)`` then ``os.replace`` onto ``path``: a failed export leaves an earlier file intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_network(network: torch.nn.Module, example: torch.Tensor, output: str | os.PathLike, fmt: str, *,
                   task: str = "classification", check: bool = False, what: str = "the network") -> dict:
    """Write ``network`` (in eval mode) traced on ``example`` to ``output`` as ``fmt``; with ``check``
    compare the written model with ``network`` on new inputs. Returns ``{"format", "output",
    "max_abs_diff"}`` (the difference only when checked)."""
    if fmt not in FORMATS:
        raise ArgumentError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    network = network.eval()
    output = Path(output)
    shapes = dynamic_shapes(task, example)
    try:
        if fmt == "onnx":
            def write(tmp):
                torch.onnx.export(network, (example,), tmp, dynamo=True, dynamic_shapes=shapes,
                                  input_names=["input"], output_names=["output"], verbose=False)
        else:
            with contextlib.redirect_stderr(io.StringIO()):
                program = torch.export.export(network, (example,), dynamic_shapes=shapes)

            def write(tmp):
                torch.export.save(program, tmp)
        # the exporter's progress lines (stdout) and, on a failure, torch.export's partial graph (stderr)
        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            _write_atomic(output, write)
    except GloreError:
        raise
    except Exception as exc:
        raise ExportError(f"cannot export {what} to {fmt}: {type(exc).__name__}: {_reason(exc)}") from exc
    result = {"format": fmt, "output": str(output), "max_abs_diff": None}
    if check:
        result["max_abs_diff"] = check_export(network, output, fmt, example, task=task, what=what)
    return result


def check_inputs(example: torch.Tensor, task: str) -> list[torch.Tensor]:
    """Inputs the export was not traced on: batch 1 and 3, and for a segmenter another size."""
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.rand((batch, *example.shape[1:]), generator=generator) for batch in (1, 3)]
    if task == "segmentation":
        h, w = example.shape[2:]
        inputs.append(torch.rand((1, example.shape[1], h + 16, w + 32), generator=generator))
    return inputs


def check_export(network: torch.nn.Module, output: str | os.PathLike, fmt: str, example: torch.Tensor, *,
                 task: str = "classification", what: str = "the network") -> float:
    """The largest difference between the exported model (ONNX Runtime, or the loaded ``pt2``
    program) and ``network`` over :func:`check_inputs`; :class:`ExportError` beyond ``rtol=1e-3``,
    ``atol=1e-4``."""
    if fmt == "onnx":
        runtime = onnxruntime.InferenceSession(os.fspath(output), providers=["CPUExecutionProvider"])
        name = runtime.get_inputs()[0].name

        def run(x):
            return runtime.run(None, {name: x.numpy()})[0]
    else:
        module = torch.export.load(os.fspath(output)).module()

        def run(x):
            with torch.no_grad():
                return _tensor(module(x)).numpy()
    worst = 0.0
    for x in check_inputs(example, task):
        with torch.no_grad():
            expected = _tensor(network(x)).numpy()
        got = run(x)
        if got.shape != expected.shape:
            raise ExportError(f"the {fmt} export of {what} gives shape {got.shape} for input {tuple(x.shape)}, "
                              f"PyTorch {expected.shape}")
        diff = float(np.abs(got - expected).max()) if expected.size else 0.0
        worst = max(worst, diff)
        if not np.allclose(got, expected, rtol=RTOL, atol=ATOL):
            raise ExportError(f"the {fmt} export of {what} differs from PyTorch by up to {diff:.3g} for input "
                              f"{tuple(x.shape)} (allowed rtol={RTOL}, atol={ATOL})")
    return worst


def _tensor(out) -> torch.Tensor:
    if isinstance(out, dict):
        out = out["out"]
    return out.detach().float()


def export(checkpoint: str | os.PathLike, fmt: str, output: str | os.PathLike, *, check: bool = False,
           overwrite: bool = False) -> dict:
    """Export the network of a ``glore train`` checkpoint (see the module docstring)."""

    if fmt not in FORMATS:
        raise ArgumentError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    output = Path(output)
    if output.is_dir():
        raise RunFolderError(f"--output {str(output)!r} is a folder; expected a file name such as model.{fmt}")
    if output.exists() and not overwrite:
        raise RunFolderError(f"--output {str(output)!r} already exists; pass --overwrite to replace it")
    _, module, cfg = restore(checkpoint)
    task = cfg.get("task", "classification")
    network = module.model.eval()
    if task == "detection":
        trace_detector(network, cfg)
    what = f"{cfg['model'].get('name') or cfg['model'].get('backbone') or 'the network'} ({task})"
    return export_network(network, example_input(cfg), output, fmt, task=task, check=check, what=what)
