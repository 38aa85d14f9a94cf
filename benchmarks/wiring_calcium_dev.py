"""Which part of the wiring options moves the calcium path's initial motifs and domains?

The calcium path keeps the assignment at its initialisation, so its motif / domain ARI are
the initial network's. On the realistic-preset dev brains of
``benchmarks/pipeline_calcium.py`` (seeds 0 1 2 3 5, the bundled sample's settings), with
:func:`~napari_mesoscale.workflow.pipeline_config` plus each row's options, this computes the
initial motif and domain ARI of the detected cells (``calcium_init_ari.labels``), so that
the wiring signature alone (``wiring_features=2``, scope ``"neuron"``), the community scope
and the sub-circuit scope (with and without the loop-wired moves) are told apart without
training. Writes ``benchmarks/results/wiring_calcium_dev.json``.

Usage::

    python benchmarks/wiring_calcium_dev.py --frames 600 --seeds 0 1 2 3 5
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from _results import write_json

RESULTS = Path(__file__).parent / "results" / "wiring_calcium_dev.json"
ROWS = {
    "off": {"wiring_features": 0.0, "wiring_scope": "neuron"},
    "wiring_features=2": {"wiring_features": 2.0, "wiring_scope": "neuron"},
    "community": {"wiring_features": 2.0, "wiring_scope": "community"},
    "subcircuit": {"wiring_features": 2.0, "wiring_scope": "subcircuit"},
    "subcircuit, no moves": {
        "wiring_features": 2.0,
        "wiring_scope": "subcircuit",
        "subcircuit_move_ratio": 0.0,
    },
}


def main() -> None:
    import torch
    from sklearn.metrics import adjusted_rand_score as ari

    import calcium_init_ari as cia
    import napari_mesoscale.workflow as wf

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[600])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 5])
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    base = dict(wf.PIPELINE_FIT_OVERRIDES)
    out: dict = {"preset": "realistic", "seeds": args.seeds, "load_before": os.getloadavg()}
    t0, c0 = time.perf_counter(), time.process_time()
    for frames in args.frames:
        movies = [cia.load("realistic", frames, seed) for seed in args.seeds]
        for name, options in ROWS.items():
            wf.PIPELINE_FIT_OVERRIDES.update({**base, **options})
            rows = []
            for d in movies:
                motif, domain = cia.labels(d["dff"], d["pos"], d["adj"], d["stim"], True)
                rows.append(
                    [ari(d["motif"], motif[d["det"]]), ari(d["instance"], domain[d["det"]])]
                )
            wf.PIPELINE_FIT_OVERRIDES.clear()
            wf.PIPELINE_FIT_OVERRIDES.update(base)
            rows = np.array(rows)
            out[f"{frames} | {name}"] = {
                "per_brain_motif_domain": rows.round(4).tolist(),
                "median_motif_domain": np.median(rows, 0).round(4).tolist(),
            }
            print(frames, name, rows.round(3).tolist(), flush=True)
    out.update(
        seconds=time.perf_counter() - t0,
        cpu_seconds=time.process_time() - c0,
        load_after=os.getloadavg(),
    )
    write_json(args.output, out)


if __name__ == "__main__":
    main()
