"""The "Build connectome" widget: tables (or a Points layer) → connectome layers.

It runs :func:`napari_mesoscale.connectome.build_connectome` in a worker and adds:

- ``neurons``: Points with node features (degree, weighted degree, information flow,
  neighbourhood size, type, motif, …), coloured by motif or type when known; built from a
  Points layer, that layer is the neurons: the node features join its ``features`` and the
  connectome its ``metadata`` (points, scale and colours stay), where a second layer of the
  same points was added (``neurons_2`` beside a user's ``neurons``);
- ``synapses``: small Points (subsampled beyond a limit, the count in the name), unless the
  Points layer they were built from still shows exactly them (the connectome sample's);
- ``edges``: Vectors of the strongest k out-edges per neuron (subsampled, counts in the name
  and ``metadata``), orange excitatory, blue inhibitory;
- ``receptive fields``: the grid centres as Points of the field diameter, hidden by default;
- ``transmission``: the transmission-response graphs as (K, 2, 4) Vectors with a time axis in
  frames, so the edges that transmitted follow the time slider.

Neurons come from table files or from a Points layer (its data in world µm, ``features`` with
an ``id`` column if present, and ``metadata['activity']`` (T, N) if present). Synapses come
from a table file or a Points layer whose ``features`` hold ``pre`` and ``post``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import napari
import numpy as np
import pandas as pd
from magicgui.widgets import CheckBox, ComboBox, FileEdit, SpinBox

from napari_mesoscale.connectome.build import build_connectome
from napari_mesoscale.connectome.params import ConnectomeParams
from napari_mesoscale.napari import _contract
from napari_mesoscale.napari._connectome_layers import connectome_layers, write_build_into
from napari_mesoscale.napari._layers import world_positions
from napari_mesoscale.napari._param_controls import param_control
from napari_mesoscale.napari._runner import CoreCall, CoreTaskWidget

_FILES = "table files"
_LAYER = "Points layer"
_NONE = "(none)"


def _path(value: Any) -> Path | None:
    if value in (None, ""):
        return None
    path = Path(value)
    return None if str(path) in ("", ".") else path


def points_to_table(layer: napari.layers.Points) -> pd.DataFrame:
    """A table (z, y, x in world µm + the layer's features) from a 3D Points layer."""
    world = world_positions(layer)
    table = layer.features.reset_index(drop=True).copy()
    table["z"], table["y"], table["x"] = world[:, 0], world[:, 1], world[:, 2]
    return table


#: what marks a Points layer as neurons rather than synapses: their activity or adjacency
_NEURONS = ("activity", "adjacency")
#: the one message when no layer and no file can build a connectome (e.g. the EM sample)
NOTHING_TO_BUILD = (
    "Nothing here can build a connectome: it needs synapses. Add a Points layer of synapses "
    "whose features hold 'pre' and 'post' (neuron ids) beside a Points layer of neurons, open a "
    "sample that carries them (File ▸ Open Sample ▸ napari-mesoscale ▸ connectome or "
    "C. elegans), or choose a neurons table (CSV or Parquet with id, z, y, x in µm) and a "
    "synapses table. Somata detected in EM give the neurons, not their synapses."
)


class ConnectomeWidget(CoreTaskWidget):
    """Build a connectome from tables or a Points layer and show it as layers."""

    run_text = "Build connectome"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self._source = ComboBox(label="neurons from", choices=(_FILES, _LAYER), value=_FILES)
        self._neurons_file = FileEdit(
            label="neurons table", mode="r", filter="*.csv *.parquet *.pq *.tsv"
        )
        self._synapses_file = FileEdit(
            label="synapses table", mode="r", filter="*.csv *.parquet *.pq *.tsv"
        )
        self._neurons_layer = ComboBox(label="neurons layer", choices=self._points_names)
        self._synapses_layer = ComboBox(label="synapses layer", choices=self._synapse_choices)
        self._activity_file = FileEdit(
            label="activity (T, N)", mode="r", filter="*.npy *.csv *.parquet"
        )
        self._per_neuron = SpinBox(label="edges per neuron", value=3, min=1, max=100)
        self._max_edges = SpinBox(label="max edges shown", value=20_000, min=100, max=1_000_000)
        # the build's own options: defaults, ranges and help from ConnectomeParams
        self._value = param_control(ConnectomeParams, "value")
        self._diameter = param_control(ConnectomeParams, "grid_diameter")
        self._hops = param_control(ConnectomeParams, "hops")
        self._bin_size = param_control(ConnectomeParams, "bin_size")
        self._delay = param_control(ConnectomeParams, "delay")
        self._threshold = param_control(ConnectomeParams, "threshold")
        self._per_bin = SpinBox(label="TRG edges per bin shown", value=2_000, min=10, max=10**6)
        self._view_3d = CheckBox(label="switch to 3D view", value=True)
        #: per neurons layer (by id), the columns the last build wrote into it
        self._node_columns: dict[int, list[str]] = {}
        self._source.changed.connect(self._update_visibility)
        self.add_controls(
            self._source,
            self._neurons_file,
            self._synapses_file,
            self._neurons_layer,
            self._synapses_layer,
            self._activity_file,
            self._per_neuron,
            self._max_edges,
            self._value,
            self._diameter,
            self._hops,
            self._bin_size,
            self._delay,
            self._threshold,
            self._per_bin,
            self._view_3d,
        )
        viewer.layers.events.inserted.connect(self._refresh)
        viewer.layers.events.removed.connect(self._refresh)
        self._update_visibility()
        self._refresh()

    # -- choices -------------------------------------------------------------------------
    def _points_names(self, *_: Any) -> list[str]:
        return _contract.layer_names(self._viewer, napari.layers.Points, prefer=_NEURONS)

    def _synapse_choices(self, *_: Any) -> list[str]:
        return [_NONE, *self._points_names()]

    def _refresh(self, *_: Any) -> None:
        chosen = self._neurons_layer.value
        # a neurons layer the user picked stays while it exists and carries what it needs
        auto = getattr(self, "_neurons_auto", None)
        users = auto is not None and chosen != auto
        self.prefer_layer(self._neurons_layer, _NEURONS)
        self._choose_synapses()
        if not users or self._neurons_layer.value != chosen:
            self._choose_neurons_of_synapses()
            self._neurons_auto = self._neurons_layer.value
        if (
            self._source.value == _FILES
            and _path(self._neurons_file.value) is None
            and self._layers_offer_inputs()
        ):
            self._source.value = _LAYER  # the viewer holds the connectome: no table to choose

    def _layers_offer_inputs(self) -> bool:
        """Whether the layers hold the build's inputs: a synapses Points layer (``pre``, ``post``
        features) or a neurons layer carrying an adjacency or activity (somata detected in EM,
        with neither, leave the table files chosen)."""
        neurons = self._neurons_layer.value
        layers = self._viewer.layers
        return self._synapses_layer.value not in (None, _NONE) or (
            neurons in layers and _contract.has_any(layers[neurons], _NEURONS)
        )

    def _choose_synapses(self) -> None:
        """Pick the Points layer whose features hold ``pre`` and ``post`` unless one was chosen.

        Left at "(none)", a build from the connectome sample ran on no synapses and added an
        empty transmission layer.
        """
        picker = self._synapses_layer
        picker.reset_choices()
        layers = self._viewer.layers
        found = [
            name
            for name in picker.choices
            if name in layers and {"pre", "post"} <= set(getattr(layers[name], "features", {}))
        ]
        self.fill_picker(picker, found[0] if found else None, _NONE)

    def _choose_neurons_of_synapses(self) -> None:
        """Move the neurons picker to the layer the chosen synapses refer to.

        With cells detected in the calcium movie and then the connectome sample opened, the
        picker stayed on the detected cells (they carry activity, and came first): the build
        failed on synapse ids missing from them. Among the layers carrying activity or an
        adjacency, one holding every ``pre`` and ``post`` id of the synapses comes first, and
        of those one carrying an adjacency (the connectome's own neurons). A neurons table
        opened from a file carries neither but holds the ids: it is a candidate too (the picker
        stayed on the detected cells and the build failed).
        """
        synapse_name = self._synapses_layer.value
        layers = self._viewer.layers
        if synapse_name in (None, _NONE) or synapse_name not in layers:
            return
        features = getattr(layers[synapse_name], "features", None)
        try:
            wanted = set(np.unique(features[["pre", "post"]].to_numpy()).tolist())
        except (KeyError, TypeError):
            return

        picker = self._neurons_layer
        rank: dict[str, tuple[bool, bool]] = {}  # (holds every synapse id, has an adjacency)
        for name in picker.choices:
            if name not in layers or name == synapse_name:
                continue
            layer = layers[name]
            ids = getattr(layer, "features", {}).get("id")
            # a neurons table opened from a file (ids, no activity) is the synapses' own neurons
            if ids is None and not _contract.has_any(layer, _NEURONS):
                continue
            ids = np.arange(len(layer.data)) if ids is None else np.asarray(ids)
            holds = wanted <= set(ids.tolist())
            if holds or _contract.has_any(layer, _NEURONS):
                rank[name] = (holds, _contract.read(layer).adjacency is not None)
        if not rank:
            return
        best = max(rank, key=rank.__getitem__)  # the first of the best, in the picker's order
        if picker.value not in rank or rank[picker.value] < rank[best]:
            picker.value = best

    def _update_visibility(self, *_: Any) -> None:
        from_files = self._source.value == _FILES
        self._neurons_file.visible = from_files
        self._synapses_file.visible = from_files
        self._neurons_layer.visible = not from_files
        self._synapses_layer.visible = not from_files

    # -- running -------------------------------------------------------------------------
    def prepare(self) -> CoreCall:
        self._note = ""  # what the status adds about the inputs the build took or left out
        self._synapse_input: Any = None  # the Points layer the synapses came from, if any
        self._neurons_input: Any = None  # the Points layer the neurons came from, if any
        self._input_columns: set[str] = set()  # that layer's own feature columns
        activity = None
        python_activity = ""
        activity_path = _path(self._activity_file.value)
        if activity_path is not None:
            if not activity_path.is_file():
                raise FileNotFoundError(f"activity file not found: {activity_path}")
            from napari_mesoscale.connectome.cli import read_activity

            activity = read_activity(activity_path)
            python_activity = f", activity=read_activity({str(activity_path)!r})"
            extra_names: dict[str, Any] = {"read_activity": read_activity}
        else:
            extra_names = {}
        if self._source.value == _FILES:
            neurons_path = _path(self._neurons_file.value)
            if neurons_path is None and not self._layers_offer_inputs():
                raise ValueError(NOTHING_TO_BUILD)
            if neurons_path is None or not neurons_path.is_file():
                raise ValueError("choose a neurons table (CSV or Parquet with id, z, y, x in µm).")
            synapses_path = _path(self._synapses_file.value)
            if synapses_path is not None and synapses_path.is_dir():
                raise ValueError(
                    f"the synapses table {str(synapses_path)!r} is a folder: choose a CSV or "
                    "Parquet file with pre and post, or clear the field to build without synapses."
                )
            if synapses_path is not None and not synapses_path.is_file():
                raise FileNotFoundError(f"synapses table not found: {synapses_path}")
            neurons: Any = neurons_path
            synapses: Any = synapses_path
            python_tables = f"{str(neurons_path)!r}, " + (
                f"{str(synapses_path)!r}" if synapses_path else "None"
            )
            names = {}
            self._note = " Built from " + " and ".join(
                path.name for path in (neurons_path, synapses_path) if path is not None
            ) + "."
        else:
            name = self._neurons_layer.value
            if name is None:
                raise ValueError("add a Points layer of neurons (3D, µm) or choose table files.")
            layer = self._viewer.layers[name]
            self._neurons_input = layer
            neurons = points_to_table(layer)
            # what an earlier build wrote into this layer is no input of this one
            earlier = self._node_columns.get(id(layer), ())
            neurons = neurons.drop(columns=[c for c in earlier if c not in ("z", "y", "x")],
                                   errors="ignore")
            self._input_columns = set(neurons.columns)
            if "id" not in neurons.columns:
                neurons.insert(0, "id", np.arange(len(neurons)))
            if activity is None and _contract.read(layer).activity is not None:
                activity = _contract.read(layer).activity
                python_activity = f", activity=viewer.layers[{name!r}].metadata['activity']"
                if not np.isfinite(np.asarray(activity, dtype=float)).all():
                    # masked (NaN) trials, e.g. the worm atlas: the connectome is still built
                    activity, python_activity = None, ""
                    self._note = (
                        f" No transmission graphs: the activity of {name!r} has unobserved "
                        "(NaN) values."
                    )
            synapses = None
            python_synapses = "None"
            synapse_name = self._synapses_layer.value
            adjacency = _contract.read(layer).adjacency
            if synapse_name in (None, _NONE) and adjacency is not None:
                synapses = adjacency_synapses(neurons["id"], adjacency)
                python_synapses = "synapse_table"
                self._note = f" Synapses from the adjacency of {name!r}." + self._note
            elif synapse_name in (None, _NONE):
                raise ValueError(f"{name!r} carries no synapses. " + NOTHING_TO_BUILD)
            else:
                synapse_layer = self._viewer.layers[synapse_name]
                synapses = points_to_table(synapse_layer)
                missing = [c for c in ("pre", "post") if c not in synapses.columns]
                if missing:
                    raise ValueError(
                        f"synapses layer {synapse_name!r} needs 'pre' and 'post' columns in its "
                        f"features (neuron ids); it lacks {missing}."
                    )
                if synapse_name == name:  # every synapse would become a neuron of its own
                    raise ValueError(
                        f"{name!r} is chosen as both the neurons and the synapses layer; choose "
                        "the layer of synapses (features 'pre' and 'post') as synapses and the "
                        "layer of neurons as neurons."
                    )
                python_synapses = "synapse_table"
                self._synapse_input = synapse_layer
            python_tables = f"neuron_table, {python_synapses}"
            names = {"neuron_table": neurons, "synapse_table": synapses}
        options = self.params()
        kwargs = {"neurons": neurons, "synapses": synapses, "activity": activity, **options}
        python = (
            f"build = build_connectome({python_tables}{python_activity}, "
            + ", ".join(f"{k}={v!r}" for k, v in options.items())
            + ")"
        )
        return CoreCall(
            function=build_connectome,
            kwargs=kwargs,
            python=python,
            console_names={**names, **extra_names},
            result_name="build",
        )

    def params(self) -> dict[str, Any]:
        """The build options chosen in the controls (validated against ConnectomeParams)."""
        options = ConnectomeParams().replace(
            value=self._value.value,
            grid_diameter=float(self._diameter.value),
            hops=int(self._hops.value),
            bin_size=int(self._bin_size.value),
            delay=int(self._delay.value),
            threshold=float(self._threshold.value),
        )
        values = options.validate().to_dict()
        values.pop("grid_stride")
        return values

    def on_result(self, result: Any) -> None:
        shown_in = self._synapses_shown_in(result.connectome)
        # built from a Points layer, the neurons are that layer: it gets the node features and
        # the connectome (as Fit and Score write into the cells they ran on), where a second
        # layer of the same points was added (``neurons_2`` beside a user's ``neurons``)
        target = self._neurons_target(result)
        note = getattr(self, "_note", "")
        if target is not None:
            written = write_build_into(target, result, self._node_columns.get(id(target), ()))
            own_columns = self._input_columns
            self._node_columns[id(target)] = [c for c in written if c not in own_columns]
            note += f" Node features and the connectome written into {target.name!r}."
        # layers an earlier build added that this build ran on (its neurons, the synapses it
        # shows): kept, not replaced, and still this widget's, so a build from tables replaces
        # them later
        inputs = [target, self._synapse_input if shown_in is not None else None]
        own = self._added.get("connectome", [])
        kept = [layer for layer in own if any(layer is used for used in inputs)]
        for layer in kept:
            own.remove(layer)
        layers = connectome_layers(
            result,
            per_neuron=int(self._per_neuron.value),
            max_edges=int(self._max_edges.value),
            max_per_bin=int(self._per_bin.value),
            synapses=shown_in is None,
            neurons=target is None,
        )
        source = getattr(self, "_neurons_input", None)  # None: built from tables, in µm
        self.replace_layers(layers, key="connectome", like=getattr(source, "name", None))
        self._added["connectome"].extend(kept)
        if shown_in is not None:
            note += f" Its synapses are those of {shown_in!r}: not added again."
        self._status.value = build_summary(result) + note
        if self._view_3d.value:
            self._viewer.dims.ndisplay = 3
        try:
            self._viewer.update_console(
                {"connectome": result.connectome, "node_features": result.features}
            )
        except Exception:  # noqa: BLE001 - the console is optional (headless viewers)
            pass

    def _neurons_target(self, build: Any) -> Any:
        """The Points layer the neurons came from, when it is still in the viewer with one point
        per built neuron (else None: the build's neurons are added as a layer)."""
        layer = getattr(self, "_neurons_input", None)
        if layer is None or layer not in self._viewer.layers:
            return None
        if len(layer.data) != build.connectome.n_neurons:
            return None
        return layer

    def _synapses_shown_in(self, connectome: Any) -> str | None:
        """The name of the viewer's layer that already shows exactly the built synapses.

        Built from the connectome sample's ``synapses`` layer, the build added a copy of it
        (``synapses_2``) beside it. When the synapses came from a Points layer still in the
        viewer, with the same count, positions (world µm) and ``pre``/``post`` in the same order,
        that layer is their view and the build adds none.
        """
        layer = getattr(self, "_synapse_input", None)
        if layer is None or layer not in self._viewer.layers:
            return None
        built = connectome.synapses
        if len(layer.data) != len(built):
            return None
        features = getattr(layer, "features", None)
        try:
            same_ids = np.array_equal(
                np.asarray(features[["pre", "post"]]), built[["pre", "post"]].to_numpy()
            )
        except (KeyError, TypeError):
            return None
        positions = world_positions(layer)
        if not same_ids or not np.allclose(positions, connectome.synapse_positions):
            return None
        return layer.name


def adjacency_synapses(ids: Any, adjacency: Any) -> pd.DataFrame:
    """A synapse table (``pre``, ``post``, ``weight``, ``sign``) from an (N, N) adjacency over
    ``ids``: whole synapse counts become one row per synapse, so that ``value="count"``
    rebuilds the same adjacency; other weights one row per edge."""
    import scipy.sparse as sp

    matrix = sp.coo_matrix(adjacency)
    keep = matrix.data != 0
    pre, post, values = matrix.row[keep], matrix.col[keep], matrix.data[keep]
    magnitude = np.abs(values)
    if np.allclose(magnitude, np.rint(magnitude)):
        repeats, weight = np.rint(magnitude).astype(np.int64), np.ones(magnitude.size)
    else:
        repeats, weight = np.ones(magnitude.size, dtype=np.int64), magnitude
    ids = np.asarray(ids)
    return pd.DataFrame(
        {
            "pre": np.repeat(ids[pre], repeats),
            "post": np.repeat(ids[post], repeats),
            "weight": np.repeat(weight, repeats),
            "sign": np.repeat(np.sign(values), repeats),
        }
    )


def build_summary(result: Any) -> str:
    """One line on a built connectome: neurons, synapses, edges, transmitting edges."""
    connectome = result.connectome
    parts = [
        f"{connectome.n_neurons:,} neurons",
        f"{connectome.n_synapses:,} synapses",
        f"{connectome.n_edges:,} edges",
    ]
    transmission = result.transmission
    if transmission is not None:
        parts.append(
            f"{int(np.count_nonzero(transmission.counts)):,} edges transmitted in "
            f"{transmission.n_bins} bins of {transmission.bin_size} frames"
        )
    return ", ".join(parts) + "."
