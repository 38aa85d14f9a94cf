"""One writer for every benchmark's JSON results: atomic, numpy values made plain."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from napari_mesoscale.io import atomic_path
from napari_mesoscale.io.bundle import to_jsonable


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` (temporary file beside it, then rename)."""
    path = Path(path)
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(to_jsonable(obj), indent=2) + "\n")
    return path
