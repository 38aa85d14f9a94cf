"""Cost of the deterministic gathers in the model's training step (issue 18, item 9).

``MesoscaleNet`` gathers its per-(field, filter) parameters with ``index_select`` (backward:
``index_add_``, a fixed summation order) instead of ``table[index]`` (backward: ``index_put_``
with accumulation, whose order on the CPU depends on the threads). This times one forward and
backward pass of the loss on a synthetic network with many repeated indices, both ways, with 1
and 2 torch threads, and checks whether repeated passes give bit-identical gradients.

Usage::

    python benchmarks/determinism.py

Writes ``benchmarks/results/determinism.json``.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "core" / "model"))
from test_determinism import _gradients, _net  # noqa: E402

from _results import write_json  # noqa: E402
from napari_mesoscale.model import core  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "determinism.json"
SHAPE = {"n": 1000, "slots": 27, "fields": 400, "frames": 9}


def _indexing(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return table[index]  # the former gather: index_put_ accumulation in the backward


def _measure(threads: int, gather, repeats: int = 5) -> dict:
    core_rows = core._rows
    core._rows = gather
    torch.set_num_threads(threads)
    try:
        net = _net(SHAPE["n"], SHAPE["slots"], SHAPE["fields"])
        z = torch.randn(SHAPE["frames"], SHAPE["n"], generator=torch.Generator().manual_seed(1))
        cpu, wall, grads = [], [], []
        for _ in range(repeats):
            c0, w0 = time.process_time(), time.perf_counter()
            grads.append(_gradients(net, z))
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
    finally:
        core._rows = core_rows
    differ = sorted(
        {k for other in grads[1:] for k, g in grads[0].items() if not torch.equal(g, other[k])}
    )
    return {
        "threads": threads,
        "step_cpu_s_median": statistics.median(cpu),
        "step_wall_s_median": statistics.median(wall),
        "gradients_bit_identical": not differ,
        "differing_gradients": differ,
    }


def main() -> None:
    load = os.getloadavg()
    runs = {}
    for name, gather in (
        ("index_select (now)", core._rows),
        ("advanced indexing (before)", _indexing),
    ):
        runs[name] = [_measure(threads, gather) for threads in (1, 2)]
        print(name, runs[name], flush=True)
    write_json(
        RESULTS,
        {
            "benchmark": "determinism",
            "shape": SHAPE,
            "step": "loss forward + backward of MesoscaleNet.evaluate (one-step and rollout)",
            "runs": runs,
            "machine": {
                "cpus": os.cpu_count(),
                "load_before": load,
                "load_after": os.getloadavg(),
                "python": platform.python_version(),
                "torch": torch.__version__,
            },
        },
    )


if __name__ == "__main__":
    main()
