"""DistributedDataParallel under torchrun (gloo, 2 CPU processes) matches one process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import torch
    import torch.distributed as dist
    torch.set_num_threads(1)
    from napari_mesoscale.model import fit_mesoscale
    from napari_mesoscale.synth import make_toy_brain

    b = make_toy_brain(n_neurons=60, n_frames=160, render=None, em=False, seed=1)
    fit = fit_mesoscale(b.activity, b.positions, epochs=3, seed=4, device="cpu",
                        batch_frames=32, rollout=2, patience=100)
    rank = int(__import__("os").environ.get("RANK", "0"))
    if rank == 0:
        np.save(sys.argv[1], fit.predict(b.activity))
    """
)


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _torchrun_two(script, argument, timeout: int) -> None:
    """Run ``script argument`` in two processes under torchrun (gloo on CPU)."""
    torchrun = shutil.which("torchrun") or os.path.join(os.path.dirname(sys.executable), "torchrun")
    if not os.path.exists(torchrun):
        pytest.skip("torchrun not found")
    command = [torchrun, "--standalone", "--nproc_per_node=2", str(script), str(argument)]
    subprocess.run(command, check=True, env=ENV, timeout=timeout)


@pytest.mark.slow
def test_ddp_two_processes_match_one(tmp_path):
    script = tmp_path / "ddp_fit.py"
    script.write_text(SCRIPT)
    one = tmp_path / "one.npy"
    two = tmp_path / "two.npy"
    subprocess.run([sys.executable, str(script), str(one)], check=True, env=ENV, timeout=600)
    _torchrun_two(script, two, timeout=600)
    a, b = np.load(one), np.load(two)
    np.testing.assert_allclose(a[1:], b[1:], rtol=1e-3, atol=1e-4)


CANCEL_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import torch
    torch.set_num_threads(1)
    from napari_mesoscale.model import fit_mesoscale
    from napari_mesoscale.synth import make_toy_brain

    b = make_toy_brain(n_neurons=40, n_frames=120, render=None, em=False, seed=1)
    seen = []

    def cancel_in_second_epoch(info):
        if "step" not in info:  # prepare / initialise reports before training
            return True
        seen.append((info["epoch"], info["step"]))
        return not (info["epoch"] == 1 and info["step"] == 0)

    fit = fit_mesoscale(b.activity, b.positions, epochs=6, seed=4, device="cpu",
                        batch_frames=16, rollout=2, callback=cancel_in_second_epoch)
    rank = os.environ.get("RANK", "0")
    with open(f"{sys.argv[1]}.{rank}", "w") as out:
        out.write(f"{fit.stopped} {len(fit.history)} {len(seen)}")
    """
)


def test_ddp_cancel_on_rank_zero_stops_every_rank(tmp_path):
    """The callback runs on rank 0 only; a cancel there must not leave rank 1 waiting."""
    script = tmp_path / "ddp_cancel.py"
    script.write_text(CANCEL_SCRIPT)
    _torchrun_two(script, tmp_path / "stopped", timeout=300)
    for rank in ("0", "1"):
        stopped, epochs_done, _ = (tmp_path / f"stopped.{rank}").read_text().split()
        assert stopped == "cancelled"
        assert int(epochs_done) == 1  # the first epoch completed, the second was cut
    *_, calls = (tmp_path / "stopped.0").read_text().split()
    assert int(calls) > 1
