"""The connectivity layers on the toy brain, checked against its ground truth."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from test_registration import correct_fraction, known_affine, split_with_missing

from napari_mesoscale.connectome import (
    Connectome,
    node_features,
    register_point_sources,
    transmission_response_graphs,
)
from napari_mesoscale.synth import make_toy_brain


def test_tables_give_the_true_adjacency_and_weights(brain):
    connectome = Connectome.from_tables(brain.neurons, brain.synapses)
    assert connectome.adjacency.shape == brain.adjacency.shape
    assert (connectome.adjacency != brain.adjacency).nnz == 0
    np.testing.assert_allclose(connectome.weights.toarray(), brain.weights.toarray(), atol=1e-6)
    np.testing.assert_allclose(connectome.positions, brain.positions)
    features = node_features(connectome)
    np.testing.assert_array_equal(features["motif"], brain.neurons["motif"])
    structure = brain.adjacency != 0
    np.testing.assert_array_equal(features["out_degree"], np.diff(structure.tocsr().indptr))


def test_label_volume_with_synapse_ids_gives_the_true_graph(brain):
    synapses = brain.synapses.assign(pre=brain.synapses["pre"] + 1, post=brain.synapses["post"] + 1)
    connectome = Connectome.from_labels(brain.soma_labels, synapses, voxel_size=brain.voxel_size)
    np.testing.assert_array_equal(connectome.ids, np.arange(brain.n_neurons) + 1)
    assert (connectome.adjacency != brain.adjacency).nnz == 0
    error = np.linalg.norm(connectome.positions - brain.positions, axis=1)
    assert np.median(error) < 0.5 and error.max() < 2.0  # centroids of rendered somata, µm


def test_contact_edges_join_touching_somata(brain):
    tolerance = 2.0
    connectome = Connectome.from_labels(
        brain.soma_labels, voxel_size=brain.voxel_size, tolerance=tolerance
    )
    pre, post, overlap = connectome.edges()
    assert pre.size > 0 and (overlap >= 1).all()
    assert (connectome.adjacency != connectome.adjacency.T).nnz == 0  # undirected
    rows = connectome.ids - 1
    distance = np.linalg.norm(brain.positions[rows[pre]] - brain.positions[rows[post]], axis=1)
    radii = (brain.diameters[rows[pre]] + brain.diameters[rows[post]]) / 2
    # somata are rendered as ellipsoids of about their diameter: contacts need near neighbours
    assert (distance <= radii + 2 * tolerance + 2 * brain.voxel_size.max()).all()
    # every pair of face-adjacent somata is an edge (2 µm covers one voxel along each axis)
    labels = np.asarray(brain.soma_labels)
    touching = set()
    for axis in range(3):
        a = np.moveaxis(labels, axis, 0)[1:].ravel()
        b = np.moveaxis(labels, axis, 0)[:-1].ravel()
        differ = (a != b) & (a > 0) & (b > 0)
        touching |= set(zip(a[differ].tolist(), b[differ].tolist(), strict=True))
    edges = set(zip(connectome.ids[pre].tolist(), connectome.ids[post].tolist(), strict=True))
    assert touching, "the toy brain has touching somata"
    assert touching <= edges


def test_excitatory_edges_transmit_more_than_shuffled_pairs(brain):
    connectome = Connectome.from_tables(brain.neurons, brain.synapses)
    result = transmission_response_graphs(connectome, brain.activity, bin_size=5, delay=2)
    _, _, value = connectome.edges()
    excitatory = np.nanmean(result.frequency[value > 0])
    inhibitory = np.nanmean(result.frequency[value < 0])
    rng = np.random.default_rng(0)
    pre, _, _ = connectome.edges()
    n = connectome.n_neurons
    shuffled = sp.csr_matrix((np.ones(pre.size), (pre, rng.integers(0, n, pre.size))), shape=(n, n))
    baseline = np.nanmean(
        transmission_response_graphs(shuffled, brain.activity, bin_size=5, delay=2).frequency
    )
    assert excitatory > 1.5 * baseline
    assert inhibitory < baseline


@pytest.mark.parametrize("seed", [0, 1])
def test_registration_of_toy_brain_cells_under_a_known_affine(seed):
    cells = make_toy_brain(400, n_frames=20, render=None, em=False, seed=seed)
    matrix = known_affine(seed)
    moving, fixed, keep_moving, keep_fixed = split_with_missing(
        cells.positions, matrix, seed, jitter=1.0, missing=0.1
    )
    registration = register_point_sources(moving, fixed, transform="affine")
    precision, recall = correct_fraction(registration, keep_moving, keep_fixed)
    assert precision >= 0.95, precision
    assert recall >= 0.9, recall


def test_registration_of_detections_with_misses_and_false_positives(brain):
    # detected point sources in the connectome's frame: 1.5 µm error, 15 % missed, 30 spurious
    rng = np.random.default_rng(4)
    n = brain.n_neurons
    found = np.sort(rng.permutation(n)[: int(0.85 * n)])
    detections = brain.positions[found] + rng.normal(0, 1.5, (found.size, 3))
    spurious = rng.uniform(brain.positions.min(0), brain.positions.max(0), (30, 3))
    registration = register_point_sources(np.concatenate([detections, spurious]), brain.positions)
    matches = registration.matches
    real = matches[:, 0] < found.size
    correct = found[matches[real, 0]] == matches[real, 1]
    assert correct.sum() / registration.n_matches >= 0.95
    assert correct.sum() / found.size >= 0.9
    np.testing.assert_allclose(registration.matrix[:3, :3], np.eye(3), atol=0.03)
