"""Small shared helpers of the connectome package: its cancel exception, row lists."""

from __future__ import annotations

import numpy as np

from napari_mesoscale.progress import Cancelled


class ConnectomeCancelled(Cancelled):
    """Raised by a core loop when its ``callback`` returned ``False`` (a :class:`Cancelled`)."""


def rows_text(rows: np.ndarray, limit: int = 10) -> str:
    """``"3 rows: [1, 5, 9]"`` style text naming (at most ``limit``) offending rows."""
    rows = np.asarray(rows).ravel()
    shown = rows[:limit].tolist()
    more = f" (and {rows.size - limit} more)" if rows.size > limit else ""
    return f"{rows.size} row(s): {shown}{more}"
