"""Pretrained weights from a hub or a URL, checked before anything is downloaded.

timm reads a backbone's ImageNet weights from the Hugging Face Hub (or a URL), torchvision from its
URL; offline, each waits on retries and time-outs and ends in a long traceback. :func:`check_hub_weights`
and :func:`check_url_weights` first look in the local cache (a cached hub file is then read from there,
without asking the hub for a newer revision); when the file is not there they fail in
seconds with one line (:class:`WeightsUnavailableError`) naming the repository or URL and how to give a
local file instead, when ``HF_HUB_OFFLINE`` is set or the host does not answer within
:data:`CONNECT_TIMEOUT` seconds. :func:`weights_mismatch` words a weights file of another architecture.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from urllib.parse import urlparse

import torch
from huggingface_hub import constants, try_to_load_from_cache

from glore.errors import GloreError

CONNECT_TIMEOUT = 3.0          # seconds to open a connection to the hub or the weights' host
_TRUE = ("1", "on", "yes", "true")


class WeightsUnavailableError(GloreError, OSError):
    """Pretrained weights that are neither cached nor downloadable now; the message names a local file
    option instead."""


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` (read now, also when set after ``huggingface_hub`` was imported)."""
    value = os.environ.get("HF_HUB_OFFLINE")
    if value is not None:
        return value.strip().lower() in _TRUE
    return bool(constants.HF_HUB_OFFLINE)


def _hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or constants.ENDPOINT


def _hub_cache() -> str:
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return constants.HF_HUB_CACHE


def reachable(url: str, timeout: float = CONNECT_TIMEOUT) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` seconds."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def check_hub_weights(repo_id: str, filenames: Iterable[str], *, model: str, local_option: str) -> str | None:
    """The cached file of the first of ``filenames`` of ``repo_id`` that is in the local cache (read
    it from there: the hub is not asked again); None when none is cached and the hub answers; else
    :class:`WeightsUnavailableError` naming the repository and ``local_option``."""
    cache = _hub_cache()
    for name in filenames:
        cached = try_to_load_from_cache(repo_id, name, cache_dir=cache)
        if isinstance(cached, str):
            return cached
    endpoint = _hub_endpoint()
    if hub_offline():
        why = "HF_HUB_OFFLINE is set"
    elif not reachable(endpoint):
        why = f"{endpoint} does not answer within {CONNECT_TIMEOUT:g} s"
    else:
        return None
    raise WeightsUnavailableError(
        f"pretrained weights of {model} are not in the local cache ({cache}) and cannot be downloaded "
        f"({why}): Hugging Face repository {repo_id!r}; pass a local file instead, {local_option}")


def check_url_weights(url: str, *, model: str, local_option: str) -> None:
    """Nothing when ``url``'s file is in torch's hub cache or its host answers; else
    :class:`WeightsUnavailableError` naming the URL and ``local_option``."""
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(url).path))
    if os.path.isfile(cached) or reachable(url):
        return
    raise WeightsUnavailableError(
        f"pretrained weights of {model} are not in the local cache ({cached}) and {urlparse(url).hostname} does "
        f"not answer within {CONNECT_TIMEOUT:g} s: {url}; pass a local file instead, {local_option}")


def weights_mismatch(path: str, model: str, own: Iterable[str], state: dict, own_shapes: dict | None = None,
                     shown: int = 3) -> str:
    """One line: how the names (and shapes) of a weights file differ from a model's."""
    own = list(own)
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in set(own)]
    mismatched = [k for k in state if own_shapes and k in own_shapes and tuple(state[k].shape) != own_shapes[k]]

    def first(names):
        return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")

    parts = [f"{label} {len(names)} ({first(names)})" for label, names in
             (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mismatched)) if names]
    return (f"weights file {path!r} does not fit {model}: " + "; ".join(parts or ["the tensors do not load"])
            + f"; expected weights of {model} (a state dict of {len(own)} tensors)")
