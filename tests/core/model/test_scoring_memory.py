"""Packaging a fit (held-out errors of every candidate pair) must not double its memory.

The scores were computed 2**24 (frame, neuron, pair) evaluations at a time: at 20k neurons x
500 frames training peaked near 5 GiB and scoring at 10 GiB. Here a fit's stages run in a
subprocess; the growth of the peak resident memory (VmHWM, reset before each stage) during
packaging must stay well below training's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to reset the peak RSS"
)

SCRIPT = r"""
import json, sys
from pathlib import Path

import torch

from napari_mesoscale.model.config import ModelConfig
from napari_mesoscale.model.fit import FitCancelled, _package, _train, resolve_device
from napari_mesoscale.model.initial_model import initialise_model
from napari_mesoscale.model.prepare import prepare_data
from napari_mesoscale.model.training import RunOptions
from napari_mesoscale.progress import Progress
from napari_mesoscale.synth.zebrafish import zebrafish_scale_activity

torch.set_num_threads(1)
MIB = 2**20


def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024 / MIB


def reset_peak():
    Path("/proc/self/clear_refs").write_text("5")


n, frames, steps = (int(a) for a in sys.argv[1:4])
sim = zebrafish_scale_activity(n, frames, seed=0)
cfg = ModelConfig().merged(
    epochs=1, init="random", group_init=False, smooth_features=False, edge_init="connectome"
)
data = prepare_data(sim.activity, sim.positions, None, cfg)
init = initialise_model(data, cfg, sim.connectome, 0)
taken = []


def stop_after(info):
    if info.get("stage") == "train":
        taken.append(1)
        return len(taken) < steps
    return True


run = RunOptions(resolve_device("cpu"), 0, None, False)
reset_peak()
before_train = status("VmRSS")
training = _train(init, data, run, Progress.wrap(stop_after, FitCancelled))
train_peak = status("VmHWM")
reset_peak()
before_package = status("VmRSS")
fit = _package(init, data, training, run, {})
package_peak = status("VmHWM")
print(json.dumps({
    "train_mib": train_peak - before_train,
    "package_mib": package_peak - before_package,
    "train_peak_mib": train_peak,
    "package_peak_mib": package_peak,
    "pairs_per_neuron": int(init.grid.candidates.shape[1] * cfg.n_filters),
    "test_mse": float(fit.scores["test_mse"]),
}))
"""


def test_scoring_memory_stays_below_training(tmp_path):
    """5,000 neurons x 160 frames: two training steps grow memory by 1.1-1.5 GiB; packaging
    (every candidate pair over the validation block) grew it by 1,039 MiB more (2**24
    evaluations per pass: peak 2.30 GiB against training's 1.90 GiB); streamed, 216-338 MiB."""
    script = tmp_path / "fit_stages.py"
    script.write_text(SCRIPT)
    src = Path(__file__).resolve().parents[3] / "src"
    env = {"PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, str(script), "5000", "160", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["package_mib"] < 0.5 * figures["train_mib"], figures
    assert figures["package_mib"] < 600, figures  # before: 1,039 MiB
    assert figures["test_mse"] < 1.5, figures
