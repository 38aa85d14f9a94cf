"""One writer for every benchmark's JSON results: atomic, numpy values made plain."""

from __future__ import annotations

import json
import os
import time
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


def run_record(t0: float, cpu0: float, load_before: tuple[float, ...]) -> dict:
    """Wall and CPU seconds since ``t0`` / ``cpu0`` (``time.perf_counter`` /
    ``time.process_time``), load before and now, and the OpenMP thread setting of a run."""
    return {
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - cpu0,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
