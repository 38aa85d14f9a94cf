"""Connectome tables, adjacency, node features, field subgraphs, label volumes, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from napari_mesoscale.connectome import (
    Connectome,
    ConnectomeCancelled,
    enclosed_subgraphs,
    field_members,
    node_features,
    receptive_field_grid,
)
from napari_mesoscale.connectome.grid import Grid
from napari_mesoscale.connectome.labels import _ball


def random_tables(n: int = 300, m: int = 3000, seed: int = 0, id_step: int = 3):
    """Neurons with signs and synapses between random pairs (ids are not row numbers)."""
    rng = np.random.default_rng(seed)
    positions = rng.uniform(0, 200, (n, 3))
    ids = np.arange(n) * id_step + 7
    sign = rng.choice([1, -1], n)
    neurons = pd.DataFrame(
        {
            "id": ids,
            "z": positions[:, 0],
            "y": positions[:, 1],
            "x": positions[:, 2],
            "sign": sign,
            "type": rng.choice(["a", "b", "c"], n),
        }
    )
    pre = rng.integers(0, n, m)
    post = rng.integers(0, n, m)
    synapses = pd.DataFrame(
        {
            "pre": ids[pre],
            "post": ids[post],
            "z": rng.uniform(0, 200, m),
            "y": rng.uniform(0, 200, m),
            "x": rng.uniform(0, 200, m),
            "weight": rng.uniform(0.5, 2.0, m),
        }
    )
    return neurons, synapses, pre, post


def dense_counts(n, pre, post, values):
    dense = np.zeros((n, n))
    np.add.at(dense, (pre, post), values)
    return dense


# -- tables and adjacency ---------------------------------------------------------------------


def test_adjacency_is_signed_multigraph_counts():
    neurons, synapses, pre, post = random_tables()
    connectome = Connectome.from_tables(neurons, synapses)
    n = len(neurons)
    expected = dense_counts(n, pre, post, neurons["sign"].to_numpy()[pre])
    np.testing.assert_array_equal(connectome.adjacency.toarray(), expected)
    assert connectome.n_edges == len(set(zip(pre.tolist(), post.tolist(), strict=True)))
    np.testing.assert_array_equal(connectome.pre_index, pre)
    np.testing.assert_array_equal(connectome.post_index, post)
    np.testing.assert_allclose(connectome.positions, neurons[["z", "y", "x"]].to_numpy())
    weights = dense_counts(n, pre, post, synapses["weight"].to_numpy() * neurons["sign"][pre])
    np.testing.assert_allclose(connectome.weights.toarray(), weights, rtol=1e-5)


def test_synapse_sign_column_overrides_neuron_sign_and_words_are_understood():
    neurons, synapses, pre, post = random_tables(n=50, m=400)
    words = np.where(np.arange(len(synapses)) % 2 == 0, "excitatory", "inhibitory")
    connectome = Connectome.from_tables(neurons.drop(columns="sign"), synapses.assign(sign=words))
    values = np.where(np.arange(len(synapses)) % 2 == 0, 1.0, -1.0)
    expected = dense_counts(len(neurons), pre, post, values)
    np.testing.assert_array_equal(connectome.adjacency.toarray(), expected)
    unsigned = Connectome.from_tables(neurons.drop(columns="sign"), synapses)
    assert (unsigned.adjacency.data > 0).all()


def test_tables_from_csv_and_parquet_paths_and_round_trip(tmp_path):
    neurons, synapses, *_ = random_tables(n=40, m=200)
    neurons.to_csv(tmp_path / "neurons.csv", index=False)
    synapses.to_parquet(tmp_path / "synapses.parquet", index=False)
    synapse_path = str(tmp_path / "synapses.parquet")
    connectome = Connectome.from_tables(tmp_path / "neurons.csv", synapse_path)
    reference = Connectome.from_tables(neurons, synapses)
    assert (connectome.adjacency != reference.adjacency).nnz == 0
    folder = connectome.to_tables(tmp_path / "saved")
    again = Connectome.read(folder)
    assert (again.adjacency != reference.adjacency).nnz == 0
    pd.testing.assert_frame_equal(again.neurons, connectome.neurons)
    assert not list(folder.glob(".*"))  # no temporary files left behind


def test_synapses_without_positions_sit_between_somata_and_string_ids_work():
    neurons = pd.DataFrame({"id": ["a", "b", "c"], "z": [0.0, 10, 20], "y": 0.0, "x": 0.0})
    synapses = pd.DataFrame({"pre": ["a", "a", "b"], "post": ["b", "b", "c"]})
    connectome = Connectome.from_tables(neurons, synapses)
    np.testing.assert_array_equal(connectome.adjacency.toarray(), [[0, 2, 0], [0, 0, 1], [0, 0, 0]])
    np.testing.assert_allclose(connectome.synapse_positions[:, 0], [5, 5, 15])
    np.testing.assert_array_equal(connectome.index_of(["c", "a"]), [2, 0])
    assert Connectome.from_tables(neurons).n_edges == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda n, s: (n.drop(columns="x"), s), r"lacks column\(s\) \['x'\]"),
        (lambda n, s: (n.iloc[:0], s.iloc[:0]), "neurons table is empty"),
        (
            lambda n, s: (n.assign(id=np.r_[n["id"].iloc[:-1], n["id"].iloc[0]]), s),
            r"duplicate ids \[7\] in 2 row\(s\): \[0, 39\]",
        ),
        (
            lambda n, s: (n.assign(z=np.where(n.index == 5, np.nan, n["z"])), s),
            r"neurons table has NaN or infinite positions in 1 row\(s\): \[5\]",
        ),
        (
            lambda n, s: (n, s.assign(pre=np.where(s.index == 3, 99999, s["pre"]))),
            r"not in the neurons table \(\[99999\]\) in 1 row\(s\): \[3\]",
        ),
        (
            lambda n, s: (n, s.assign(post=np.where(s.index == 4, np.nan, s["post"]))),
            r"missing 'post' ids in 1 row\(s\): \[4\]",
        ),
        (
            lambda n, s: (n, s.assign(y=np.where(s.index == 8, np.inf, s["y"]))),
            r"synapses table has NaN or infinite positions in 1 row\(s\): \[8\]",
        ),
        (
            lambda n, s: (n, s.assign(weight=np.where(s.index == 2, np.nan, s["weight"]))),
            r"NaN or infinite weights in 1 row\(s\): \[2\]",
        ),
        (lambda n, s: (n, s.drop(columns=["y", "x"])), "only \\['z'\\] of the position columns"),
        (lambda n, s: (n.assign(sign=["maybe"] * len(n)), s), "not a sign"),
        (lambda n, s: (n, s.drop(columns="post")), r"synapses table lacks column\(s\) \['post'\]"),
        (lambda n, s: (n.assign(z=["deep"] * len(n)), s), "must be numbers in µm"),
        (lambda n, s: (n, s.assign(pre="x" + s["pre"].astype(str))), "use the same id type"),
        (lambda n, s: (n, s.assign(pre=s["pre"] + 0.5)), "not whole numbers"),
    ],
)
def test_bad_tables_are_refused_with_rows_named(change, message):
    neurons, synapses, *_ = random_tables(n=40, m=200)
    bad_neurons, bad_synapses = change(neurons, synapses)
    with pytest.raises(ValueError, match=message):
        Connectome.from_tables(bad_neurons, bad_synapses)


def test_bad_paths_and_objects(tmp_path):
    with pytest.raises(FileNotFoundError, match="neurons table not found"):
        Connectome.from_tables(tmp_path / "nope.csv")
    (tmp_path / "neurons.xlsx").write_text("x")
    with pytest.raises(ValueError, match="unknown table format"):
        Connectome.from_tables(tmp_path / "neurons.xlsx")
    with pytest.raises(ValueError, match="DataFrame or a path"):
        Connectome.from_tables(np.zeros((3, 4)))
    neurons, synapses, *_ = random_tables(n=10, m=20)
    with pytest.raises(ValueError, match="value must be"):
        Connectome.from_tables(neurons, synapses, value="mean")
    with pytest.raises(ValueError, match="needs a 'weight' column"):
        Connectome.from_tables(neurons, synapses.drop(columns="weight"), value="weight")
    with pytest.raises(FileNotFoundError, match="no neurons.parquet"):
        Connectome.read(tmp_path)


# -- node features ----------------------------------------------------------------------------


def test_node_features_match_dense_computation():
    neurons, synapses, pre, post = random_tables(n=80, m=240, seed=3)
    connectome = Connectome.from_tables(neurons, synapses)
    features = node_features(connectome, hops=2)
    structure = connectome.adjacency.toarray() != 0
    np.testing.assert_array_equal(features["out_degree"], structure.sum(axis=1))
    np.testing.assert_array_equal(features["in_degree"], structure.sum(axis=0))
    counts = dense_counts(len(neurons), pre, post, 1.0)
    np.testing.assert_allclose(features["out_weight"], counts.sum(axis=1))
    np.testing.assert_allclose(features["weighted_degree"], counts.sum(axis=1) + counts.sum(0))
    degree = structure.sum(axis=1) + structure.sum(axis=0)
    flow = structure.sum(axis=1) / np.where(degree > 0, degree, 1)
    np.testing.assert_allclose(features["information_flow"][degree > 0], flow[degree > 0])
    assert np.isnan(features["information_flow"][degree == 0]).all()
    undirected = structure | structure.T
    np.fill_diagonal(undirected, False)
    reach = undirected | ((undirected.astype(int) @ undirected.astype(int)) > 0)
    np.fill_diagonal(reach, False)
    np.testing.assert_array_equal(features["neighbourhood_2"], reach.sum(axis=1))
    assert list(features["type"]) == list(neurons["type"])
    three = node_features(connectome.adjacency, hops=3)
    reach3 = reach | ((reach.astype(int) @ undirected.astype(int)) > 0)
    np.fill_diagonal(reach3, False)
    np.testing.assert_array_equal(three["neighbourhood_3"], reach3.sum(axis=1))
    with pytest.raises(ValueError, match="hops must be"):
        node_features(connectome, hops=-1)
    with pytest.raises(ValueError, match="needs a Connectome"):
        node_features(np.zeros((3, 3)))


def test_callback_false_cancels():
    neurons, synapses, *_ = random_tables(n=80, m=240)
    connectome = Connectome.from_tables(neurons, synapses)
    seen = []

    def stop(info):
        seen.append(info)
        return False

    with pytest.raises(ConnectomeCancelled):
        node_features(connectome, callback=stop)
    assert seen and "fraction" in seen[0]


def test_build_reports_rising_fractions_of_the_whole_job_and_cancels_as_cancelled():
    from napari_mesoscale.connectome import build_connectome
    from napari_mesoscale.progress import Cancelled

    neurons, synapses, *_ = random_tables(n=80, m=240)
    activity = np.random.default_rng(0).standard_normal((60, 80))
    seen = []
    build_connectome(neurons, synapses, activity=activity, grid_diameter=60.0, callback=seen.append)
    fractions = [info["fraction"] for info in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert any("neighbourhood sizes" in info["message"] for info in seen)
    assert issubclass(ConnectomeCancelled, Cancelled)
    with pytest.raises(Cancelled):
        build_connectome(neurons, synapses, callback=lambda info: info["fraction"] < 0.3)


# -- grid and enclosed subgraphs --------------------------------------------------------------


def test_grid_candidates_and_enclosed_subgraphs_match_brute_force():
    neurons, synapses, *_ = random_tables(n=300, m=3000, seed=5)
    connectome = Connectome.from_tables(neurons, synapses)
    grid = receptive_field_grid(connectome.positions, diameter=60.0)
    radius = 30.0 * (1 + 1e-9)
    inside = np.linalg.norm(connectome.positions[:, None] - grid.centers[None], axis=2) <= radius
    for i in range(0, connectome.n_neurons, 7):
        np.testing.assert_array_equal(grid.candidates[i][grid.mask[i]], np.flatnonzero(inside[i]))
    subgraphs = enclosed_subgraphs(connectome, grid)
    syn_inside = (
        np.linalg.norm(connectome.synapse_positions[:, None] - grid.centers[None], axis=2) <= radius
    )
    for field in range(grid.n_fields):
        np.testing.assert_array_equal(subgraphs.neurons(field), np.flatnonzero(inside[:, field]))
        rows = np.flatnonzero(syn_inside[:, field])
        np.testing.assert_array_equal(subgraphs.synapses(field), rows)
        np.testing.assert_array_equal(
            subgraphs.edges(field),
            np.stack([connectome.pre_index[rows], connectome.post_index[rows]], axis=1),
        )
    np.testing.assert_array_equal(subgraphs.synapse_counts(), syn_inside.sum(axis=0))
    with pytest.raises(ValueError, match="out of range"):
        subgraphs.synapses(grid.n_fields)


def test_field_members_without_a_regular_lattice_uses_a_tree():
    rng = np.random.default_rng(1)
    centers = rng.uniform(0, 100, (20, 3))
    grid = Grid(centers, 40.0, 20.0, np.zeros((1, 1), np.int64), np.ones((1, 1), bool))
    points = rng.uniform(0, 100, (500, 3))
    offsets, indices = field_members(grid, points)
    inside = np.linalg.norm(points[:, None] - centers[None], axis=2) <= 20.0
    for field in range(20):
        np.testing.assert_array_equal(
            np.sort(indices[offsets[field] : offsets[field + 1]]), np.flatnonzero(inside[:, field])
        )
    with pytest.raises(ValueError, match=r"\(M, 3\)"):
        field_members(grid, points[:, :2])
    with pytest.raises(ValueError, match="NaN"):
        field_members(grid, np.full((2, 3), np.nan))


def test_enclosed_subgraphs_refuses_a_grid_of_other_neurons():
    neurons, synapses, *_ = random_tables(n=30, m=60)
    connectome = Connectome.from_tables(neurons, synapses)
    grid = receptive_field_grid(connectome.positions[:10], diameter=50.0)
    with pytest.raises(ValueError, match="grid was built for 10 neurons"):
        enclosed_subgraphs(connectome, grid)


# -- label volumes ----------------------------------------------------------------------------


def blob_labels(seed: int = 2):
    rng = np.random.default_rng(seed)
    shape = (20, 40, 40)
    labels = np.zeros(shape, np.int32)
    zz, yy, xx = np.indices(shape)
    for k in range(1, 13):
        center = rng.uniform([3, 5, 5], [17, 35, 35])
        radius = rng.uniform(3, 6)
        distance2 = (zz - center[0]) ** 2 + (yy - center[1]) ** 2 + (xx - center[2]) ** 2
        labels[distance2 < radius**2] = k * 10
    return labels


def test_contact_edges_equal_overlap_of_dilated_segments():
    labels = blob_labels()
    voxel_size = np.array([2.0, 1.0, 1.0])
    connectome = Connectome.from_labels(labels, voxel_size=voxel_size, tolerance=2.0, min_overlap=3)
    ids = np.unique(labels)[1:]
    offsets = _ball(2.0, voxel_size)
    reach = np.abs(offsets).max(axis=0)
    footprint = np.zeros(tuple(2 * reach + 1), bool)
    footprint[tuple((offsets + reach).T)] = True
    dilated = {i: ndimage.binary_dilation(labels == i, structure=footprint) for i in ids}
    expected = np.zeros((ids.size, ids.size))
    for a in range(ids.size):
        for b in range(ids.size):
            if a != b:
                overlap = (dilated[ids[a]] & dilated[ids[b]]).sum()
                expected[a, b] = overlap if overlap >= 3 else 0
    assert (expected > 0).sum() > 10  # the blobs do touch
    np.testing.assert_array_equal(connectome.ids, ids)
    np.testing.assert_array_equal(connectome.adjacency.toarray(), expected)
    assert not connectome.directed
    zz, yy, xx = np.nonzero(labels == ids[0])
    np.testing.assert_allclose(
        connectome.positions[0], [zz.mean() * 2.0, yy.mean(), xx.mean()], rtol=1e-9
    )


def test_synapse_points_are_assigned_to_segments():
    labels = np.zeros((10, 30, 30), np.int32)
    labels[2:8, 2:12, 2:12] = 5
    labels[2:8, 15:28, 15:28] = 9
    voxel_size = (1.0, 0.5, 0.5)
    synapses = pd.DataFrame(
        {
            "pre_z": [4.0, 4.0, 4.0],
            "pre_y": [3.0, 10.0, 3.0],
            "pre_x": [3.0, 10.0, 6.2],  # 6.2 µm = voxel 12: background, next to segment 5
            "post_z": [4.0, 4.0, 4.0],
            "post_y": [10.0, 3.0, 10.0],
            "post_x": [10.0, 3.0, 10.0],
        }
    )
    connectome = Connectome.from_labels(labels, synapses, voxel_size=voxel_size, search_radius=1.0)
    np.testing.assert_array_equal(connectome.synapses["pre"], [5, 9, 5])
    np.testing.assert_array_equal(connectome.synapses["post"], [9, 5, 9])
    np.testing.assert_array_equal(connectome.adjacency.toarray(), [[0, 2], [1, 0]])
    far = synapses.assign(pre_x=[3.0, 10.0, 7.0])
    with pytest.raises(ValueError, match=r"lie on no segment within 0.25 µm .*\[2\]"):
        Connectome.from_labels(labels, far, voxel_size=voxel_size, search_radius=0.25)
    dropped = Connectome.from_labels(
        labels, far, voxel_size=voxel_size, search_radius=0.25, drop_unassigned=True
    )
    assert dropped.n_synapses == 2


@pytest.mark.parametrize(
    ("labels", "kwargs", "message"),
    [
        (np.zeros((4, 4), int), {}, "3D"),
        (np.zeros((4, 4, 4), float), {}, "integers"),
        (np.zeros((4, 4, 4), int), {}, "no segments"),
        (np.ones((4, 4, 4), int), {"voxel_size": (1.0, 1.0)}, "voxel_size must be"),
        (np.ones((4, 4, 4), int), {"voxel_size": (1.0, -1.0, 1.0)}, "positive"),
        (np.ones((4, 4, 4), int), {"min_overlap": 0}, "min_overlap"),
        (-np.ones((4, 4, 4), int), {}, "negative"),
    ],
)
def test_bad_label_input(labels, kwargs, message):
    kwargs = {"voxel_size": 1.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        Connectome.from_labels(labels, **kwargs)


def test_label_synapses_need_points_or_ids():
    labels = np.ones((4, 4, 4), int)
    with pytest.raises(ValueError, match="pre_z, pre_y"):
        Connectome.from_labels(labels, pd.DataFrame({"z": [1.0]}), voxel_size=1.0)


def test_sparse_huge_ids_and_out_of_range_ids():
    neurons, synapses, pre, post = random_tables(n=50, m=300, seed=8)
    big = neurons["id"].to_numpy() * 10**12  # 64-bit ids spread far apart: hash lookup
    mapping = dict(zip(neurons["id"], big, strict=True))
    huge = Connectome.from_tables(
        neurons.assign(id=big),
        synapses.assign(pre=synapses["pre"].map(mapping), post=synapses["post"].map(mapping)),
    )
    reference = Connectome.from_tables(neurons, synapses)
    assert (huge.adjacency != reference.adjacency).nnz == 0
    low = synapses.assign(pre=np.where(synapses.index == 0, -5, synapses["pre"]))
    with pytest.raises(ValueError, match=r"\(\[-5\]\) in 1 row\(s\): \[0\]"):
        Connectome.from_tables(neurons, low)
