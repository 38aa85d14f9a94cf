"""The device check runs end to end on CPU at tiny size, so that it cannot rot before a GPU run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("device", "precision", "throughput", "epoch_100k", "zebrafish", "unet", "worker", "oom")


@pytest.mark.slow
def test_gpu_check_tiny_writes_every_section(tmp_path):
    output = tmp_path / "gpu_check.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gpu_check.py"),
            "--tiny",
            "--output",
            str(output),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(output.read_text())
    assert result["finished"] is True
    sections = result["sections"]
    assert set(SECTIONS) <= set(sections)
    for name in SECTIONS[1:]:
        figures = sections[name]
        assert "skipped" in figures or figures["status"] in ("ok", "skipped_on_cpu"), (
            name,
            figures,
        )
        assert "skipped" in figures or figures["section_s"] > 0
    precision = sections["precision"]
    if "skipped" not in precision:
        assert precision["fp32"]["test_mse"] > 0 and precision["bf16"]["epoch_s_median"] > 0
    throughput = sections["throughput"]
    if "skipped" not in throughput:
        assert any(r.get("neuron_steps_per_s", 0) > 0 for r in throughput["runs"])
