"""What a layer's ``metadata`` holds: the one contract between the plugin's widgets.

Widgets pass data to each other through napari layers. What rides along in a layer's
``metadata`` is declared here, once, as :class:`LayerMetadata`; every widget, reader, writer and
sample-data function reads it with :func:`read` and writes it with :func:`write` (or builds a new
layer's dictionary with :func:`metadata_dict`), never with bare ``layer.metadata[...]`` keys.

Who writes what:

- *Detect point sources* → Points layer of cells: ``activity`` (T, N), ``frame_rate_hz``,
  ``voxel_size_um``, ``roi_labels`` (name of the Labels layer whose label i + 1 is cell i).
- Sample data "connectome" → neurons Points layer: ``activity``, ``stimulus``, ``adjacency``.
- Sample data "calcium", volume reader → Image layer: ``voxel_size_um``, ``frame_rate_hz``,
  ``axes``, ``stimulus`` (sample only).
- *Build connectome* → the neurons Points layer it adds, or the one it was built from:
  ``connectome``.
- *Fit* → the cells layer: ``predicted`` (T, N), ``fit``.
- *Score predictions* → the cells layer: ``colored_by``, ``predictivity_summary``,
  ``predictivity_by_domain``.

Who reads what: *Fit* reads ``activity``, ``connectome`` / ``adjacency``, ``stimulus`` and
``roi_labels``; *Build connectome* reads ``activity``; *Score predictions* reads ``trials`` or
``activity`` and ``predicted``; *Detect point sources* reads ``frame_rate_hz``; the bundle writer
keeps every field and note it can store (arrays, sparse matrices, tables, plain values; not
``fit`` or a ``connectome`` object, which it names) and the bundle reader restores them.

Keys not declared here (display counts such as ``n_shown``, file provenance) are kept in
:attr:`LayerMetadata.notes`: informative for the user, read by no widget.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "ARRAY_FIELDS",
    "LayerMetadata",
    "has_any",
    "layer_names",
    "metadata_dict",
    "read",
    "write",
]

#: The numeric array fields (a results bundle now keeps every storable field, these included).
ARRAY_FIELDS = ("activity", "stimulus", "predicted", "trials")


@dataclass
class LayerMetadata:
    """The typed content of a layer's ``metadata`` (every field optional).

    Attributes
    ----------
    activity : numpy.ndarray or None
        Recorded activity, (T, N): one column per point of the layer.
    trials : numpy.ndarray or None
        Repeated recordings, (R, T, N), for noise-corrected scores.
    predicted : numpy.ndarray or None
        Predicted activity, (T, N).
    stimulus : numpy.ndarray or None
        Stimulus, (T,) or (T, S).
    adjacency : scipy.sparse matrix or None
        Synapse counts, (N, N), pre → post, rows and columns in the layer's point order.
    connectome : Connectome or None
        A whole :class:`~napari_mesoscale.connectome.Connectome` (its own neuron order).
    fit : object or None
        The fit that produced ``predicted``.
    voxel_size_um : tuple of float or None
        (z, y, x) voxel size of the data the layer came from.
    frame_rate_hz : float or None
        Frames per second of ``activity`` (or of the movie, on an Image layer).
    axes : str or None
        Axis names of an Image/Labels layer's data, e.g. ``"TZYX"``.
    roi_labels : str or None
        Name of the Labels layer holding the layer's ROIs (label i + 1 = point i).
    colored_by, predictivity_summary, predictivity_by_domain : optional
        What *Score predictions* painted and computed.
    notes : dict
        Undeclared keys: descriptive only, read by no widget.
    """

    activity: np.ndarray | None = None
    trials: np.ndarray | None = None
    predicted: np.ndarray | None = None
    stimulus: np.ndarray | None = None
    adjacency: Any = None
    connectome: Any = None
    fit: Any = None
    voxel_size_um: tuple[float, ...] | None = None
    frame_rate_hz: float | None = None
    axes: str | None = None
    roi_labels: str | None = None
    colored_by: dict[str, Any] | None = None
    predictivity_summary: str | None = None
    predictivity_by_domain: Any = None
    notes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check()

    @classmethod
    def from_dict(cls, metadata: Mapping[str, Any] | None) -> LayerMetadata:
        """Sort a plain ``metadata`` dictionary into declared fields and notes."""
        declared = _declared_fields()
        known = {k: v for k, v in (metadata or {}).items() if k in declared}
        notes = {k: v for k, v in (metadata or {}).items() if k not in declared}
        return cls(**known, notes=notes)

    def to_dict(self) -> dict[str, Any]:
        """The plain dictionary napari keeps (fields that are set, then the notes)."""
        values = {name: getattr(self, name) for name in _declared_fields()}
        return {**{k: v for k, v in values.items() if v is not None}, **self.notes}

    def arrays(self) -> dict[str, np.ndarray]:
        """The numeric array fields that are set (what a results bundle keeps)."""
        found = {name: getattr(self, name) for name in ARRAY_FIELDS}
        return {k: np.asarray(v) for k, v in found.items() if v is not None}

    def _check(self) -> None:
        for name, ndims in (("activity", (2,)), ("predicted", (2,)), ("trials", (3,)),
                            ("stimulus", (1, 2))):
            value = getattr(self, name)
            if value is None:
                continue
            value = np.asarray(value)
            if value.ndim not in ndims:
                raise ValueError(
                    f"metadata {name!r} must have {' or '.join(map(str, ndims))} dimensions "
                    f"((T, N) for activity and predictions); got shape {value.shape}."
                )
            setattr(self, name, value)
        if self.adjacency is not None and (
            len(self.adjacency.shape) != 2 or self.adjacency.shape[0] != self.adjacency.shape[1]
        ):
            raise ValueError(f"metadata 'adjacency' must be square; got {self.adjacency.shape}.")
        if self.voxel_size_um is not None:
            self.voxel_size_um = tuple(float(v) for v in self.voxel_size_um)
        if self.frame_rate_hz is not None:
            self.frame_rate_hz = float(self.frame_rate_hz)


def _declared_fields() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(LayerMetadata) if f.name != "notes")


def _metadata_of(target: Any) -> dict[str, Any]:
    """The ``metadata`` dictionary of a layer or of a layer-data tuple's attributes."""
    if isinstance(target, dict):
        return target.get("metadata") or {}
    return target.metadata or {}


def read(target: Any) -> LayerMetadata:
    """The :class:`LayerMetadata` of a layer (or of a layer-data tuple's attribute dict)."""
    return LayerMetadata.from_dict(_metadata_of(target))


def write(target: Any, **fields: Any) -> LayerMetadata:
    """Set fields of a layer's metadata (checked against :class:`LayerMetadata`); keep the rest.

    ``target`` is a napari layer or the attribute dict of a layer-data tuple. Undeclared names
    go to the notes. Returns the updated :class:`LayerMetadata`.
    """
    merged = {**_metadata_of(target), **fields}
    updated = LayerMetadata.from_dict(merged)
    if isinstance(target, dict):
        target["metadata"] = updated.to_dict()
    else:
        target.metadata.update(updated.to_dict())
    return updated


def metadata_dict(**fields: Any) -> dict[str, Any]:
    """A new layer's ``metadata`` dictionary, checked against :class:`LayerMetadata`."""
    return LayerMetadata.from_dict(fields).to_dict()


def layer_names(
    viewer: Any,
    kind: type | tuple[type, ...],
    *,
    ndims: Iterable[int] | None = None,
    having: Iterable[str] = (),
    prefer: Iterable[str] = (),
) -> list[str]:
    """Names of the viewer's layers of type ``kind`` (e.g. ``napari.layers.Points``).

    Parameters
    ----------
    viewer : napari.Viewer
    kind : napari layer type or tuple of them
    ndims : iterable of int, optional
        Keep layers with one of these numbers of dimensions.
    having : iterable of str
        Keep layers whose metadata sets at least one of these :class:`LayerMetadata` fields.
    prefer : iterable of str
        List layers whose metadata sets one of these fields first (a picker's default is its
        first choice), the others after them; each group in the viewer's order.
    """
    wanted = tuple(having)
    allowed = None if ndims is None else set(ndims)
    names = []
    for layer in viewer.layers:
        if not isinstance(layer, kind) or (allowed is not None and layer.ndim not in allowed):
            continue
        if wanted and not has_any(layer, wanted):
            continue
        names.append(layer.name)
    preferred = [name for name in names if has_any(viewer.layers[name], prefer)]
    return preferred + [name for name in names if name not in preferred]


def has_any(layer: Any, fields: Iterable[str]) -> bool:
    """Whether a layer's metadata sets at least one of these :class:`LayerMetadata` fields."""
    metadata = read(layer)
    return any(getattr(metadata, name) is not None for name in fields)
