"""Cost of the connectome-wiring steps of the default initialisation against the number of neurons.

``ModelConfig``'s defaults ``wiring_features=2, wiring_scope="subcircuit"`` add four steps to
the initialisation when a connectome is given: the per-neuron wiring signature
(:func:`~napari_mesoscale.model.initialise.wiring_features`), the loop-wired moves
(:func:`~napari_mesoscale.model.initialise.move_to_wired_community`), the split of every
community into its sub-circuits (:func:`~napari_mesoscale.model.initialise.split_communities`)
and the sub-circuits' signatures
(:func:`~napari_mesoscale.model.initialise.community_wiring_features`). This times each on a
synthetic signed connectome of local circuits (instances of 10–40 neurons wired densely
within, a few random edges between; correlation communities of about two instances each), at
1k / 10k / 100k neurons: wall and CPU seconds, and the growth per 10× neurons. Writes
``benchmarks/results/wiring_init_cost.json``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/wiring_init_cost.py --neurons 1000 10000 100000
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from _results import write_json

RESULTS = Path(__file__).parent / "results" / "wiring_init_cost.json"


def synthetic_connectome(n: int, seed: int = 0) -> tuple[sp.csr_matrix, np.ndarray]:
    """(N, N) signed adjacency of local circuits and (N,) communities of ~2 circuits each."""
    rng = np.random.default_rng(seed)
    sizes = []
    while sum(sizes) < n:
        sizes.append(int(rng.integers(10, 41)))
    sizes[-1] -= sum(sizes) - n
    instance = np.repeat(np.arange(len(sizes)), sizes)
    rows, cols, vals = [], [], []
    start = 0
    for m in sizes:
        k = max(1, int(0.3 * m * (m - 1)))
        a, b = rng.integers(0, m, k), rng.integers(0, m, k)
        keep = a != b
        rows.append(start + a[keep])
        cols.append(start + b[keep])
        sign = np.where(rng.random(keep.sum()) < 0.3, -1.0, 1.0)
        vals.append(sign * rng.integers(1, 6, keep.sum()))
        start += m
    between = 2 * n  # two random edges per neuron between circuits
    rows.append(rng.integers(0, n, between))
    cols.append(rng.integers(0, n, between))
    vals.append(rng.integers(1, 3, between).astype(float))
    r, c, v = (np.concatenate(x) for x in (rows, cols, vals))
    adjacency = sp.csr_matrix((v, (r, c)), shape=(n, n))
    adjacency.setdiag(0)
    adjacency.eliminate_zeros()
    return adjacency, instance // 2


def time_steps(n: int) -> dict:
    from napari_mesoscale.model.config import ModelConfig
    from napari_mesoscale.model.initialise import (
        community_wiring_features,
        move_to_wired_community,
        split_communities,
        wiring_features,
    )

    cfg = ModelConfig()
    adjacency, communities = synthetic_connectome(n)
    out: dict = {
        "neurons": n,
        "edges": int(adjacency.nnz),
        "communities": int(communities.max() + 1),
    }
    steps = {
        "wiring_features": lambda: wiring_features(adjacency),
        "move_to_wired_community": lambda: move_to_wired_community(
            adjacency, communities, cfg.subcircuit_move_ratio, cfg.subcircuit_move_share
        ),
        "split_communities": lambda: split_communities(
            adjacency,
            communities,
            min_size=cfg.subcircuit_min_size,
            density_ratio=cfg.subcircuit_density_ratio,
            resolution=cfg.subcircuit_resolution,
        ),
    }
    for name, step in steps.items():
        t0, c0 = time.perf_counter(), time.process_time()
        result = step()
        out[name] = {"s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}
        if name == "split_communities":
            parts = result
    t0, c0 = time.perf_counter(), time.process_time()
    community_wiring_features(adjacency, parts)
    out["community_wiring_features"] = {
        "s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
    }
    out["parts"] = int(parts.max() + 1)
    out["total_cpu_s"] = sum(v["cpu_s"] for v in out.values() if isinstance(v, dict))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    result: dict = {"benchmark": "wiring_init_cost", "load_before": os.getloadavg(), "runs": []}
    for n in args.neurons:
        result["runs"].append(time_steps(n))
        print(result["runs"][-1])
    runs = result["runs"]
    result["growth_per_10x"] = [
        b["total_cpu_s"] / a["total_cpu_s"] for a, b in zip(runs, runs[1:], strict=False)
    ]
    result["load_after"] = os.getloadavg()
    write_json(args.output, result)


if __name__ == "__main__":
    main()
