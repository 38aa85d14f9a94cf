"""Benchmark: cost of the motif discovery of ``assignment="em"`` and of a training step vs N.

For N = 1k, 10k, 100k neurons (the network of ``reassign_cost.py``: random positions at the toy
brain's density, 4 filters, local-gather edges, units of 20 neighbouring neurons; random
activity of ``--frames`` frames) this times ``discover_assignment`` once and one training step
(forward and backward on ``--batch`` windows, best-slot routing) once, as wall seconds and as
process CPU seconds (the machine is shared; CPU seconds are the load-robust figure). Steps
above ``--step-max-neurons`` are skipped (one step at 100k took 322 s in reassign_cost_100k.json).
Rows go to benchmarks/results/motif_em_cost.json with the machine's load.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/motif_em_cost.py
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from napari_mesoscale.model.config import ModelConfig
from napari_mesoscale.model.reassign import discover_assignment
from reassign_cost import build

HERE = Path(__file__).resolve().parent


def timed(fn) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def measure(n: int, args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    net, units = build(n, args.filters)
    z = torch.randn(args.frames, n)
    mask = torch.ones_like(z, dtype=torch.bool)
    cfg = ModelConfig(
        n_filters=args.filters, assignment="em", discover_motif_count=args.motif_count
    )
    row: dict = {"neurons": n, "units": int(units.n_units), "n_fields": int(net.n_fields)}
    figures: dict = {}

    def discover() -> None:
        figures.update(discover_assignment(net, units, (z, mask, None), (0, args.frames), cfg))

    row["discover_seconds"], row["discover_cpu_seconds"] = timed(discover)
    row["discover_n_motifs"] = figures.get("n_motifs")
    # the frames _em_data draws (its budget of 2**23 feature elements caps them at large N)
    budget = max(16, 2**23 // max(1, n * net.n_features))
    row["discover_frames"] = int(min(2 * cfg.reassign_frames, budget, args.frames - 1))
    if n > args.step_max_neurons:
        return row
    zb = z[: args.batch + 1]

    def step() -> None:
        net.zero_grad(set_to_none=True)
        slots, pi = net.routed(1.0, "soft", "best_slot")
        _, pred = net.evaluate(zb[:-1], None, pi, slots)
        ((pred - zb[1:]) ** 2).mean().backward()

    row["step_seconds"], row["step_cpu_seconds"] = timed(step)
    row["step_windows"] = args.batch
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--neurons", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--frames", type=int, default=400, help="frames of random activity")
    parser.add_argument("--batch", type=int, default=32, help="windows in the timed step")
    parser.add_argument("--filters", type=int, default=4)
    parser.add_argument("--step-max-neurons", type=int, default=10_000)
    parser.add_argument(
        "--motif-count",
        choices=("n_filters", "profile_cut"),
        default="n_filters",
        help="discover_motif_count (profile_cut: --filters is the upper bound)",
    )
    parser.add_argument("--out", default=str(HERE / "results" / "motif_em_cost.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    from _results import write_json

    load_before = os.getloadavg()
    rows: list[dict] = []
    for n in args.neurons:
        rows.append(measure(n, args))
        print(rows[-1], flush=True)
        base = rows[0]
        for row in rows:
            scale = row["neurons"] / base["neurons"]
            for key in ("discover_cpu_seconds", "step_cpu_seconds"):
                if key in row and key in base:
                    row[key.replace("_seconds", "_per_neuron_vs_first")] = (
                        row[key] / base[key] / scale
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
