"""The connectome's wiring signature in the assignment initialisation (``wiring_features``)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from napari_mesoscale.model import ModelConfig
from napari_mesoscale.model.initialise import wiring_features

SIZE = 10  # neurons per instance


def _adjacency(pre, post, weight, n):
    return sp.csr_matrix((np.asarray(weight, float), (pre, post)), shape=(n, n))


def test_signature_of_a_chain_and_of_a_reciprocal_triangle():
    # chain 0 -> 1 -> 2 (excitatory); triangle 3 <-> 4 <-> 5 <-> 3, neuron 5 inhibitory
    pre = [0, 1, 3, 4, 4, 5, 3, 5]
    post = [1, 2, 4, 3, 5, 4, 5, 3]
    weight = [2, 2, 1, 1, 1, -1, 1, -1]
    w = wiring_features(_adjacency(pre, post, weight, 6))
    clustering, sign_in, sign_out, reciprocity = w.T
    np.testing.assert_allclose(clustering, [0, 0, 0, 1, 1, 1])
    np.testing.assert_allclose(reciprocity, [0, 0, 0, 1, 1, 1])
    np.testing.assert_allclose(sign_out, [1, 1, 0, 1, 1, -1])  # neuron 2 has no outputs
    np.testing.assert_allclose(sign_in, [0, 1, 1, 0, 0, 1])  # 3, 4: one E and one I input


def test_reciprocity_counts_synapses():
    # 0 <-> 1 with 3 synapses each way, 0 -> 2 with one: 6 of 7 synapses of 0 are reciprocal
    w = wiring_features(_adjacency([0, 1, 0], [1, 0, 2], [3, 3, 1], 3))
    np.testing.assert_allclose(w[:, 3], [6 / 7, 1, 0])


def _loop_wiring(rng, members):
    """Dense reciprocal excitation-inhibition loop: first half excitatory, second inhibitory."""
    pre, post, weight = [], [], []
    half = len(members) // 2
    for a, i in enumerate(members):
        for b, k in enumerate(members):
            if a != b and rng.random() < 0.7:
                pre.append(i)
                post.append(k)
                weight.append(3.0 if a < half else -3.0)
    return pre, post, weight


def _brain(seed=0, frames=400, loops=4, chains=4, hidden=1):
    """Instances of two motifs, 150 µm apart; ``hidden`` loop-wired instances run chain dynamics.

    Loops oscillate (period 10 frames, a random phase per instance); chains relay a slow
    AR(1) signal down the chain one frame per link. A hidden instance is wired as a loop but
    its activity is a chain's: its dynamics features alone put it with the chains.
    """
    rng = np.random.default_rng(seed)
    kinds = ["loop"] * loops + ["chain"] * chains + ["hidden"] * hidden
    n = SIZE * len(kinds)
    z = np.zeros((frames, n))
    positions = np.zeros((n, 3))
    pre, post, weight = [], [], []
    t = np.arange(frames)
    for j, kind in enumerate(kinds):
        members = np.arange(j * SIZE, (j + 1) * SIZE)
        positions[members] = [0, 150.0 * (j // 3), 150.0 * (j % 3)] + rng.uniform(
            -10, 10, (SIZE, 3)
        )
        if kind == "loop":
            phase = rng.uniform(0, 2 * np.pi)
            z[:, members] = np.sin(2 * np.pi * t / 10 + phase)[:, None]
        else:
            drive = np.zeros(frames)
            for s in range(1, frames):
                drive[s] = 0.9 * drive[s - 1] + rng.standard_normal()
            for m, i in enumerate(members):
                z[:, i] = np.roll(drive, m) / drive.std()
        z[:, members] += 0.3 * rng.standard_normal((frames, SIZE))
        if kind == "chain":
            pre += members[:-1].tolist()
            post += members[1:].tolist()
            weight += [3.0] * (SIZE - 1)
        else:
            a, b, w = _loop_wiring(rng, members)
            pre, post, weight = pre + a, post + b, weight + w
    truth = np.array([0 if k != "chain" else 1 for k in kinds]).repeat(SIZE)
    return z, positions, _adjacency(pre, post, weight, n), truth


def _initial_ari(z, positions, adjacency, truth, weight, connectome=True):
    from sklearn.metrics import adjusted_rand_score

    from napari_mesoscale.model.initial_model import initialise_model
    from napari_mesoscale.model.prepare import prepare_data

    cfg = ModelConfig(n_filters=2, epochs=1, rf_diameter=60.0, wiring_features=weight)
    data = prepare_data(z, positions, None, cfg)
    init = initialise_model(data, cfg, adjacency if connectome else None, 0)
    return adjusted_rand_score(truth, init.init_groups)


@pytest.mark.parametrize("seed", [0, 1])
def test_wiring_recovers_an_instance_whose_dynamics_hide_its_motif(seed):
    z, positions, adjacency, truth = _brain(seed)
    without = _initial_ari(z, positions, adjacency, truth, 0.0)
    with_wiring = _initial_ari(z, positions, adjacency, truth, 2.0)
    assert without < 0.8  # dynamics alone put the hidden loop with the chains
    assert with_wiring == pytest.approx(1.0)


def test_wiring_keeps_instances_that_show_their_motif():
    z, positions, adjacency, truth = _brain(0, hidden=0)
    assert _initial_ari(z, positions, adjacency, truth, 0.0) == pytest.approx(1.0)
    assert _initial_ari(z, positions, adjacency, truth, 2.0) == pytest.approx(1.0)


def test_on_by_default_and_ignored_without_a_connectome():
    assert ModelConfig().wiring_features == 2.0  # the default (0, off, before 2026-11-29)
    z, positions, adjacency, truth = _brain(0)
    plain = _initial_ari(z, positions, adjacency, truth, 0.0, connectome=False)
    assert _initial_ari(z, positions, adjacency, truth, 2.0, connectome=False) == plain
    with pytest.raises(ValueError, match="wiring_features"):
        ModelConfig(wiring_features=-1.0).validate()
