"""File ▸ Open Sample ▸ napari-mesoscale ▸ C. elegans: connectome and signal-propagation atlas.

Needs the ``worm`` data packages (see :mod:`napari_mesoscale.datasets.celegans`). The neurons
layer carries the same ``metadata`` as the toy brain's ``neurons (truth)`` (``activity``
(T, N), ``stimulus``, ``adjacency``), so the fit and connectome widgets work on it unchanged;
``activity`` is the atlas as one trial per stimulated neuron (``stimulation_trials``).
Opened, the worm is shown whole in 3D from its left side (:func:`show_worm` restores that
view), points a soma wide; the chemical synapses layer is hidden (tick its eye to show it).
A *C. elegans view* dock under the layer list frames the whole worm, its head or its tail in
one click (``show_worm(viewer, part="head")``) and, ticked, writes the neurons' names above
them where they fit without overlapping another name, front neurons first, again each time
the camera moves (:func:`show_names`; zoom in for more of the nerve ring's names); the neuron
under the cursor is named in a tooltip (napari's layer tooltip, switched on for that viewer)
and in the status bar.

Colour the neurons by their measured response to one stimulated neuron from the console::

    from napari_mesoscale.napari._worm_sample import colour_by_response
    colour_by_response(viewer.layers["C. elegans neurons"], "AVAL")

or by the response the response field predicts for it, fitted without AVAL's own column
(``celegans.predict_response``; the first call per neuron fits in a background thread,
cancellable from napari's activity dock)::

    colour_by_response(viewer.layers["C. elegans neurons"], "AVAL", predicted=True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from napari_mesoscale.napari._layers import LayerDataTuple, edge_vectors_layer, points_layer
from napari_mesoscale.napari._units import in_micrometres

NEURONS_LAYER = "C. elegans neurons"
SYNAPSES_LAYER = "C. elegans chemical synapses"
DEFAULT_STIMULATED = "AVJR"
#: the worm's length over the point diameter (:func:`point_size_um`)
POINTS_PER_LENGTH = 100.0
#: per viewer (by id), the handler keeping the worm fitted to the canvas (:func:`show_worm`)
_REFITS: dict[int, Any] = {}
#: per viewer (by id), the handler giving Home the worm's lateral view (:func:`show_worm`)
_HOMES: dict[int, Any] = {}
#: feature the response colouring reads (the response, 0 at the stimulated neuron)
SHOWN_FEATURE = "response_shown"
#: grey of neurons whose response was never observed
UNOBSERVED_GREY = 0.4
#: how far (µm, dorsally) the stimulated neuron's name is written above it
LABEL_RAISE_UM = 30.0
#: quantile of the observed |response| at which the colours saturate
LIMIT_QUANTILE = 0.95
#: degrees the lateral view is turned about the body axis (:func:`show_worm`)
VIEW_TILT_DEG = 25.0
#: µm behind the anterior-most soma that the head view frames: the head ganglia around the
#: nerve ring, 158 of the 302 somata (the next 20 µm add the retrovesicular ganglion's 26)
HEAD_UM = 60.0
#: µm before the posterior-most soma that the tail view frames: the tail ganglia, 37 somata
TAIL_UM = 60.0
#: the parts of the worm :func:`show_worm` frames
PARTS = ("whole", "head", "tail")
#: name of the dock with the whole worm / head / tail buttons (:func:`show_worm`)
VIEW_DOCK = "C. elegans view"
#: share of the canvas left blank around the framed neurons (napari's ``fit_to_view`` margin)
FIT_MARGIN = 0.05


@in_micrometres
def worm_sample(source: str = "white_1986", strain: str = "wt") -> list[LayerDataTuple]:
    """Worm neurons (Points coloured by class), chemical synapses (Vectors, hidden), atlas as
    features; the viewer that opens it shows the whole worm from its left side in 3D
    (:func:`show_worm`)."""
    from napari_mesoscale.datasets import celegans

    data = celegans.load_celegans(source, strain)
    neurons = data.neurons
    names = neurons["id"].tolist()
    index = {name: row for row, name in enumerate(names)}
    positions = neurons[["z", "y", "x"]].to_numpy()
    features = neurons.drop(columns=["z", "y", "x"])
    response = celegans.response_to(DEFAULT_STIMULATED, strain)
    features["response"] = features["id"].map(response).to_numpy(dtype=float)
    features["predicted_response"] = np.nan  # filled by colour_by_response(..., predicted=True)
    layer = points_layer(
        positions,
        NEURONS_LAYER,
        features=features,
        size=point_size_um(positions),
        color_by="neuron_class",
        border_width=0.1,
        border_color="#202020",
    )
    chemical = data.chemical
    pre = chemical["pre"].map(index).to_numpy()
    post = chemical["post"].map(index).to_numpy()
    activity, stimulus, stimulated = celegans.stimulation_trials(names, strain)
    adjacency = sp.csr_matrix(
        (chemical["synapses"].to_numpy(), (pre, post)), shape=(len(names), len(names))
    )
    layer[1]["metadata"] = {
        "activity": activity,
        "stimulus": stimulus,
        "stimulated": stimulated,
        "adjacency": adjacency,
        "atlas": data.atlas.drop(columns=["kernel", "dff_trials"]),
        "strain": strain,
        "source": source,
    }
    # hidden: 2,000+ lines over the whole body drowned the neurons' colours (tick to show)
    edges = edge_vectors_layer(
        positions[pre],
        positions[post],
        SYNAPSES_LAYER,
        features=chemical,
        edge_color="#8888ff",
        edge_width=0.3,
        opacity=0.25,
        visible=False,
    )
    _show_worm_when_added(adjacency)
    return [edges, layer]


def point_size_um(positions: np.ndarray) -> float:
    """Point diameter (µm) scaled to the worm: 1/100 of its length (7 µm for the adult's
    ~720 µm of somata), about a soma, and a few pixels when the whole worm fills the canvas."""
    extent = np.ptp(np.asarray(positions, dtype=float), axis=0)
    return float(round(max(extent.max() / POINTS_PER_LENGTH, 1.0), 1))


def show_worm(viewer: Any, layer: Any = None, part: str = "whole") -> None:
    """Show the whole worm, or its head or tail: 3D, seen from its left side (anterior left,
    dorsal up), tilted by :data:`VIEW_TILT_DEG` so that left/right homologues do not hide each
    other, zoomed so that the part's neurons fill the canvas, and kept so as docks open or
    close until the camera is moved; napari's Home button brings the whole worm back while the
    worm sample is all the viewer shows.

    Parameters
    ----------
    viewer : napari.Viewer
    layer : napari Points layer, optional
        The neurons; default the layer named :data:`NEURONS_LAYER`.
    part : {"whole", "head", "tail"}
        What to frame: the whole worm, the head (the somata within :data:`HEAD_UM` of the
        anterior-most one: the ganglia of the nerve ring) or the tail (within
        :data:`TAIL_UM` of the posterior-most one), see :func:`worm_part`. The points are
        resized to 1/100 of the part's length (:func:`point_size_um`; 1 µm in the head and
        the tail, 7.2 µm for the whole worm), so that they stay a few pixels apart.
    """
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, not {part!r}")
    layer = viewer.layers[NEURONS_LAYER] if layer is None else layer
    _frame_worm(viewer, layer, part)
    _home_to_worm(viewer, layer)


def worm_part(positions: np.ndarray, part: str) -> np.ndarray:
    """Which neurons (rows of ``positions``, (N, 3) z, y, x in µm, anterior at small y) a
    part of :data:`PARTS` holds, as a boolean mask."""
    along = np.asarray(positions, dtype=float)[:, 1]
    if part == "head":
        return along <= along.min() + HEAD_UM
    if part == "tail":
        return along >= along.max() - TAIL_UM
    if part == "whole":
        return np.ones(len(along), dtype=bool)
    raise ValueError(f"part must be one of {PARTS}, not {part!r}")


def _frame_worm(viewer: Any, layer: Any, part: str = "whole") -> None:
    viewer.dims.ndisplay = 3
    tilt = np.deg2rad(VIEW_TILT_DEG)
    # scene axes are (z, y, x) in µm: body axis y, dorso-ventral z, left-right x
    camera = getattr(viewer, "scene", viewer).camera  # viewer.camera before napari 0.9
    camera.set_view_direction((-np.sin(tilt), 0.0, np.cos(tilt)), (1.0, 0.0, 0.0))
    _fit_part(viewer, layer, part)
    _refit_on_resize(viewer, layer, camera, part)


def _fit_part(viewer: Any, layer: Any, part: str) -> None:
    """Centre and zoom the camera on ``part`` of the worm as napari's ``fit_to_view`` does for
    a whole layer (the part's projected extent, points included, over the canvas, less a
    :data:`FIT_MARGIN` margin), the points sized to the part (:func:`point_size_um`)."""
    world = np.asarray(layer.data, dtype=float) * np.asarray(layer.scale) + np.asarray(
        layer.translate
    )
    positions = world[worm_part(world, part)]
    # points 1/100 of the framed length, as for the whole worm: about 8-14 px in every view
    # (the whole worm's 7.2 µm points were 90 px wide in the head view, 12 px apart)
    size = point_size_um(positions)
    if not np.allclose(layer.size, size):
        layer.size = size
        if id(layer) in _TEXT_BEFORE_NAMES:  # the names stay a point diameter above
            _write_names(layer)
    if part == "whole" and layer.ndim == viewer.dims.ndim:
        viewer.fit_to_view(layers=[layer])
        return
    # a part, or the worm in a viewer with more dims (a movie open): napari's fit_to_view
    # reads a thinner layer's extent at the viewer's displayed axes (IndexError in napari 0.9)
    diameter = float(np.max(layer.size)) if len(layer.size) else 0.0
    _fit_positions(viewer, positions, diameter)


def _fit_positions(viewer: Any, positions: np.ndarray, diameter: float) -> None:
    """Centre and zoom the 3D camera on ``positions`` ((N, 3) world z, y, x) as napari's
    ``fit_to_view`` does: their projection, points ``diameter`` wide, fills the canvas less a
    :data:`FIT_MARGIN` margin."""
    camera = getattr(viewer, "scene", viewer).camera
    view = np.asarray(camera.view_direction, dtype=float)
    up = np.asarray(camera.up_direction, dtype=float)
    right = np.cross(view, up)
    across, upward = positions @ right, positions @ up
    height, width = viewer.canvas.viewbox_size(viewer.layers)
    camera.center = tuple(
        right * (across.min() + across.max()) / 2
        + up * (upward.min() + upward.max()) / 2
        + view * float(np.mean(positions @ view))
    )
    camera.zoom = (1 - FIT_MARGIN) * min(
        width / (np.ptp(across) + diameter), height / (np.ptp(upward) + diameter)
    )


def _refit_on_resize(viewer: Any, layer: Any, camera: Any, part: str = "whole") -> None:
    """Keep the framed part of the worm in view while the canvas changes size (a widget
    docked beside it cut off the head and the tail), until the user moves, turns or zooms the
    camera."""
    previous = _REFITS.pop(id(viewer), None)
    if previous is not None:
        viewer.canvas.events.size.disconnect(previous)

    def framing() -> tuple:
        return tuple(camera.angles), tuple(camera.center), camera.zoom

    framed = [framing()]

    def refit(*_: Any) -> None:
        if framing() != framed[0] or layer not in viewer.layers:
            viewer.canvas.events.size.disconnect(refit)
            _REFITS.pop(id(viewer), None)
            return
        _fit_part(viewer, layer, part)
        framed[0] = framing()

    viewer.canvas.events.size.connect(refit)
    _REFITS[id(viewer)] = refit


def _home_to_worm(viewer: Any, layer: Any) -> None:
    """Let napari's Home (reset view) bring back the lateral view while the worm sample is all
    the viewer shows: Home set the camera angles to zero, an end-on sliver of the worm.

    napari offers no hook into ``reset_view`` other than the ``reset_view`` event it emits
    after fitting the view; a reset that zeroed the angles in 3D is answered by framing the
    worm again (which emits the event once more, with the lateral angles: ignored).
    """
    previous = _HOMES.pop(id(viewer), None)
    if previous is not None:
        viewer.events.reset_view.disconnect(previous)

    def home(event: Any) -> None:
        if layer not in viewer.layers:
            viewer.events.reset_view.disconnect(home)
            _HOMES.pop(id(viewer), None)
            return
        if viewer.dims.ndisplay == 3 and not np.any(event.angles) and _only_worm(viewer, layer):
            _frame_worm(viewer, layer)

    viewer.events.reset_view.connect(home)
    _HOMES[id(viewer)] = home


def _only_worm(viewer: Any, neurons: Any) -> bool:
    """Whether every layer is the worm sample's (its neurons and its synapses)."""
    return all(layer is neurons or layer.name.startswith(SYNAPSES_LAYER) for layer in viewer.layers)


def _show_worm_when_added(adjacency: Any) -> None:
    """Call :func:`show_worm` once the neurons (told apart by their ``adjacency``) reach the
    current viewer: a sample returns layer data, so the view is set when napari adds them."""
    try:
        import napari

        viewer = napari.current_viewer()
    except Exception:  # noqa: BLE001 - no Qt or no viewer: nothing to frame
        return
    if viewer is None:
        return

    def on_inserted(event: Any) -> None:
        layer = event.value
        if layer.name.startswith(SYNAPSES_LAYER):
            return  # the sample's first layer: wait for the neurons
        viewer.layers.events.inserted.disconnect(on_inserted)
        if (layer.metadata or {}).get("adjacency") is adjacency:
            show_worm(viewer, layer)
            dock_view_control(viewer, layer)
            # a neuron's name (and its other features) at the cursor, not only in the status
            # bar: napari's layer tooltip, for this viewer (View ▸ Layer tooltip visibility)
            viewer.tooltip.visible = True

    viewer.layers.events.inserted.connect(on_inserted, position="last")


class WormViewControl:
    """Three buttons framing the whole worm, its head or its tail (:func:`show_worm`).

    Docked in napari's left area under the layer list (:func:`dock_view_control`), so that the
    canvas keeps its width; ``buttons`` maps each part of :data:`PARTS` to its QPushButton.
    """

    labels = {"whole": "Whole worm", "head": "Head", "tail": "Tail"}

    def __init__(self, viewer: Any, layer: Any) -> None:
        from qtpy.QtWidgets import QCheckBox, QHBoxLayout, QPushButton, QWidget

        self.viewer, self.layer = viewer, layer
        self.native = QWidget()
        row = QHBoxLayout(self.native)
        row.setContentsMargins(4, 2, 4, 2)
        self.buttons = {}
        for part in PARTS:
            button = QPushButton(self.labels[part])
            button.setToolTip(_PART_TIPS[part])
            button.clicked.connect(lambda *_, part=part: self.show(part))
            row.addWidget(button)
            self.buttons[part] = button
        #: writes every neuron's name beside it (:func:`show_names`)
        self.names = QCheckBox("Names")
        self.names.setToolTip(
            "Write the neurons' names above them where they fit without overlapping, nearest "
            "first (zoom in for more of the nerve ring's); the cursor's tooltip names the "
            "neuron under it either way."
        )
        self.names.toggled.connect(lambda on: show_names(self.layer, on, self.viewer))
        row.addWidget(self.names)

    def show(self, part: str) -> None:
        """Frame ``part`` of the worm (the neurons layer must still be in the viewer)."""
        if self.layer in self.viewer.layers:
            show_worm(self.viewer, self.layer, part)


#: per neurons layer (by id), the text it showed before :func:`show_names` wrote the names
_TEXT_BEFORE_NAMES: dict[int, dict] = {}
#: per neurons layer (by id), the names :func:`show_names` last wrote ("" where left out)
_NAMES_WRITTEN: dict[int, np.ndarray] = {}
#: per neurons layer (by id), the viewer whose camera places its names and the hook on it
_NAMES_FOLLOW: dict[int, tuple[Any, Any]] = {}
#: size (points) of the names :func:`show_names` writes
NAME_SIZE = 8
#: pixels kept free between two names (:func:`uncrowded_labels`)
NAME_GAP_PX = 2.0
#: napari draws text at 96/72 of Qt's font metrics for its size in points (napari's own
#: ``Text.get_width_height``; the rendered names' ink measured within a few pixels of it,
#: ``benchmarks/worm_view.py``)
TEXT_PX_PER_QT_PX = 96 / 72
#: milliseconds the names wait for the camera to rest before they are placed again
NAMES_DELAY_MS = 120


def show_names(layer: Any, on: bool = True, viewer: Any = None) -> None:
    """Write the neurons' names (feature ``id``) above their points, or (``on=False``) bring
    back the text the layer showed before (e.g. the stimulated neuron's name written by
    :func:`colour_by_response`). The names follow the point size :func:`show_worm` sets.

    Parameters
    ----------
    layer : napari Points layer
        The worm's neurons.
    on : bool
        Write the names (True) or take them away (False).
    viewer : napari.Viewer, optional
        Where the names are seen. Given (the *C. elegans view* dock passes it) and in 3D,
        only names that fit are written: front neurons first, each name where it overlaps no
        name already written (:func:`uncrowded_labels`), placed again whenever the camera
        rests after a move or the canvas changes size, so that zooming in names more of the
        nerve ring; the others are named by the cursor's tooltip. Without a viewer (or in 2D)
        every name is written.
    """
    _stop_following(layer)
    if on:
        if id(layer) not in _TEXT_BEFORE_NAMES:
            text = layer.text
            _TEXT_BEFORE_NAMES[id(layer)] = (
                text.model_dump() if hasattr(text, "model_dump") else text.dict()
            )
        if viewer is not None:
            _follow_camera(viewer, layer)
        _write_names(layer)
        return
    before = _TEXT_BEFORE_NAMES.pop(id(layer), None)
    written = _NAMES_WRITTEN.pop(id(layer), None)
    if before is not None and written is not None and _text_is(layer, written):
        layer.text = before  # unless something else wrote the text since


def _text_is(layer: Any, strings: np.ndarray) -> bool:
    return np.array_equal(np.asarray(layer.text.values, dtype=str), np.asarray(strings, dtype=str))


def _write_names(layer: Any) -> None:
    names = layer.features["id"].astype(str).to_numpy()
    follow = _NAMES_FOLLOW.get(id(layer))
    if follow is not None and follow[0].dims.ndisplay == 3:
        shown = np.where(names_with_room(follow[0], layer, names), names, "")
    else:
        shown = names
    _NAMES_WRITTEN[id(layer)] = shown
    # napari centres 3D text on its point: raised dorsally (+z) by a point diameter
    layer.text = {
        "string": {"array": shown, "default": ""},
        "color": "white",
        "size": NAME_SIZE,
        "translation": [float(np.median(layer.size)), 0.0, 0.0],
    }


def _follow_camera(viewer: Any, layer: Any) -> None:
    """Place the names again once the camera rests after a move (or the canvas or the points
    change size); stops when the names are taken away, the layer leaves the viewer or
    something else writes the layer's text."""
    from qtpy.QtCore import QTimer

    timer = QTimer()
    timer.setSingleShot(True)
    timer.setInterval(NAMES_DELAY_MS)

    def place() -> None:
        written = _NAMES_WRITTEN.get(id(layer))
        if layer not in viewer.layers or written is None or not _text_is(layer, written):
            _stop_following(layer)
            return
        _write_names(layer)

    timer.timeout.connect(place)
    camera = getattr(viewer, "scene", viewer).camera
    emitters = [camera.events.center, camera.events.zoom, camera.events.angles,
                viewer.canvas.events.size, viewer.dims.events.ndisplay, layer.events.size]

    def moved(*_: Any) -> None:
        timer.start()

    for emitter in emitters:
        emitter.connect(moved)
    _NAMES_FOLLOW[id(layer)] = (viewer, (timer, moved, emitters))


def _stop_following(layer: Any) -> None:
    follow = _NAMES_FOLLOW.pop(id(layer), None)
    if follow is None:
        return
    timer, moved, emitters = follow[1]
    timer.stop()
    for emitter in emitters:
        emitter.disconnect(moved)


def names_with_room(viewer: Any, layer: Any, names: np.ndarray) -> np.ndarray:
    """Which of ``layer``'s names (one per point) fit on the canvas without overlapping one
    another in the viewer's current 3D view (a boolean mask): each name's box is projected
    where napari writes it (a point diameter above its point, centred), sized by Qt's metrics
    of napari's text font, and :func:`uncrowded_labels` keeps them front neurons first."""
    points = np.asarray(layer.data, dtype=float) * np.asarray(layer.scale) + np.asarray(
        layer.translate
    )
    points = points[:, -3:]
    diameter = float(np.median(layer.size))
    camera = getattr(viewer, "scene", viewer).camera
    view = np.asarray(camera.view_direction, dtype=float)
    up = np.asarray(camera.up_direction, dtype=float)
    right = np.cross(view, up)
    height, width = viewer.canvas.viewbox_size(viewer.layers)

    def on_screen(world: np.ndarray) -> np.ndarray:
        offset = world - np.asarray(camera.center, dtype=float)
        return np.stack(
            [offset @ right * camera.zoom + width / 2, -(offset @ up) * camera.zoom + height / 2],
            axis=1,
        )

    centres = on_screen(points + np.array([diameter, 0.0, 0.0]))
    widths, name_height = name_extent_px(names, NAME_SIZE)
    sizes = np.stack([widths, np.full(len(widths), name_height)], axis=1)
    # in 3D napari draws every point: the names of those nearest the camera come first, and
    # a name is not written where a point nearer the camera than its own would cover it
    depth = (points - np.asarray(camera.center, dtype=float)) @ view
    discs = (on_screen(points), diameter * camera.zoom / 2, depth)
    return uncrowded_labels(centres, sizes, depth, bounds=(width, height), obstacles=discs)


def _covered(
    low: np.ndarray, high: np.ndarray, discs: np.ndarray, radius: float, depth: np.ndarray
) -> np.ndarray:
    """Whether box i (corners ``low``, ``high``) meets the disc of some j != i with a smaller
    ``depth`` (nearest point of the box to the disc's centre within ``radius``)."""
    discs = np.asarray(discs, dtype=float)
    depth = np.asarray(depth, dtype=float)
    nearest = np.clip(discs[None, :, :], low[:, None, :], high[:, None, :])
    meets = ((nearest - discs[None, :, :]) ** 2).sum(axis=2) < float(radius) ** 2
    meets &= depth[None, :] < depth[:, None]
    np.fill_diagonal(meets, False)
    return meets.any(axis=1)


def name_extent_px(names: Any, size: float) -> tuple[np.ndarray, float]:
    """Widths (px) of ``names`` and the height of their capitals as napari writes text of
    ``size`` points: Qt's metrics of the application font, times
    :data:`TEXT_PX_PER_QT_PX`."""
    from qtpy.QtGui import QFont, QFontMetricsF, QGuiApplication

    metrics = QFontMetricsF(QFont(QGuiApplication.font().family(), int(size)))
    widths = np.array([metrics.horizontalAdvance(str(name)) for name in names], dtype=float)
    return widths * TEXT_PX_PER_QT_PX, float(metrics.capHeight()) * TEXT_PX_PER_QT_PX


def uncrowded_labels(
    centres: np.ndarray,
    sizes: np.ndarray,
    priority: np.ndarray,
    *,
    bounds: tuple[float, float] | None = None,
    gap: float = NAME_GAP_PX,
    obstacles: tuple[np.ndarray, float, np.ndarray] | None = None,
) -> np.ndarray:
    """Which labels to write so that no two overlap: greedily, in order of ``priority``
    (smallest first), a label is kept when its box, ``gap`` pixels wider on each side, meets
    no kept label's box (nor an obstacle in front of it).

    Parameters
    ----------
    centres : ndarray, shape (N, 2)
        Box centres (x, y) in pixels.
    sizes : ndarray, shape (N, 2)
        Box widths and heights in pixels.
    priority : ndarray, shape (N,)
        Smaller first; ``inf`` never kept (e.g. a point not drawn).
    bounds : (width, height), optional
        Labels whose box does not lie wholly inside [0, width] × [0, height] are not kept
        (and take no room): a name cut by the canvas's edge is left to the next view.
    gap : float
        Pixels kept free between two boxes.
    obstacles : (centres, radius, priority), optional
        Discs, one per label (its point: (N, 2) centres in pixels, a radius, (N,) priorities):
        label i is not kept where its box meets the disc of a point j != i whose priority is
        smaller than i's (a point nearer the camera, drawn over the name).

    Returns
    -------
    ndarray of bool, shape (N,)
    """
    centres = np.asarray(centres, dtype=float).reshape(-1, 2)
    priority = np.asarray(priority, dtype=float)
    half = np.asarray(sizes, dtype=float).reshape(-1, 2) / 2 + gap / 2
    low, high = centres - half, centres + half
    keep = np.zeros(len(centres), dtype=bool)
    candidates = np.isfinite(priority) & np.isfinite(centres).all(axis=1)
    if obstacles is not None:
        candidates &= ~_covered(low, high, *obstacles)
    if bounds is not None:
        edge = np.asarray(sizes, dtype=float).reshape(-1, 2) / 2
        inside = (centres - edge >= 0) & (centres + edge <= np.asarray(bounds, dtype=float))
        candidates &= inside.all(axis=1)
    kept: list[int] = []
    for i in np.flatnonzero(candidates)[np.argsort(priority[candidates], kind="stable")]:
        if kept:
            others = np.asarray(kept)
            meets = ((low[others] < high[i]) & (high[others] > low[i])).all(axis=1)
            if meets.any():
                continue
        kept.append(int(i))
        keep[i] = True
    return keep


_PART_TIPS = {
    "whole": "The whole worm from its left side, anterior left (as opened).",
    "head": f"The head: the somata within {HEAD_UM:g} µm of the nose, around the nerve ring.",
    "tail": f"The tail: the somata within {TAIL_UM:g} µm of the posterior-most one.",
}


def dock_view_control(viewer: Any, layer: Any) -> WormViewControl | None:
    """Dock (once per viewer) the whole worm / head / tail buttons in napari's left area;
    None for a viewer without a window."""
    window = getattr(viewer, "window", None)
    if window is None or not hasattr(window, "dock_widgets"):
        return None
    existing = window.dock_widgets.get(VIEW_DOCK)
    control = getattr(existing, "_worm_view_control", None)
    if control is not None:
        control.layer = layer
        return control
    control = WormViewControl(viewer, layer)
    control.native._worm_view_control = control  # kept alive with its widget
    window.add_dock_widget(
        control.native, name=VIEW_DOCK, area="left", add_vertical_stretch=False
    )
    return control


def colour_by_response(
    layer: Any, stimulated: str, strain: str | None = None, predicted: bool = False
) -> Any:
    """Colour a worm neurons layer by the response (ΔF/F) to stimulating ``stimulated``.

    Parameters
    ----------
    layer : napari Points layer
        The sample's neurons layer (features ``id``).
    stimulated : str
        Neuron name.
    strain : {"wt", "unc31"}, optional
        Default: the layer's metadata ``strain`` (else wild type).
    predicted : bool
        False: the measured response (atlas), stored as the ``response`` feature. True: the
        response predicted by the response field fitted without ``stimulated``'s own column
        (:func:`napari_mesoscale.datasets.celegans.predict_response`), stored as
        ``predicted_response``; if that fit is not cached yet it runs in a background thread
        with a progress bar in napari's activity dock (its *Cancel* button stops the fit and
        leaves the layer as it was), the layer is coloured when it ends, and the worker is
        returned (its ``returned`` signal carries the responses, its ``progress_bar`` the
        bar, whose ``cancel()`` does what the button does).

    Returns
    -------
    ndarray or worker
        The responses, one per point (NaN where unobserved), or the background worker.
        Unobserved responders are grey, the stimulated neuron white and named, excited red,
        inhibited blue; the colours saturate at the 95th percentile of |ΔF/F|, which the
        colorbar at the canvas's top right shows.
    """
    from napari_mesoscale.datasets import celegans

    strain = strain or (layer.metadata or {}).get("strain", "wt")
    if not predicted:
        response = celegans.response_to(stimulated, strain)
        return _paint(layer, stimulated, response, "response")
    if celegans.response_field_cached(stimulated, strain):
        response = celegans.predict_response(stimulated, strain)
        return _paint(layer, stimulated, response, "predicted_response")
    return _predict_in_background(layer, stimulated, strain)


def _paint(layer: Any, stimulated: str, by_name: Any, feature: str) -> np.ndarray:
    """Store ``by_name`` (responses keyed by neuron name) as ``feature`` and colour by it.

    The colours come from a colormap (:func:`response_colormap`) over the feature
    :data:`SHOWN_FEATURE` (the response, 0 at the stimulated neuron so that it is white) with
    symmetric contrast limits (:func:`response_limit`), so napari's colorbar, shown beside
    the canvas, reads in ΔF/F; the stimulated neuron is labelled with its name.
    """
    from napari_mesoscale.datasets import celegans

    names = layer.features["id"].astype(str)
    response = names.map(by_name).to_numpy(dtype=float)
    is_stimulated = (names == celegans.canonical_name(stimulated)).to_numpy()
    shown = np.where(is_stimulated, 0.0, response)
    features = layer.features.copy()
    features[feature] = response
    features[SHOWN_FEATURE] = shown
    layer.features = features
    limit = response_limit(response[~is_stimulated])  # its own response is no colour
    layer.face_colormap = response_colormap()
    layer.face_color = SHOWN_FEATURE
    layer.face_contrast_limits = (-limit, limit)
    layer.refresh_colors(update_color_mapping=False)
    layer.face_colorbar.visible = True
    # napari centres 3D text on its point: the name is raised dorsally (+z) above the head's
    # crowd of somata rather than written over them
    labels = np.where(is_stimulated, celegans.canonical_name(stimulated), "")
    layer.text = {
        "string": {"array": labels, "default": ""},
        "color": "white",
        "size": 11,
        "translation": [LABEL_RAISE_UM, 0.0, 0.0],
    }
    return response


def response_colormap() -> Any:
    """Blue (inhibited) – white (no response) – red (excited); grey where unobserved (NaN)."""
    from napari.utils.colormaps import Colormap

    return Colormap(
        colors=[[0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 1.0]],
        name="response ΔF/F (blue inhibited, red excited)",
        nan_color=[UNOBSERVED_GREY, UNOBSERVED_GREY, UNOBSERVED_GREY, 1.0],
    )


def response_limit(response: np.ndarray) -> float:
    """Symmetric contrast limit: the :data:`LIMIT_QUANTILE` quantile of the observed |ΔF/F|,
    so that a few outliers do not leave every other neuron near white (the colorbar shows the
    limit; responses beyond it are saturated)."""
    observed = np.abs(response[np.isfinite(response)])
    if observed.size == 0 or observed.max() <= 0:
        return 1.0
    return float(np.quantile(observed, LIMIT_QUANTILE)) or float(observed.max())


def _predict_in_background(layer: Any, stimulated: str, strain: str) -> Any:
    """Fit and predict in a worker thread, followed by a cancellable progress bar in napari's
    activity dock (the fit's reports are relayed to the GUI thread by a Qt signal); the layer
    is coloured on return, and left as it was when the fit fails or is cancelled."""
    from napari.qt.threading import create_worker
    from napari.utils import cancelable_progress
    from napari.utils.notifications import show_error, show_info
    from qtpy.QtCore import QCoreApplication

    from napari_mesoscale.datasets import celegans
    from napari_mesoscale.napari._runner import _ProgressRelay
    from napari_mesoscale.progress import Cancelled

    steps = 1000
    what = f"the response to {celegans.canonical_name(stimulated)}"
    bar = cancelable_progress(total=steps, desc=f"predicting {what}")
    relay = _ProgressRelay(QCoreApplication.instance())

    def advance(info: dict) -> None:
        target = int(round(float(info.get("fraction", 0.0)) * steps))
        if target > bar.n:
            bar.update(target - bar.n)

    def report(info: dict) -> bool:  # worker thread: stop at the fit's next report
        if bar.is_canceled:
            raise Cancelled(f"predicting {what} cancelled by the user")
        relay.progress.emit(info)
        return True

    def failed(error: BaseException) -> None:
        if isinstance(error, Cancelled):
            show_info(f"napari-mesoscale: predicting {what} was cancelled; layer unchanged.")
        else:
            show_error(f"napari-mesoscale: predicting {what} failed: {error}")

    def finish(*_: Any) -> None:
        relay.progress.disconnect(advance)
        bar.close()

    relay.progress.connect(advance)
    worker = create_worker(
        celegans.predict_response, stimulated, strain, callback=report, _ignore_errors=True
    )
    worker.returned.connect(
        lambda predicted: _paint(layer, stimulated, predicted, "predicted_response")
    )
    worker.errored.connect(failed)
    worker.finished.connect(finish)
    worker.relay = relay  # kept alive as long as the worker
    worker.progress_bar = bar  # its cancel() (the activity dock's Cancel button) stops the fit
    worker.start()
    return worker


__all__ = [
    "WormViewControl", "colour_by_response", "dock_view_control", "names_with_room",
    "show_names", "show_worm", "uncrowded_labels", "worm_part", "worm_sample",
]
