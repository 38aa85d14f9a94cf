"""Communities split into their connectome sub-circuits (``wiring_scope="subcircuit"``)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import adjusted_rand_score

from napari_mesoscale.model import ModelConfig
from napari_mesoscale.model.initialise import move_to_wired_community, split_communities

SIZE = 10  # neurons per instance


def _adjacency(pre, post, weight, n):
    return sp.csr_matrix((np.asarray(weight, float), (pre, post)), shape=(n, n))


def _loop(rng, members, density=0.5):
    """Excitation-inhibition loop: first half excitatory, second inhibitory."""
    pre, post, weight = [], [], []
    half = len(members) // 2
    for a, i in enumerate(members):
        for b, k in enumerate(members):
            if a != b and rng.random() < density:
                pre, post = pre + [i], post + [k]
                weight.append(3.0 if a < half else -3.0)
    return pre, post, weight


def _chain(members):
    return members[:-1].tolist(), members[1:].tolist(), [3.0] * (len(members) - 1)


def _two_circuits(seed, density=0.5):
    """A loop (neurons 0-9) and a chain (10-19), joined by two weak synapses."""
    rng = np.random.default_rng(seed)
    a, b, w = _loop(rng, np.arange(SIZE), density)
    c, d, v = _chain(np.arange(SIZE, 2 * SIZE))
    return _adjacency(a + c + [3, 16], b + d + [15, 4], w + v + [1.0, 1.0], 2 * SIZE)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_separates_a_loop_from_a_chain_in_one_community(seed):
    parts = split_communities(_two_circuits(seed), np.zeros(2 * SIZE, dtype=np.int64), seed=0)
    truth = np.repeat([0, 1], SIZE)
    # the loop is one part; the chain (a path) may be cut into segments, never mixed
    assert len(np.unique(parts[:SIZE])) == 1
    assert not set(parts[:SIZE]) & set(parts[SIZE:])
    assert adjusted_rand_score(truth, parts) > 0.5


def test_split_keeps_one_dense_circuit_whole():
    adjacency = _adjacency(*_loop(np.random.default_rng(0), np.arange(2 * SIZE)), 2 * SIZE)
    parts = split_communities(adjacency, np.zeros(2 * SIZE, dtype=np.int64))
    np.testing.assert_array_equal(parts, 0)


def test_split_leaves_small_communities_and_keeps_community_boundaries():
    communities = np.repeat([0, 1], SIZE)
    parts = split_communities(_two_circuits(0), communities, min_size=SIZE + 1)
    np.testing.assert_array_equal(parts, communities)  # no community has 2 x min_size members


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loop_wired_neurons_move_feed_forward_ones_do_not(seed):
    # a recurrent loop 0-9 split by correlations: 0 and 1 sit in the chain's community (1)
    adjacency = _two_circuits(seed, density=0.8)
    communities = np.repeat([0, 1], SIZE)
    communities[:2] = 1
    moved = move_to_wired_community(adjacency, communities)
    truth = np.repeat([0, 1], SIZE)
    assert adjusted_rand_score(truth, moved) == pytest.approx(1.0)
    # a chain neuron placed with the loop keeps its place: feed-forward wiring has no loops
    communities = truth.copy()
    communities[SIZE] = 0
    np.testing.assert_array_equal(move_to_wired_community(adjacency, communities), communities)


def _brain(seed, frames=400):
    """Loops and chains 150 µm apart; one loop-wired instance sits on top of a chain and
    relays the chain's signal, so that correlations put both in one community."""
    rng = np.random.default_rng(seed)
    kinds = ["loop", "loop", "loop", "chain", "chain", "chain", "hidden"]
    n = SIZE * len(kinds)
    t = np.arange(frames)
    z = np.zeros((frames, n))
    positions = np.zeros((n, 3))
    pre, post, weight = [], [], []
    drive = np.zeros(frames)
    for j, kind in enumerate(kinds):
        members = np.arange(j * SIZE, (j + 1) * SIZE)
        box = j if kind != "hidden" else 5  # the hidden loop shares the last chain's place
        positions[members] = [0, 150.0 * (box // 3), 150.0 * (box % 3)]
        positions[members] += rng.uniform(-10, 10, (SIZE, 3))
        if kind == "loop":
            phase = rng.uniform(0, 2 * np.pi)
            z[:, members] = np.sin(2 * np.pi * t / 10 + phase)[:, None]
            a, b, w = _loop(rng, members)
        else:
            if kind == "chain":
                drive = np.zeros(frames)
                for s in range(1, frames):
                    drive[s] = 0.9 * drive[s - 1] + rng.standard_normal()
            lag0 = SIZE if kind == "hidden" else 0  # the hidden loop continues the relay
            relay = [np.roll(drive, lag0 + m) / drive.std() for m in range(SIZE)]
            z[:, members] = np.stack(relay, axis=1)
            a, b, w = _chain(members) if kind == "chain" else _loop(rng, members)
        pre, post, weight = pre + a, post + b, weight + w
    pre, post, weight = pre + [59, 64], post + [60, 55], weight + [1.0, -1.0]  # weak links
    z += 0.3 * rng.standard_normal(z.shape)
    truth = np.array([1 if k == "chain" else 0 for k in kinds]).repeat(SIZE)
    return z, positions, _adjacency(pre, post, weight, n), truth


def _initial(brain, scope, **options):
    from napari_mesoscale.model import initial_model
    from napari_mesoscale.model.prepare import prepare_data

    z, positions, adjacency, truth = brain
    cfg = ModelConfig(
        n_filters=2,
        epochs=1,
        rf_diameter=60.0,
        wiring_features=2.0,
        wiring_scope=scope,
        **options,
    )
    seen = []
    pick_fields = initial_model.pick_fields

    def spy(communities, *args):
        seen.append(communities)
        return pick_fields(communities, *args)

    initial_model.pick_fields = spy
    try:
        data = prepare_data(z, positions, None, cfg)
        init = initial_model.initialise_model(data, cfg, adjacency, 0)
    finally:
        initial_model.pick_fields = pick_fields
    return adjusted_rand_score(truth, init.init_groups), seen[-1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_subcircuit_scope_separates_two_circuits_of_different_motifs(seed):
    brain = _brain(seed)
    hidden, last_chain = slice(60, 70), slice(50, 60)
    ari, communities = _initial(brain, "community")
    assert set(communities[hidden]) == set(communities[last_chain])  # one impure community
    assert ari < 0.8
    ari, communities = _initial(brain, "subcircuit")
    assert not set(communities[hidden]) & set(communities[last_chain])
    assert ari == pytest.approx(1.0)


def test_the_split_alone_separates_them_and_chains_stay_whole():
    brain = _brain(0)
    ari, communities = _initial(brain, "subcircuit", subcircuit_move_ratio=0.0)
    assert ari == pytest.approx(1.0)
    for j in range(3, 6):  # each chain's segments took one motif and are one community again
        assert len(np.unique(communities[j * SIZE : (j + 1) * SIZE])) == 1


def test_subcircuit_scope_is_the_default_but_not_the_pipelines_and_checked():
    from napari_mesoscale.workflow import pipeline_config

    cfg = ModelConfig()
    assert cfg.wiring_scope == "subcircuit" and cfg.wiring_features == 2.0
    pipeline = pipeline_config()  # calcium of detected cells: no community relabel
    assert pipeline.wiring_scope == "neuron" and pipeline.wiring_features == 2.0
    assert cfg.subcircuit_min_size == 3
    with pytest.raises(ValueError, match="subcircuit_min_size"):
        ModelConfig(subcircuit_min_size=0).validate()
