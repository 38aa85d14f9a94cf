"""benchmarks/motif_zoo_device.sh: brains in parallel processes, merged into one result.

Tiny brains, one epoch, no GRU (about 15 s on the 2-core machine); dask and zarr made
unimportable as on the GPU machine.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_parallel_zoo_merges_every_finished_brain(tmp_path):
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    for name in ("dask", "zarr"):
        (blocked / f"{name}.py").write_text(f"raise ImportError('{name} is not installed')\n")
    out = tmp_path / "zoo.json"
    env = dict(
        os.environ,
        PYTHONPATH=str(blocked),
        PYTHON=sys.executable,
        ZOO_PROCS="2",
        ZOO_BRAINS="3",
    )
    args = ["--seed-base", "7000", "--neurons", "60", "--frames", "200", "--epochs", "1"]
    args += ["--fits", "model", "--no-gru", "--families", "dev"]
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "motif_zoo_device.sh"), str(out), "300", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert [b["seed"] for b in result["brains"]] == [7000, 7001, 7002]
    assert result["unfinished"] == [] and result["parallel"]["brains_asked"] == 3
    assert result["args"]["device"] == "cpu" and len(result["runs"]) == 3
    for brain in result["brains"]:
        assert brain["model"]["mse"] > 0 and brain["connectome_linear"]["mse"] > 0
    assert result["summary"]["model"]["below_every_baseline"][1] == 3
