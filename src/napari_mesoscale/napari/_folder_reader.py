"""npe2 reader for the output folders of the command line (``connect``, ``fit``, ``evaluate``).

``napari-mesoscale connect --out connectome/`` writes the connectome's tables, its adjacency,
node features and, when asked, the receptive-field grid and the transmission-response graphs:
the folder opens with the layers *Build connectome* adds (neurons with their features and the
connectome, so *Fit* finds it; synapses; strongest edges; grid; transmission over time).
``fit --out`` opens as its cells (``neurons.csv``: id, z, y, x, domain, motif, confidence) and
the domains at their centres, ``evaluate --output`` as its per-neuron tables placed at the
neurons of a neurons table in the folder (or a notification saying what it holds). napari
offers every reader that accepts folders, so choose *Mesoscale* in its dialog or call
``viewer.open(folder, plugin="napari-mesoscale")``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from napari_mesoscale.napari._layers import LayerDataTuple
from napari_mesoscale.napari._units import in_micrometres

#: files that identify an output folder, by command
FOLDER_FILES = {
    "connect": ("connectome.json", "neurons.parquet"),
    "fit": ("neurons.csv", "domains.csv", "history.csv"),
    "evaluate": ("scores.json", "per_neuron.csv"),
}


def output_folder_kind(path: str | Path) -> str | None:
    """``"connect"``, ``"fit"``, ``"evaluate"`` or None for any other path."""
    path = Path(path)
    if not path.is_dir():
        return None
    for kind, files in FOLDER_FILES.items():
        if all((path / name).is_file() for name in files):
            return kind
    return None


def get_output_folder_reader(
    path: str | list[str],
) -> Callable[[Any], list[LayerDataTuple]] | None:
    """Return a reader for an output folder of the command line, or None for other paths."""
    if isinstance(path, list) or output_folder_kind(path) is None:
        return None
    return read_output_folder


@in_micrometres
def read_output_folder(path: str | list[str]) -> list[LayerDataTuple]:
    """The layers of a ``connect``, ``fit`` or ``evaluate`` output folder."""
    folder = Path(path[0] if isinstance(path, list) else path)
    kind = output_folder_kind(folder)
    if kind == "connect":
        return connectome_folder_layers(folder)
    from napari_mesoscale.napari._connectome_reader import read_any_tables

    if kind == "fit":
        return read_any_tables([str(folder / "neurons.csv"), str(folder / "domains.csv")])
    tables = [folder / name for name in ("per_neuron.csv", "predictivity.csv")]
    return read_any_tables([str(table) for table in tables if table.is_file()])


def connectome_folder_layers(folder: Path) -> list[LayerDataTuple]:
    """What *Build connectome* shows, rebuilt from the files ``connect --out`` wrote."""
    from napari_mesoscale.connectome import Connectome
    from napari_mesoscale.connectome.build import ConnectomeBuild
    from napari_mesoscale.connectome.features import node_features
    from napari_mesoscale.io.tables import read_table
    from napari_mesoscale.napari._connectome_layers import connectome_layers

    connectome = Connectome.read(folder)
    features_path = folder / "node_features.csv"
    features = (
        read_table(features_path, "node features")
        if features_path.is_file()
        else node_features(connectome)
    )
    build = ConnectomeBuild(
        connectome, features, grid=_grid(folder), transmission=_transmission(folder, connectome)
    )
    return connectome_layers(build)


def _grid(folder: Path) -> Any:
    from napari_mesoscale.connectome.grid import Grid

    path = folder / "grid.npz"
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as saved:
        candidates = saved["candidates"]
        return Grid(
            saved["centers"],
            float(saved["diameter"]),
            float(saved["stride"]),
            candidates,
            candidates >= 0,
        )


def _transmission(folder: Path, connectome: Any) -> Any:
    """The transmission-response graphs, or None (none written, or written before they kept
    their event counts and frame count)."""
    from dataclasses import fields

    from napari_mesoscale.connectome.transmission import TransmissionResponseGraphs

    path = folder / "transmission.npz"
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as saved:
        names = [f.name for f in fields(TransmissionResponseGraphs) if f.name != "ids"]
        if not all(name in saved.files for name in names):
            return None
        values = {name: saved[name] for name in names}
    for name in ("bin_size", "delay", "n_frames", "n_neurons"):
        values[name] = int(values[name])
    values["threshold"] = float(values["threshold"])
    values["zscore"] = bool(values["zscore"])
    return TransmissionResponseGraphs(**values, ids=np.asarray(connectome.ids))
