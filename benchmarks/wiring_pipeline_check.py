"""Does the wiring signature (``ModelConfig.wiring_features``) harm the calcium pipeline?

Runs :func:`~napari_mesoscale.workflow.run_pipeline` on the bundled sample (the demo's
pipeline, no viewer) and one realistic calcium brain of ``benchmarks/pipeline_calcium.py``
(``--preset realistic --seeds 0 --frames 600 --variants calcium``), each with the pipeline's
fit configuration as it is (wiring off) and with ``wiring_features`` added to it: motif and
domain ARI against the truth and the held-out one-step scores. Writes
``benchmarks/results/wiring_pipeline_check.json``.

Usage::

    python benchmarks/wiring_pipeline_check.py --weight 2
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from pathlib import Path

from _results import write_json

RESULTS = Path(__file__).parent / "results" / "wiring_pipeline_check.json"


@contextlib.contextmanager
def wiring(weight: float):
    """The pipeline's fit configuration with ``wiring_features=weight`` (0: unchanged)."""
    from napari_mesoscale import workflow

    saved = dict(workflow.PIPELINE_FIT_OVERRIDES)
    if weight > 0:
        workflow.PIPELINE_FIT_OVERRIDES["wiring_features"] = weight
    try:
        yield
    finally:
        workflow.PIPELINE_FIT_OVERRIDES.clear()
        workflow.PIPELINE_FIT_OVERRIDES.update(saved)


def demo_pipeline(weight: float) -> dict:
    from napari_mesoscale.napari._demo import run_sample_pipeline

    t0, c0 = time.perf_counter(), time.process_time()
    with wiring(weight):
        _, result = run_sample_pipeline(seed=0)
    keys = ("motif_ari", "domain_ari", "point_sources", "domains", "test_one_step")
    out = {k: result.summary.get(k) for k in keys}
    out.update(seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0)
    return out


def calcium_brain(weight: float) -> dict:
    from pipeline_calcium import run_movie

    with wiring(weight):
        return run_movie(0, 600, "realistic", 60, False, ("calcium",))


def main() -> None:
    import torch

    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weight", type=float, default=2.0)
    parser.add_argument("--parts", nargs="+", default=["demo", "calcium"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result: dict = {"weight": args.weight, "load_before": os.getloadavg()}
    runs = {"demo": demo_pipeline, "calcium": calcium_brain}
    for part in args.parts:
        for name, weight in (("off", 0.0), ("on", args.weight)):
            result[f"{part}_{name}"] = runs[part](weight)
            result["load_after"] = os.getloadavg()
            write_json(args.out, result)
            print(part, name, {k: v for k, v in result[f"{part}_{name}"].items() if "ari" in k})


if __name__ == "__main__":
    main()
