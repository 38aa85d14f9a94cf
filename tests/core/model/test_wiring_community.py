"""Whole communities relabelled by their sub-circuit's wiring (``wiring_scope="community"``)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from napari_mesoscale.model import ModelConfig
from napari_mesoscale.model.initialise import community_motifs, community_wiring_features

SIZE = 10  # neurons per instance


def _adjacency(pre, post, weight, n):
    return sp.csr_matrix((np.asarray(weight, float), (pre, post)), shape=(n, n))


def test_signature_of_a_chain_a_loop_and_mutual_inhibition():
    # community 0: chain 0 -> 1 -> 2; community 1: E-I loop 3 <-> 4 (4 inhibitory) and 3 -> 5;
    # community 2: mutual inhibition 6 <-> 7; the edge 2 -> 3 joins two communities: ignored
    pre = [0, 1, 3, 4, 3, 6, 7, 2]
    post = [1, 2, 4, 3, 5, 7, 6, 3]
    weight = [2, 2, 1, -1, 2, -3, -3, 5]
    communities = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    sig = community_wiring_features(_adjacency(pre, post, weight, 8), communities)
    inhibitory, reciprocal, opposite, on_cycle, density = sig.T
    np.testing.assert_allclose(inhibitory, [0, 1 / 4, 1])
    np.testing.assert_allclose(reciprocal, [0, 2 / 4, 1])
    np.testing.assert_allclose(opposite, [0, 2 / 4, 0])
    np.testing.assert_allclose(on_cycle, [0, 2 / 4, 1])
    np.testing.assert_allclose(density, [2 / 6, 3 / 6, 2 / 2])


def test_community_without_a_within_edge_has_a_zero_signature():
    sig = community_wiring_features(_adjacency([0], [1], [1.0], 3), np.array([0, 1, 2]))
    np.testing.assert_array_equal(sig, 0.0)


def test_communities_take_the_motif_of_their_wiring_when_features_agree():
    # four communities with identical dynamics features: the signature alone decides
    communities = np.repeat(np.arange(4), 5)
    signature = np.array([[0, 0, 0, 0, 0.2], [0.3, 0.7, 0.4, 1, 0.6]] * 2)
    labels = community_motifs(np.zeros((20, 3)), communities, signature, 2.0, 2)
    assert labels[0] == labels[2] != labels[1] == labels[3]
    assert community_motifs(np.zeros((20, 3)), communities, signature, 2.0, 5) is None


def _loop_wiring(rng, members, density):
    """Excitation-inhibition loop: first half excitatory, second inhibitory, each ordered
    pair connected with probability ``density``."""
    pre, post, weight = [], [], []
    half = len(members) // 2
    for a, i in enumerate(members):
        for b, k in enumerate(members):
            if a != b and rng.random() < density:
                pre.append(i)
                post.append(k)
                weight.append(3.0 if a < half else -3.0)
    return pre, post, weight


def _brain(seed, frames=400, loops=4, chains=4, hidden=1, density=0.5):
    """Instances of two motifs, 150 µm apart; ``hidden`` loop-wired instances run chain dynamics.

    Loops oscillate (period 10 frames, a random phase per instance); chains relay a slow
    AR(1) signal down the chain one frame per link. The hidden instance is wired as a loop
    but its activity is a chain's. Loops are wired at half density, so one neuron sees few
    partners and its own wiring signature is noisy; the whole loop's is not.
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
        offset = [0, 150.0 * (j // 3), 150.0 * (j % 3)]
        positions[members] = offset + rng.uniform(-10, 10, (SIZE, 3))
        z[:, members] = _activity(rng, kind, t, SIZE)
        if kind == "chain":
            pre, post = pre + members[:-1].tolist(), post + members[1:].tolist()
            weight += [3.0] * (SIZE - 1)
        else:
            a, b, w = _loop_wiring(rng, members, density)
            pre, post, weight = pre + a, post + b, weight + w
    truth = np.array([0 if k != "chain" else 1 for k in kinds]).repeat(SIZE)
    return z, positions, _adjacency(pre, post, weight, n), truth


def _activity(rng, kind, t, size):
    """(T, size) activity of one instance: an oscillation or a relayed AR(1), plus noise."""
    if kind == "loop":
        phase = rng.uniform(0, 2 * np.pi)
        clean = np.repeat(np.sin(2 * np.pi * t / 10 + phase)[:, None], size, axis=1)
    else:
        drive = np.zeros(t.size)
        for s in range(1, t.size):
            drive[s] = 0.9 * drive[s - 1] + rng.standard_normal()
        clean = np.stack([np.roll(drive, m) / drive.std() for m in range(size)], axis=1)
    return clean + 0.3 * rng.standard_normal((t.size, size))


def _initial_ari(brain, weight, scope, connectome=True):
    from sklearn.metrics import adjusted_rand_score

    from napari_mesoscale.model.initial_model import initialise_model
    from napari_mesoscale.model.prepare import prepare_data

    z, positions, adjacency, truth = brain
    cfg = ModelConfig(
        n_filters=2, epochs=1, rf_diameter=60.0, wiring_features=weight, wiring_scope=scope
    )
    data = prepare_data(z, positions, None, cfg)
    init = initialise_model(data, cfg, adjacency if connectome else None, 0)
    return adjusted_rand_score(truth, init.init_groups)


@pytest.mark.parametrize("seed", [0, 3])
def test_community_wiring_recovers_a_hidden_instance_the_neuron_signature_misses(seed):
    brain = _brain(seed)
    assert _initial_ari(brain, 0.0, "neuron") < 0.8  # dynamics put the hidden loop with chains
    assert _initial_ari(brain, 2.0, "neuron") < 0.8  # so does each neuron's own wiring
    assert _initial_ari(brain, 2.0, "community") == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [1, 2, 4])
def test_community_wiring_recovers_the_hidden_instance_on_other_seeds(seed):
    assert _initial_ari(_brain(seed), 2.0, "community") == pytest.approx(1.0)


def test_community_wiring_keeps_instances_that_show_their_motif():
    brain = _brain(0, hidden=0)
    assert _initial_ari(brain, 2.0, "community") == pytest.approx(1.0)


def test_community_scope_is_off_without_weight_or_connectome():
    assert ModelConfig().wiring_scope == "subcircuit"  # the default (neuron before 2026-11-29)
    brain = _brain(0)
    plain = _initial_ari(brain, 0.0, "neuron")
    assert _initial_ari(brain, 0.0, "community") == plain
    assert _initial_ari(brain, 2.0, "community", connectome=False) == plain
    with pytest.raises(ValueError, match="wiring_scope"):
        ModelConfig(wiring_scope="instance").validate()
