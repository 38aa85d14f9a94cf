"""The command line's output folders and tables opened in napari, as a user drops them in.

Before: a ``connect --out`` folder had no reader, and ``domains.csv``, ``history.csv`` or the
per-neuron scores of ``evaluate`` were "refused" by napari with no word of why.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.viewer


@pytest.fixture
def infos(monkeypatch):
    """The messages the plugin's readers show in napari notifications."""
    shown: list[str] = []
    monkeypatch.setattr("napari.utils.notifications.show_info", shown.append)
    return shown


@pytest.fixture(scope="module")
def fit_folder(tmp_path_factory):
    from napari_mesoscale.cli import main
    from napari_mesoscale.napari._sample_data import sample_path

    out = tmp_path_factory.mktemp("shell") / "fit"
    args = ["fit", str(sample_path("activity")), "--neurons", str(sample_path("neurons")),
            "--epochs", "1", "-o", str(out), "--quiet"]
    assert main(args) == 0
    return out


def test_fit_folder_opens_as_cells_and_domain_centres(make_napari_viewer, fit_folder):
    viewer = make_napari_viewer()
    cells, domains = viewer.open(str(fit_folder), plugin="napari-mesoscale")
    table = pd.read_csv(fit_folder / "domains.csv")
    neurons = pd.read_csv(fit_folder / "neurons.csv")
    assert (cells.name, domains.name) == ("neurons", "domains")
    assert len(domains.data) == len(table) == neurons["domain"].nunique()
    for row, point in zip(table.itertuples(), domains.data, strict=True):
        members = neurons.loc[neurons["domain"] == row.domain, ["z", "y", "x"]].to_numpy()
        np.testing.assert_allclose(point, members.mean(0), atol=1e-6)
    assert list(domains.features["motif"]) == list(table["motif"])
    # a bigger domain is drawn bigger
    sizes = np.asarray(domains.size).reshape(len(table), -1)[:, 0]
    order = np.argsort(table["size"].to_numpy())
    assert sizes[order[-1]] > sizes[order[0]]


def test_history_table_says_why_nothing_opens(make_napari_viewer, fit_folder, infos):
    viewer = make_napari_viewer()
    layers = viewer.open(str(fit_folder / "history.csv"), plugin="napari-mesoscale")
    assert layers == [] and len(viewer.layers) == 0
    [message] = infos
    assert "history.csv holds the fit's losses" in message
    assert "no positions" in message and "pandas.read_csv" in message


def test_evaluate_scores_sit_on_the_neurons_beside_them(
    make_napari_viewer, fit_folder, tmp_path, infos
):
    from napari_mesoscale.cli import main
    from napari_mesoscale.napari._sample_data import sample_path

    out = tmp_path / "scores"
    args = ["evaluate", str(sample_path("activity")), "--predicted",
            str(fit_folder / "predicted.npy"), "-o", str(out)]
    assert main(args) in (0, 1)
    viewer = make_napari_viewer()
    assert viewer.open(str(out / "per_neuron.csv"), plugin="napari-mesoscale") == []
    assert "Put it in the folder of a neurons table" in infos[-1]
    shutil.copy(sample_path("neurons"), out / "neurons.csv")
    [layer] = viewer.open(str(out / "per_neuron.csv"), plugin="napari-mesoscale")
    truth = pd.read_csv(sample_path("neurons"))
    scores = pd.read_csv(out / "per_neuron.csv")
    rows = scores["neuron"].to_numpy()
    np.testing.assert_allclose(layer.data, truth[["z", "y", "x"]].to_numpy()[rows])
    np.testing.assert_allclose(layer.features["r2"], scores["r2"])
    assert list(layer.features["id"]) == list(truth["id"].to_numpy()[rows])


def test_connect_folder_opens_as_build_connectome_shows_it(make_napari_viewer, tmp_path):
    from napari_mesoscale.cli import main
    from napari_mesoscale.connectome import build_connectome
    from napari_mesoscale.napari._sample_data import sample_path

    out = tmp_path / "connectome"
    neurons, synapses = sample_path("neurons"), sample_path("synapses")
    args = ["connect", "--neurons", str(neurons), "--synapses", str(synapses), "--out",
            str(out), "--grid-diameter", "40", "--activity", str(sample_path("activity")),
            "--bin-size", "10", "--delay", "1"]
    assert main(args) == 0
    viewer = make_napari_viewer()
    layers = viewer.open(str(out), plugin="napari-mesoscale")
    names = [layer.name for layer in layers]
    assert names[0] == "synapses" and names[-1] == "neurons"
    assert any(name.startswith("transmission") for name in names)
    assert any(name.startswith("receptive fields") for name in names)
    built = build_connectome(neurons, synapses)
    cells = viewer.layers["neurons"]
    opened = cells.metadata["connectome"].adjacency
    assert (abs(opened - built.connectome.adjacency)).sum() == 0
    np.testing.assert_allclose(cells.features["out_degree"], built.features["out_degree"])
    transmission = next(layer for layer in layers if "transmission" in layer.name)
    assert transmission.ndim == 4  # edges follow the time slider
