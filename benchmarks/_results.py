"""One writer for every benchmark's JSON results: atomic, numpy values made plain."""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
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


def dev_brain_parser(doc: str, seed_base: int, brains: int = 40) -> argparse.ArgumentParser:
    """The options of a study over dev zoo brains: ``--seed-base``, ``--brains``,
    ``--neurons``, ``--frames``, ``--heterogeneity`` and ``--out`` (add the study's own)."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--seed-base", type=int, default=seed_base)
    parser.add_argument("--brains", type=int, default=brains)
    parser.add_argument("--neurons", type=int, default=240)
    parser.add_argument("--frames", type=int, default=1500)
    parser.add_argument("--heterogeneity", type=float, default=0.0)
    parser.add_argument("--out", required=True)
    return parser


def seeded_study_parser(
    doc: str, first_seed: int = 1000, brains: int = 40
) -> argparse.ArgumentParser:
    """The options of a study over sets of dev zoo brains: ``--first-seed``, ``--brains`` (per
    set) and ``--out``."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--first-seed", type=int, default=first_seed)
    parser.add_argument("--brains", type=int, default=brains)
    parser.add_argument("--out", required=True)
    return parser


def run_brains(
    args: argparse.Namespace,
    run_one: Callable[[int], dict],
    describe: Callable[[dict], str],
    summarise: Callable[[list[dict]], dict],
) -> dict:
    """``run_one(b)`` for b = 0 .. ``args.brains`` - 1, one printed line per brain; the JSON
    ``{"args", **summarise(rows), "brains", run record}`` written to ``args.out``; the summary
    printed. Returns the result."""
    t0, cpu0, load = time.perf_counter(), time.process_time(), os.getloadavg()
    rows = []
    for b in range(args.brains):
        rows.append(run_one(b))
        print(describe(rows[-1]), flush=True)
    summary = summarise(rows)
    result = {"args": vars(args), **summary, "brains": rows, **run_record(t0, cpu0, load)}
    write_json(args.out, result)
    print(*summary.values(), sep="\n")
    return result
