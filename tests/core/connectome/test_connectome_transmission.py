"""Transmission-response graphs: brute-force agreement, events, summaries, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from napari_mesoscale.connectome import (
    Connectome,
    ConnectomeCancelled,
    detect_events,
    transmission_response_graphs,
)


def small_connectome(n: int = 60, m: int = 600, seed: int = 0) -> Connectome:
    rng = np.random.default_rng(seed)
    positions = rng.uniform(0, 100, (n, 3))
    neurons = pd.DataFrame(
        {"id": np.arange(n) + 100, "z": positions[:, 0], "y": positions[:, 1], "x": positions[:, 2]}
    )
    synapses = pd.DataFrame(
        {"pre": rng.integers(0, n, m) + 100, "post": rng.integers(0, n, m) + 100}
    )
    return Connectome.from_tables(neurons, synapses)


def brute_force(adjacency, events, bin_size, delay):
    t, n = events.shape
    structure = adjacency.toarray() != 0
    graphs = []
    for start in range(0, t, bin_size):
        active = np.zeros((n, n), bool)
        for frame in range(start, min(start + bin_size, t)):
            responded = events[frame + 1 : frame + delay + 1].any(axis=0)
            active |= np.outer(events[frame], responded)
        graphs.append(active & structure)
    return graphs


@pytest.mark.parametrize(("bin_size", "delay"), [(1, 1), (7, 3), (10, 40)])
def test_graphs_match_brute_force(bin_size, delay):
    connectome = small_connectome()
    rng = np.random.default_rng(1)
    activity = rng.normal(size=(203, connectome.n_neurons))
    result = transmission_response_graphs(connectome, activity, bin_size=bin_size, delay=delay)
    events = detect_events(activity)
    expected = brute_force(connectome.adjacency, events, bin_size, delay)
    assert result.n_bins == len(expected) == -(-203 // bin_size)
    for b, graph in enumerate(expected):
        np.testing.assert_array_equal(result.to_sparse(b).toarray(), graph)
        assert np.all(np.diff(result.bin_edge_ids(b)) > 0)
    stacked = np.array(expected)
    structure_pre, structure_post = result.pre, result.post
    np.testing.assert_array_equal(
        result.counts, stacked[:, structure_pre, structure_post].sum(axis=0)
    )
    pre_event_bins = np.array(
        [events[s : s + bin_size].any(axis=0) for s in range(0, 203, bin_size)]
    )
    np.testing.assert_array_equal(result.opportunities, pre_event_bins[:, structure_pre].sum(0))
    summary = result.summary()
    assert len(summary) == connectome.n_edges
    assert summary["pre"].min() >= 100  # ids, not rows
    frequency = summary["frequency"].to_numpy()
    ok = summary["opportunities"].to_numpy() > 0
    np.testing.assert_allclose(frequency[ok], result.counts[ok] / result.opportunities[ok])
    assert result.frequency[ok].max() <= 1.0


def test_events_onsets_thresholds_and_boolean_input():
    activity = np.zeros((10, 3))
    activity[2:5, 0] = 5.0  # one transient of three frames
    activity[7, 1] = 5.0
    activity[:, 2] = np.arange(10)
    onsets = detect_events(activity, threshold=1.0, zscore=False)
    np.testing.assert_array_equal(np.flatnonzero(onsets[:, 0]), [2])
    np.testing.assert_array_equal(np.flatnonzero(onsets[:, 1]), [7])
    every = detect_events(activity, threshold=1.0, zscore=False, onsets=False)
    np.testing.assert_array_equal(np.flatnonzero(every[:, 0]), [2, 3, 4])
    per_neuron = detect_events(activity, threshold=[1.0, 1.0, 7.5], zscore=False, onsets=False)
    np.testing.assert_array_equal(np.flatnonzero(per_neuron[:, 2]), [8, 9])
    zscored = detect_events(activity, threshold=2.0)
    assert zscored[:, 1].sum() == 1 and zscored[:, 2].sum() == 0  # a ramp has no 2σ frame
    # a chain 0 -> 1 -> 2 with hand-made events
    adjacency = sp.csr_matrix(np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]]))
    events = np.zeros((12, 3), bool)
    events[[1, 2, 6], [0, 1, 0]] = True  # 0 at 1 and 6; 1 at 2
    events[4, 2] = True  # 2 at 4: within 2 frames of neuron 1 (frame 2)
    result = transmission_response_graphs(adjacency, events, bin_size=4, delay=2)
    np.testing.assert_array_equal(result.edges(0), [[0, 1], [1, 2]])
    assert result.edges(1).size == 0 and result.edges(2).size == 0
    np.testing.assert_array_equal(result.counts, [1, 1])
    np.testing.assert_array_equal(result.opportunities, [2, 1])
    np.testing.assert_array_equal(result.event_counts, [2, 1, 1])
    assert result.bin_frames(2) == (8, 12)


def test_large_delay_uses_cumulative_sums_identically():
    connectome = small_connectome(seed=4)
    activity = np.random.default_rng(5).normal(size=(150, connectome.n_neurons))
    events = detect_events(activity, threshold=1.5)
    short = transmission_response_graphs(connectome, events, bin_size=5, delay=32)
    long = transmission_response_graphs(connectome, events, bin_size=5, delay=33)
    expected = brute_force(connectome.adjacency, events, 5, 33)
    for b in range(long.n_bins):
        np.testing.assert_array_equal(long.to_sparse(b).toarray(), expected[b])
    assert long.edge_ids.size >= short.edge_ids.size


@pytest.mark.parametrize(
    ("activity", "kwargs", "message"),
    [
        (np.zeros(60), {}, r"\(T, N\)"),
        (np.zeros((60, 100)), {}, "looks transposed"),
        (np.zeros((100, 61)), {}, "61 neuron columns"),
        (np.zeros((0, 60)), {}, "empty"),
        (np.full((20, 60), np.nan), {}, "NaN"),
        (np.zeros((20, 60)), {"bin_size": 0}, "bin_size must be"),
        (np.zeros((20, 60)), {"delay": 0}, "delay must be"),
        (np.zeros((20, 60)), {"delay": 1.5}, "delay must be"),
        (np.zeros((20, 60)), {"threshold": np.ones(3)}, "one per neuron"),
    ],
)
def test_bad_input(activity, kwargs, message):
    connectome = small_connectome()
    kwargs = {"bin_size": 5, "delay": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        transmission_response_graphs(connectome, activity, **kwargs)


def test_bad_connectome_and_cancel():
    with pytest.raises(ValueError, match="needs a Connectome"):
        transmission_response_graphs(np.eye(3), np.zeros((5, 3)), bin_size=1, delay=1)
    connectome = small_connectome()
    activity = np.random.default_rng(0).normal(size=(50, connectome.n_neurons))
    with pytest.raises(ConnectomeCancelled):
        transmission_response_graphs(
            connectome, activity, bin_size=5, delay=2, callback=lambda info: False
        )


def test_dask_activity_is_read_in_chunks_with_the_same_result():
    import dask.array as da

    connectome = small_connectome(seed=2)
    activity = np.random.default_rng(3).normal(size=(300, connectome.n_neurons))
    lazy = da.from_array(activity.astype(np.float32), chunks=(50, connectome.n_neurons))
    eager = transmission_response_graphs(
        connectome, activity.astype(np.float32), bin_size=7, delay=2
    )
    chunked = transmission_response_graphs(connectome, lazy, bin_size=7, delay=2)
    np.testing.assert_array_equal(chunked.edge_ids, eager.edge_ids)
    np.testing.assert_array_equal(chunked.offsets, eager.offsets)
