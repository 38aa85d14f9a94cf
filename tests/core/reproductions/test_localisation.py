"""Localisation from activity (Dyer & Griffin 2022): eigenvectors, classifier bank, assignment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from napari_mesoscale.evaluate import (
    EvaluationCancelled,
    correlation_eigenfeatures,
    eigenvector_features_frame,
)
from napari_mesoscale.reproductions.localisation import (
    ClassifierBank,
    assign_one_to_one,
    layerwise_graph_error,
    localise_neurons,
)


def _clustered_activity(n_clusters=6, size=20, n_frames=600, seed=0):
    """Neurons in clusters sharing a latent signal; cluster k's neurons have std ~ (1 + k % 3)."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n_frames, n_clusters))
    cluster = np.repeat(np.arange(n_clusters), size)
    kind = cluster % 3
    activity = latent[:, cluster] + 0.7 * rng.standard_normal((n_frames, cluster.size))
    activity = activity * (1.0 + kind) + 2.0 * kind
    return activity, cluster, kind


def _half_split(groups, seed=0):
    rng = np.random.default_rng(seed)
    train, test = [], []
    for g in np.unique(groups):
        idx = rng.permutation(np.flatnonzero(groups == g))
        train.append(idx[: idx.size // 2])
        test.append(idx[idx.size // 2 :])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def test_eigenfeatures_shape_moments_and_cluster_structure():
    activity, cluster, _ = _clustered_activity()
    feats = correlation_eigenfeatures(activity, 6, n_moments=2)
    assert feats.shape == (activity.shape[1], 8)
    np.testing.assert_allclose(feats[:, 0], activity.mean(0))
    np.testing.assert_allclose(feats[:, 1], activity.std(0))
    # the leading eigenvectors of |C| are constant within a cluster (block structure)
    eig = feats[:, 2:]
    within = np.mean([eig[cluster == k].std(0).mean() for k in range(6)])
    assert within < 0.1 * eig.std(0).mean()
    # a first (Perron) eigenvector of a non-negative matrix has one sign
    assert np.all(eig[:, 0] >= -1e-9)
    # deterministic
    np.testing.assert_array_equal(feats, correlation_eigenfeatures(activity, 6, n_moments=2))


def test_sparse_chunked_eigenvectors_match_dense():
    activity, _, _ = _clustered_activity(n_clusters=5, size=30, seed=1)
    n = activity.shape[1]
    dense = correlation_eigenfeatures(activity, 4, n_moments=0, method="dense")
    # keeping every entry, the chunked sparse path computes the same matrix
    full = correlation_eigenfeatures(
        activity, 4, n_moments=0, method="sparse", max_neighbors=n, chunk_rows=17
    )
    for k in range(4):
        assert abs(np.corrcoef(dense[:, k], full[:, k])[0, 1]) > 0.999
    # a k-nearest-neighbour sparsification keeps the leading structure
    knn = correlation_eigenfeatures(activity, 4, n_moments=0, method="sparse", max_neighbors=40)
    assert abs(np.corrcoef(dense[:, 0], knn[:, 0])[0, 1]) > 0.95
    torch_feats = correlation_eigenfeatures(activity, 4, n_moments=0, method="torch", device="cpu")
    assert abs(np.corrcoef(dense[:, 1], torch_feats[:, 1])[0, 1]) > 0.99


def test_silent_neurons_and_features_frame():
    activity, _, _ = _clustered_activity()
    activity[:, 5] = 0.0  # a silent neuron
    feats = correlation_eigenfeatures(activity, 16, n_moments=4)
    assert np.all(np.isfinite(feats))
    frame = eigenvector_features_frame(activity, 16)
    assert list(frame.columns) == [f"eig_{k}" for k in range(16)]
    assert len(frame) == activity.shape[1]
    assert abs(frame["eig_3"].to_numpy()[5]) < 1e-6  # no correlation, no loading


def test_hungarian_recovers_a_permutation():
    rng = np.random.default_rng(0)
    perm = rng.permutation(30)
    lc = np.log(np.full((30, 30), 0.01))
    lc[np.arange(30), perm] = np.log(0.6)
    lc += 0.1 * rng.standard_normal(lc.shape)
    np.testing.assert_array_equal(assign_one_to_one(lc), perm)
    with pytest.raises(ValueError, match="n_slots"):
        assign_one_to_one(np.zeros((5, 3)))


def test_localise_clusters_one_to_one_beats_chance():
    activity, cluster, kind = _clustered_activity()
    labels = pd.DataFrame({"kind": kind, "cluster": cluster})
    train, test = _half_split(cluster)
    res = localise_neurons(
        activity, labels.iloc[train], train, test, slots=labels.iloc[test], n_estimators=50
    )
    assert res.one_to_one
    assert res.accuracy(labels.iloc[test]) > 0.95  # chance is 1/6
    # the one-to-one assignment fills every slot exactly once
    assert sorted(res.slot_index) == list(range(test.size))
    # several activity arrays (e.g. responses to several stimulus sets): features concatenated
    both = localise_neurons(
        [activity, activity[::-1]], labels.iloc[train], train, test, n_estimators=20
    )
    assert both.features.shape == (activity.shape[1], 2 * 18)
    free = localise_neurons(activity, labels.iloc[train], train, test, n_estimators=50)
    assert not free.one_to_one and free.accuracy(labels.iloc[test], ["kind"]) > 0.95


def test_classifier_bank_degenerate_factors():
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((40, 3))
    feats[:20, 0] += 5.0
    labels = pd.DataFrame({"layer": np.repeat(["a", "b"], 20), "unit": np.r_[[0] * 20, range(20)]})
    bank = ClassifierBank(top="layer", factors=["unit"], n_estimators=20).fit(feats, labels)
    slots = pd.DataFrame({"layer": ["a", "b", "b"], "unit": [0, 3, 99]})
    lc = bank.log_confidence(feats[:2], slots)
    assert lc.shape == (2, 3)
    assert lc[0, 0] > lc[0, 1]  # a layer-"a" neuron prefers the "a" slot
    assert np.all(np.isfinite(lc))  # an unseen unit (99) gets the prior, not log(0)


def test_localisation_on_the_toy_brain():
    from napari_mesoscale.synth import make_toy_brain

    brain = make_toy_brain(240, n_frames=400, render=None, em=False, seed=3)
    labels = pd.DataFrame({"motif": brain.motif, "instance": brain.instance})
    train, test = _half_split(brain.instance, seed=1)
    res = localise_neurons(
        brain.activity, labels.iloc[train], train, test, slots=labels.iloc[test], n_estimators=60
    )
    n_instances = np.unique(brain.instance).size
    motif_acc = res.accuracy(labels.iloc[test], ["motif"])
    instance_acc = res.accuracy(labels.iloc[test], ["instance"])
    assert motif_acc > 0.8  # chance 1/4
    assert instance_acc > 5.0 / n_instances  # far above chance (1/n_instances)


def test_graph_error_on_a_path_graph():
    n = 6  # path 0-1-2-3-4-5
    adj = sparse.diags([np.ones(n - 1)], [1], shape=(n, n))
    table = layerwise_graph_error(adj, [0, 1, 4, 5], [0, 3, 4, 2], ["A", "A", "B", "B"])
    a = table[table.layer == "A"].iloc[0]
    b = table[table.layer == "B"].iloc[0]
    assert a["rms_error"] == pytest.approx(np.sqrt((0 + 4) / 2))
    assert b["rms_error"] == pytest.approx(np.sqrt((0 + 9) / 2))
    assert a["exact"] == 0.5
    # random baseline for node 0 over candidates {0, 1, 4, 5}: distances 0, 1, 4, 5
    assert a["random_rms"] == pytest.approx(np.sqrt((0 + 1 + 16 + 25 + 1 + 0 + 9 + 16) / 8))
    assert table.iloc[-1]["layer"] == "MEAN"


@pytest.mark.parametrize(
    ("activity", "match"),
    [
        (np.zeros((10,)), "2-D"),
        (np.zeros((2, 10)), ">= 3"),
        (np.full((20, 10), np.nan), "NaN"),
    ],
)
def test_bad_activity_raises(activity, match):
    with pytest.raises(ValueError, match=match):
        correlation_eigenfeatures(activity, 4)


def test_bad_localisation_arguments_raise():
    activity, cluster, kind = _clustered_activity()
    labels = pd.DataFrame({"kind": kind, "cluster": cluster})
    train, test = _half_split(cluster)
    with pytest.raises(ValueError, match="overlap"):
        localise_neurons(activity, labels.iloc[train], train, train)
    with pytest.raises(ValueError, match="rows"):
        localise_neurons(activity, labels.iloc[:5], train, test)
    with pytest.raises(ValueError, match="n_eigenvectors"):
        correlation_eigenfeatures(activity, 500)
    with pytest.raises(ValueError, match="method"):
        correlation_eigenfeatures(activity, 4, method="qr")
    with pytest.raises(ValueError, match="top"):
        localise_neurons(activity, labels.iloc[train], train, test, top="layer")
    with pytest.raises(EvaluationCancelled):
        localise_neurons(activity, labels.iloc[train], train, test, callback=lambda i: False)


@pytest.mark.slow
def test_small_lenet_reproduction_orders_feature_sets():
    """~40 s: the shrunken reproduction (benchmarks/localisation.py runs the full one)."""
    import torch

    from napari_mesoscale.reproductions.localisation.lenet_digits import (
        run_reproduction,
        unit_graph,
    )

    torch.set_num_threads(2)
    graph = unit_graph()
    assert graph.shape == (826, 826)
    out = run_reproduction(seed=0, epochs=8, n_gaussian=600, n_estimators=40)
    assert out["accuracy"] > 0.8
    mean = out["table"].iloc[-1]
    # every feature set beats random assignment by a wide margin
    for name in ("GAUSSIAN", "IMPULSE", "DIGITS", "CONCAT"):
        assert mean[name] < mean["RANDOM"] - 0.5, name
    # concatenated features beat GAUSSIAN and DIGITS alone (IMPULSE vs CONCAT varies by seed)
    assert mean["CONCAT"] < mean["GAUSSIAN"] and mean["CONCAT"] < mean["DIGITS"]
    # uncorrelated stimuli beat the structured digits (the paper's MNIST)
    assert max(mean["GAUSSIAN"], mean["IMPULSE"]) < mean["DIGITS"]


def test_lenet_graph_and_units():
    from scipy.sparse.csgraph import shortest_path

    from napari_mesoscale.reproductions.localisation.lenet_digits import (
        checkerboard_split,
        unit_graph,
        unit_table,
    )

    units = unit_table()
    assert len(units) == 826
    assert units.groupby("layer").size()["CONVRAMP1"] == 384
    graph = unit_graph(units)
    dist = shortest_path(graph, directed=False, unweighted=True, indices=[0])
    assert np.isfinite(dist).all()  # connected
    # input pixel (0,0) -> CONVRAMP1 (family 0, 0, 0) is one hop; the softmax is 6 hops away
    assert dist[0, 64] == 1 and dist[0, 825] == 6
    train, test = checkerboard_split(units)
    assert train.size + test.size == 826 and np.intersect1d(train, test).size == 0


def test_old_names_stay_importable_and_warn():
    import napari_mesoscale
    from napari_mesoscale import evaluate
    from napari_mesoscale.progress import Cancelled

    assert evaluate.localise_neurons is localise_neurons
    assert napari_mesoscale.localise_neurons is localise_neurons
    assert issubclass(EvaluationCancelled, Cancelled)
    activity, _, _ = _clustered_activity(n_clusters=3, size=10, n_frames=200)
    new = correlation_eigenfeatures(activity, 3, n_moments=0, method="sparse", max_neighbors=12)
    with pytest.warns(DeprecationWarning, match="max_neighbors"):
        old = correlation_eigenfeatures(activity, 3, n_moments=0, method="sparse", n_neighbours=12)
    np.testing.assert_array_equal(old, new)
