"""Small shared helpers of the connectome package: progress callbacks, table reading, row lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

ProgressCallback = Callable[[dict[str, Any]], Any] | None


class ConnectomeCancelled(RuntimeError):
    """Raised by a core loop when its ``callback`` returned ``False``."""


def report(callback: ProgressCallback, fraction: float, message: str, **extra: Any) -> None:
    """Call ``callback`` with a progress dictionary; stop the work if it returns ``False``."""
    if callback is None:
        return
    info = {"fraction": float(min(max(fraction, 0.0), 1.0)), "message": message, **extra}
    if callback(info) is False:
        raise ConnectomeCancelled(f"cancelled by the callback during: {message}")


def rows_text(rows: np.ndarray, limit: int = 10) -> str:
    """``"3 rows: [1, 5, 9]"`` style text naming (at most ``limit``) offending rows."""
    rows = np.asarray(rows).ravel()
    shown = rows[:limit].tolist()
    more = f" (and {rows.size - limit} more)" if rows.size > limit else ""
    return f"{rows.size} row(s): {shown}{more}"
