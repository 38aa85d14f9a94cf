"""A training step in several forward/backward passes is the same Adam step as in one pass.

``ModelConfig.micro_batch_frames`` (automatic on the CPU at large N) splits a batch of windows
into passes whose gradients add up; the loss keeps the whole batch's normalisation, the
rollout windows and the regularisers counted once.
"""

from __future__ import annotations

import numpy as np
import torch

from napari_mesoscale.model import fit_mesoscale
from napari_mesoscale.model.config import ModelConfig
from napari_mesoscale.model.training import RunOptions, micro_batches
from napari_mesoscale.synth import make_toy_brain


def _fit(brain, **options):
    torch.set_num_threads(1)
    return fit_mesoscale(
        brain.activity,
        brain.positions,
        connectome=brain.adjacency,
        stimulus=brain.stimulus,
        epochs=2,
        seed=0,
        device="cpu",
        batch_frames=16,
        rollout=3,
        rollout_frames=6,
        patience=100,
        **options,
    )


def test_micro_batches_give_the_same_training():
    brain = make_toy_brain(n_neurons=60, n_frames=160, render=None, em=False, seed=1)
    whole = _fit(brain)
    split = _fit(brain, micro_batch_frames=5)  # passes of 5, 5, 5, 1 windows; rollout in 2
    for key, value in whole.net.state_dict().items():
        np.testing.assert_allclose(
            split.net.state_dict()[key].numpy(), value.numpy(), rtol=1e-3, atol=1e-5, err_msg=key
        )
    assert np.isclose(split.scores["test_mse"], whole.scores["test_mse"], rtol=1e-4)
    for column in ("train_prediction", "train_rollout", "train_entropy", "train_total"):
        np.testing.assert_allclose(split.history[column], whole.history[column], rtol=1e-4)


def test_automatic_passes_only_split_large_cpu_batches():
    cfg = ModelConfig()
    cpu, gpu = RunOptions(torch.device("cpu")), RunOptions(torch.device("cuda"))
    assert micro_batches(32, 300, 4, cfg, cpu) == [(0, 32)]  # the toy brain: one pass
    passes = micro_batches(32, 71_721, 4, cfg, cpu)  # zebrafish scale: 7 windows a pass
    assert passes[0] == (0, 7) and passes[-1] == (28, 32) and len(passes) == 5
    assert micro_batches(32, 71_721, 4, cfg, gpu) == [(0, 32)]
    assert micro_batches(32, 300, 4, cfg.replace(micro_batch_frames=10), gpu)[-1] == (30, 32)
