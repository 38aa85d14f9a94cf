"""Torch device choice and array conversion for motion correction."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def pick_device(device: str | None) -> torch.device:
    """``"auto"``: the first CUDA GPU when there is one, else the CPU (the FFTs need no MPS);
    a named device is checked by the package's one resolver, with its clear message."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    from napari_mesoscale.model.fit import resolve_device

    return resolve_device(device)


def to_tensor(frames: Any, device: torch.device) -> torch.Tensor:
    """Frames (numpy, dask slice or zarr slice) as a float32 tensor on ``device``."""
    array = np.asarray(frames, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(array)).to(device)
