"""Benchmark: cost of the alternating assignment against N (linear?).

For N = 1k, 10k, 100k neurons (random positions at the toy brain's density, random activity,
4 filters, local-gather edges) this times one training step of the network (forward and
backward on ``--frames`` windows, best-slot routing) and one reassignment (``reassign`` over
``--frames`` frames, units of 20 neighbouring neurons). A few repetitions only; the median goes
to benchmarks/results/reassign_cost.json with the machine's load.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/reassign_cost.py
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from napari_mesoscale.connectome import receptive_field_grid
from napari_mesoscale.model.core import MesoscaleNet
from napari_mesoscale.model.initialise import local_edges
from napari_mesoscale.model.reassign import AssignmentUnits, reassign

HERE = Path(__file__).resolve().parent


def build(n: int, n_filters: int, seed: int = 0) -> tuple[MesoscaleNet, AssignmentUnits]:
    rng = np.random.default_rng(seed)
    side = (n / 0.0005) ** (1 / 3)  # about one neuron per 2,000 µm³
    positions = rng.uniform(0, side, size=(n, 3))
    grid = receptive_field_grid(positions, diameter=80.0)
    edges = local_edges(positions, 40.0, 32)
    cand = grid.candidates
    relpos = np.where(
        grid.mask[..., None], (positions[:, None] - grid.centers[np.clip(cand, 0, None)]) / 80, 0
    )
    net = MesoscaleNet(
        torch.as_tensor(cand),
        torch.as_tensor(relpos, dtype=torch.float32),
        grid.n_fields,
        torch.as_tensor(edges),
        n_filters=n_filters,
        edge_weight_init=torch.full((edges.shape[1],), 0.01),
    )
    unit = np.argsort(np.argsort(positions[:, 0])) // 20
    slot = np.where(grid.mask, 0, 1).argmin(1)  # the first valid candidate
    return net, AssignmentUnits(unit.astype(np.int64), slot.astype(np.int64))


def time_it(fn, repeats: int, warmup: bool = True) -> float:
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def measure(n: int, args: argparse.Namespace) -> dict:
    net, units = build(n, args.filters)
    z = torch.randn(args.frames + 1, n)
    mask = torch.ones_like(z)

    def step() -> None:
        net.zero_grad(set_to_none=True)
        slots, pi = net.routed(1.0, "soft", "best_slot")
        _, pred = net.evaluate(z[:-1], None, pi, slots)
        ((pred - z[1:]) ** 2).mean().backward()

    def move() -> None:
        reassign(net, units, (z, mask, None), (0, args.frames + 1), (3.0, 3.0))

    return {
        "neurons": n,
        "step_seconds": time_it(step, args.repeats, not args.no_warmup),
        "reassign_seconds": time_it(move, args.repeats, not args.no_warmup),
        "n_fields": int(net.n_fields),
        "candidates_per_neuron": int(net.cand.shape[1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--neurons", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--filters", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-warmup", action="store_true", help="no untimed first call")
    parser.add_argument("--out", default=str(HERE / "results" / "reassign_cost.json"))
    args = parser.parse_args()
    from _results import write_json

    load_before = os.getloadavg()
    rows = []
    for n in args.neurons:
        rows.append(measure(n, args))
        print(rows[-1], flush=True)
    base = rows[0]
    for row in rows:
        scale = row["neurons"] / base["neurons"]
        row["step_per_neuron_vs_first"] = row["step_seconds"] / base["step_seconds"] / scale
        row["reassign_per_neuron_vs_first"] = (
            row["reassign_seconds"] / base["reassign_seconds"] / scale
        )
    write_json(
        args.out,
        {
            "args": vars(args),
            "load_before": load_before,
            "load_after": os.getloadavg(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "machine": platform.platform(),
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
