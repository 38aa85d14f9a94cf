"""The status line of "Build connectome": what was built and from what; on failure, the error.

Built from table files, the status gave the figures but not the files they came from.
"""

from __future__ import annotations

import pandas as pd
import pytest

from napari_mesoscale.napari._sample_data import sample_path

pytestmark = pytest.mark.viewer


def _run(widget, qtbot):
    widget.start()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=120_000)


def test_build_from_table_files_names_them_and_a_failed_build_says_so(
    make_napari_viewer, qtbot, tmp_path
):
    from napari_mesoscale.napari._connectome_widget import ConnectomeWidget

    viewer = make_napari_viewer()
    widget = ConnectomeWidget(viewer)
    widget._neurons_file.value = sample_path("neurons")
    widget._synapses_file.value = sample_path("synapses")
    _run(widget, qtbot)
    assert widget.last_error is None, widget.last_error
    built = widget.last_result.connectome
    assert widget._status.value == (
        f"{built.n_neurons} neurons, {built.n_synapses:,} synapses, {built.n_edges:,} edges. "
        "Built from toy_neurons.csv and toy_synapses.csv."
    ), widget._status.value

    # synapses naming a neuron the neurons table lacks: the build fails in its worker
    synapses = pd.read_csv(sample_path("synapses"))
    synapses.loc[0, "pre"] = 10**6
    synapses.to_csv(tmp_path / "bad_synapses.csv", index=False)
    widget._synapses_file.value = tmp_path / "bad_synapses.csv"
    _run(widget, qtbot)
    assert widget.last_error is not None
    assert widget._status.value == f"Error: {widget.last_error}"
    assert "Built from" not in widget._status.value


def test_build_from_a_neurons_table_alone_names_it(make_napari_viewer, qtbot):
    from napari_mesoscale.napari._connectome_widget import ConnectomeWidget

    viewer = make_napari_viewer()
    widget = ConnectomeWidget(viewer)
    widget._neurons_file.value = sample_path("neurons")
    _run(widget, qtbot)
    assert widget.last_error is None, widget.last_error
    assert widget._status.value.endswith(" edges. Built from toy_neurons.csv."), (
        widget._status.value
    )


def test_a_folder_as_synapses_table_says_it_is_a_folder(make_napari_viewer, qtbot, tmp_path):
    """'synapses table not found: <folder>' before, for a folder that exists."""
    from napari_mesoscale.napari._connectome_widget import ConnectomeWidget

    viewer = make_napari_viewer()
    widget = ConnectomeWidget(viewer)
    widget._neurons_file.value = sample_path("neurons")
    widget._synapses_file.value = tmp_path
    _run(widget, qtbot)
    assert widget.last_error is not None
    assert "is a folder" in str(widget.last_error), widget.last_error
    assert widget._status.value == f"Error: {widget.last_error}"
