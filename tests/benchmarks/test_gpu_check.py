"""The device check runs end to end on CPU at tiny size, so that it cannot rot before a GPU run.

The GPU machine has neither dask nor zarr: the run here makes both unimportable. It is part of
the default suite (about 35 s on the 2-core machine when quiet, two sections at a time) so
that CI runs it.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = (
    "precision",
    "zebrafish_fit",
    "throughput_1m",
    "throughput",
    "zebrafish",
    "epoch_100k",
    "oom",
    "worker",
    "unet",
)


def test_gpu_check_tiny_writes_every_section(tmp_path):
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    for name in ("dask", "zarr"):
        (blocked / f"{name}.py").write_text(f"raise ImportError('{name} is not installed')\n")
    output = tmp_path / "gpu_check.json"
    env = dict(os.environ, PYTHONPATH=f"{blocked}{os.pathsep}{ROOT / 'src'}", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [
            sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--tiny", "--jobs", "2",
            "--output", output,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=2400,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(output.read_text())
    assert result["finished"] is True
    assert result["torch"] and "gpu" in result and result["sections"]["device"]["python"]
    sections = result["sections"]
    assert list(sections) == ["device", *SECTIONS]  # the order chosen, whatever ran first
    for name in SECTIONS:
        figures = sections[name]
        assert figures["status"] in ("ok", "skipped_on_cpu"), (name, figures)
        assert figures["section_s"] > 0 and result["section_wall_s"][name] > 0
    precision = sections["precision"]
    assert precision["fp32"]["test_mse"] > 0 and precision["bf16"]["epoch_s_median"] > 0
    fit = sections["zebrafish_fit"]  # the default configuration, end to end, every stage
    assert fit["whole_fit_s"] > 0 and fit["package_s"] > 0 and fit["train_s"] > 0, fit
    assert len(fit["epoch_s"]) == fit["epochs"] and fit["test_mse"] > 0, fit
    stages = " ".join(fit["stages_s"])
    for step in ("ridge", "correlations", "features", "k-means", "communities", "package"):
        assert step in stages, (step, fit["stages_s"])
    assert sections["throughput_1m"]["neuron_steps_per_s"] > 0
    runs = sections["throughput"]["runs"]
    assert runs and all(r["neuron_steps_per_s"] > 0 for r in runs)
    zebrafish = sections["zebrafish"]
    assert zebrafish["training"]["steps_run"] >= 3 and zebrafish["training"]["step_s"] > 0
    assert zebrafish["default_init"]["initialise_s"] > 0
    assert zebrafish["whole_fit_s_extrapolated_without_packaging"] > 0
    assert sections["epoch_100k"]["epoch_s"] > 0
    worker = sections["worker"]
    assert all(worker[k]["steps_per_s"] > 0 for k in ("main_thread", "thread", "subprocess"))
    assert sections["unet"]["steps_per_s"] > 0


def test_sections_side_by_side_are_refused_on_a_gpu_run(capsys):
    """``--jobs`` above 1 would put sections on one GPU together: only CPU checks take it."""
    import pytest

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    with pytest.raises(SystemExit):
        # were it not refused, the tiny budget skips every section and no SystemExit comes
        gpu_check.main(["--jobs", "2", "--only", "oom", "--budget-s", "6", "--output", os.devnull])
    assert "--jobs above 1 is for --tiny" in capsys.readouterr().err
