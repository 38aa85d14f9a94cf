"""``napari-mesoscale connect``: files written, numbers kept, errors reported."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import scipy.sparse as sp
from test_connectome import random_tables

from napari_mesoscale.cli import main
from napari_mesoscale.connectome import Connectome, transmission_response_graphs


def test_connect_writes_connectome_features_grid_and_transmission(tmp_path, capsys):
    neurons, synapses, *_ = random_tables(n=80, m=800)
    neurons.to_csv(tmp_path / "neurons.csv", index=False)
    synapses.to_parquet(tmp_path / "synapses.parquet", index=False)
    activity = np.random.default_rng(0).normal(size=(120, 80)).astype(np.float32)
    np.save(tmp_path / "activity.npy", activity)
    out = tmp_path / "out"
    status = main(
        [
            "connect",
            "--neurons",
            str(tmp_path / "neurons.csv"),
            "--synapses",
            str(tmp_path / "synapses.parquet"),
            "--out",
            str(out),
            "--grid-diameter",
            "60",
            "--activity",
            str(tmp_path / "activity.npy"),
            "--bin-size",
            "6",
            "--delay",
            "2",
        ]
    )
    assert status == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    reference = Connectome.from_tables(neurons, synapses)
    assert printed["edges"] == reference.n_edges and printed["bins"] == 20
    adjacency = sp.load_npz(out / "adjacency.npz")
    assert (adjacency != reference.adjacency).nnz == 0
    assert (Connectome.read(out).adjacency != reference.adjacency).nnz == 0
    features = pd.read_csv(out / "node_features.csv")
    assert features["out_degree"].sum() == reference.n_edges
    grid = np.load(out / "grid.npz")
    assert grid["candidates"].shape[0] == 80 and float(grid["diameter"]) == 60.0
    trg = np.load(out / "transmission.npz")
    expected = transmission_response_graphs(reference, activity, bin_size=6, delay=2)
    np.testing.assert_array_equal(trg["edge_ids"], expected.edge_ids)
    np.testing.assert_array_equal(trg["offsets"], expected.offsets)
    summary = pd.read_csv(out / "transmission_summary.csv")
    np.testing.assert_array_equal(summary["count"], expected.counts)


def test_connect_reports_bad_input(tmp_path, capsys):
    assert main(["connect", "--neurons", str(tmp_path / "missing.csv"), "--out", "x"]) == 2
    assert "neurons table not found" in capsys.readouterr().err
    neurons, synapses, *_ = random_tables(n=10, m=20)
    neurons.to_csv(tmp_path / "neurons.csv", index=False)
    np.save(tmp_path / "activity.npy", np.zeros((5, 11)))
    status = main(
        [
            "connect",
            "--neurons",
            str(tmp_path / "neurons.csv"),
            "--out",
            str(tmp_path / "o"),
            "--activity",
            str(tmp_path / "activity.npy"),
        ]
    )
    assert status == 2
    assert "11 neuron columns" in capsys.readouterr().err


def test_connect_options_default_to_the_connectome_params():
    import argparse

    from napari_mesoscale.connectome import ConnectomeParams
    from napari_mesoscale.connectome.cli import configure

    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args(["--neurons", "n.csv", "--out", "o"])
    assert ConnectomeParams.from_namespace(args) == ConnectomeParams()
    args = parser.parse_args(
        ["--neurons", "n.csv", "--out", "o", "--hops", "3", "--value", "weight"]
    )
    assert ConnectomeParams.from_namespace(args) == ConnectomeParams(hops=3, value="weight")
