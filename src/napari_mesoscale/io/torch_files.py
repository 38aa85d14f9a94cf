"""Loading ``torch.save`` files without executing code from them.

``torch.load(..., weights_only=False)`` unpickles arbitrary objects, so a crafted checkpoint
runs code on load. Everything napari-mesoscale saves with ``torch.save`` (fits, training
checkpoints, soma detectors) holds only tensors and plain Python values, which the
``weights_only=True`` unpickler accepts; anything else is refused with a message naming the file.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["load_torch_file"]


def load_torch_file(
    path: str | os.PathLike,
    what: str,
    *,
    map_location: Any = "cpu",
    required: Iterable[str] = (),
) -> dict[str, Any]:
    """Load a ``torch.save`` dictionary safely (``weights_only=True``) and check its keys.

    Parameters
    ----------
    path : path-like
        The file.
    what : str
        What the file should be (``"saved fit"``, ``"training checkpoint"``), for messages.
    map_location : optional
        Passed to :func:`torch.load`.
    required : iterable of str
        Keys the dictionary must have.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When the file is empty, truncated, not a torch file, holds anything but tensors and
        plain values (possible code execution: refused), is not a dictionary, or lacks a
        required key.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty; it is not a {what}.")
    if not _looks_like_torch_file(path):
        raise ValueError(
            f"{path} is not a readable {what}: it is no file written by torch.save (neither "
            "its zip archive nor its older pickle format)."
        )
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if "Weights only load failed" not in str(error):
            raise ValueError(f"{path} is not a readable {what} ({_reason(error)}).") from error
        if "Unsupported operand" in str(error):  # damaged bytes, not an object it would build
            raise ValueError(
                f"{path} is not a readable {what} (damaged, or in a pickle format the safe "
                f"loader does not read: {_reason(error)})."
            ) from error
        raise ValueError(
            f"{path} is refused as a {what}: it holds objects other than tensors and plain "
            f"values, which could run code when loaded ({_reason(error)})."
        ) from error
    except (RuntimeError, EOFError, OSError, KeyError, zipfile.BadZipFile, ValueError) as error:
        raise ValueError(
            f"{path} is not a readable {what} (truncated or not written by torch.save: "
            f"{_reason(error)})."
        ) from error
    if not isinstance(payload, dict):
        raise ValueError(
            f"{path} is not a {what}: it holds a {type(payload).__name__}, not a dict."
        )
    missing = [key for key in required if key not in payload]
    if missing:
        raise ValueError(f"{path} is not a complete {what}: missing {', '.join(missing)}.")
    return payload


#: what torch.save's older format pickles first: its magic number, as a 10-byte LONG1
_LEGACY_MAGIC = b"\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def _looks_like_torch_file(path: Path) -> bool:
    """A torch.save zip archive, or the older format: a pickle (0x80) of torch's magic number.

    Random bytes that happen to open with 0x80, and pickles not written by torch.save, fail
    the weights-only unpickler as if they held objects that could run code.
    """
    if zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as handle:
        head = handle.read(32)  # protocol, an optional frame header, then the magic number
    return head.startswith(b"\x80") and _LEGACY_MAGIC in head


def _reason(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    for line in lines:
        if "Unsupported global" in line:  # torch names the class the file tried to load
            return line.split(" To allowlist")[0]
    return (lines[0] if lines else type(error).__name__)[:200]
