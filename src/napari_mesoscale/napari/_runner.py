"""Run one core call in a worker thread, with a progress bar, a cancel button and clear errors.

Every widget of the plugin is a :class:`CoreTaskWidget`: a magicgui ``Container`` with the
widget's own parameter controls followed by *Run*, *Cancel*, a progress bar and a status line.
A subclass implements three things:

``prepare() -> CoreCall``
    Read the controls, validate them (raise ``ValueError`` with a message that says what to
    fix), and return the core function, its keyword arguments and the equivalent one line of
    Python. Runs in the GUI thread, so it may read layers.
``on_result(result)``
    Turn the core result into layers (GUI thread).
``on_progress(info)`` (optional)
    React to a progress dictionary, e.g. to update a live loss plot (GUI thread).

The core function follows :mod:`napari_mesoscale.progress`: it accepts ``callback=`` and calls
it from the worker thread with a dictionary holding ``fraction`` (0..1 of the whole job) and
``message``, plus any figures. The progress bar shows ``fraction`` (never moving back) and the
status line the message. Once *Cancel* was pressed the callback raises :class:`TaskCancelled`,
a :class:`~napari_mesoscale.progress.Cancelled`, so a core loop stops at its next report. A core
that keeps a useful partial result (training) catches it and returns that result marked
cancelled; it is shown like any result. Any other ``Cancelled`` reaching the runner means
"cancelled, nothing changed".

Cancel is a ``threading.Event`` read by the callback, not the worker's ``quit()``: a worker asked
to quit emits no ``returned``, so a partial result would be lost and the status would stay
"Cancelling…".

After a run, the result objects are pushed into napari's console under short names
(``CoreCall.console_names``) together with ``last_call``, the one-line Python equivalent, and
every name that line uses (``viewer``, ``napari_mesoscale``, the core function), so that
``exec(last_call)`` in the console repeats what was clicked. When ``on_result`` fails (e.g. an
input layer was deleted during the run) the result is pushed all the same and the error shown
once, without a traceback when it is a ``ValueError`` (a message written for the user).

Output layers are named after their input (``<input> <what>``); a rerun replaces only the
layers the same widget made from the same input with the same method
(:meth:`CoreTaskWidget.replace_layers`' ``key``), never a layer the user made or loaded: a
name already taken by such a layer gets a ``_2``, ``_3``… suffix. A layer of an earlier run
that the user has since renamed or edited (points curated, labels painted) is theirs: it is
kept, and the new result comes beside it.
"""

from __future__ import annotations

import threading
import traceback
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import Container, Label, ProgressBar, PushButton
from napari.layers import Image
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QCoreApplication, QObject, Signal
from qtpy.QtWidgets import QSizePolicy

from napari_mesoscale.napari import _contract
from napari_mesoscale.napari._docks import tab_when_docked, unproxied
from napari_mesoscale.napari._units import (
    MICROMETRE,
    has_voxel_size,
    spatial_unit,
    with_units,
)
from napari_mesoscale.progress import Cancelled

if TYPE_CHECKING:
    import napari


class TaskCancelled(Cancelled):
    """Raised inside the worker (by the progress callback) once the user pressed Cancel."""


@dataclass
class CoreCall:
    """One call of a core function, as prepared by a widget.

    Attributes
    ----------
    function : callable
        The core function; it must accept a ``callback`` keyword.
    kwargs : dict
        Keyword arguments for ``function`` (without ``callback``).
    python : str
        The same call as one line of Python, shown to the user and pushed to the console.
    console_names : dict
        Extra objects to push into napari's console after the run (name -> object).
    result_name : str
        Name under which the result is pushed into the console.
    """

    function: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)
    python: str = ""
    console_names: dict[str, Any] = field(default_factory=dict)
    result_name: str = "result"


class _ProgressRelay(QObject):
    """Carries progress dictionaries from the worker thread to the GUI thread."""

    progress = Signal(object)


class CoreTaskWidget(Container):
    """A widget that runs one core call in a worker (see the module docstring)."""

    run_text = "Run"

    def __init__(self, viewer: napari.viewer.Viewer, **kwargs: Any) -> None:
        # scrollable: a long widget scrolls inside its dock instead of growing the window
        kwargs.setdefault("scrollable", True)
        super().__init__(**kwargs)
        # the controls stay at the top of a taller dock instead of spreading over its height
        self.root_native_widget.widget().layout().addStretch()
        # the viewer itself, as napari's Plugins menu passes it: a script docking the widget
        # (``viewer.window.add_plugin_dock_widget``, ``napari -w``) passes a new proxy of it
        # to each widget, so that the widgets' viewers were never the same object (Detect
        # somata did not find the detector Train had just trained for this viewer)
        self._viewer = unproxied(viewer)
        self._worker = None
        self._cancel_requested = threading.Event()
        self._run_number = 0
        # parented to the application, not to the widget: a worker may still emit through it
        # after the widget was deleted (the viewer closed mid-run), and emitting through a
        # deleted QObject crashes the process
        self._relay = _ProgressRelay(QCoreApplication.instance())
        self._relay.progress.connect(self._handle_progress)
        self._run_button = PushButton(text=self.run_text)
        self._cancel_button = PushButton(text="Cancel", enabled=False)
        self._progress_bar = ProgressBar(value=0, min=0, max=1000, visible=False)
        self._status = wrapping_label()
        self._run_button.changed.connect(self.start)
        self._cancel_button.changed.connect(self.cancel)
        self.last_result: Any = None
        #: the console name of the last run's result (``CoreCall.result_name``)
        self.result_name = "result"
        self.last_error: str | None = None
        self.last_call: str = ""
        #: what :meth:`warn_about_result` said about the current run's result, if anything
        self._result_warning: str | None = None
        #: layers this widget added, by (input, method) key: the only ones a rerun replaces
        self._added: dict[Any, list[Any]] = {}
        self._user_edits = UserEdits()
        #: (name, changed by the user) of the layers of an earlier run this run kept: those
        #: the user changed and the ROIs they name
        self._kept_layers: list[tuple[str, bool]] = []
        # a widget closed mid-run stops its worker rather than leave it running at exit, and
        # ignores what the worker still delivers: its Qt widgets are gone (the slot holds the
        # run's event and the flag, not ``self``, which may be half torn down by then)
        #: what :meth:`fill_picker` put into each picker (by id), to tell it from the user's
        self._filled: dict[int, str | None] = {}
        current_run = self._current_run = [self._cancel_requested]
        closed = self._closed = threading.Event()
        self.native.destroyed.connect(lambda *_: (current_run[0].set(), closed.set()))
        # docked beside another of the plugin's widgets: a tab of theirs, not a sliver under them
        tab_when_docked(self.native)

    @property
    def native(self) -> Any:
        """The scroll area around the controls: the Qt widget napari docks.

        napari docks a magicgui widget's ``native``, which for a scrollable container is the
        inner widget of the scroll area; taken out of it, the controls kept a stale size, wider
        and taller than the dock, and were cut off at its right and top edges.
        """
        return self.root_native_widget

    def add_controls(self, *controls: Any) -> None:
        """Append parameter controls, then the run/cancel/progress/status row."""
        self.extend(controls)
        self.extend([self._run_button, self._cancel_button, self._progress_bar, self._status])
        span_dock_width(self._status)

    # -- to be implemented by subclasses -------------------------------------------------
    def prepare(self) -> CoreCall:  # pragma: no cover - abstract
        raise NotImplementedError

    def on_result(self, result: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def on_progress(self, info: dict[str, Any]) -> None:
        """Hook for subclasses: called in the GUI thread with each progress dictionary."""

    def warn_about_result(self, message: str) -> None:
        """From :meth:`on_result`: say that the result needs the user's attention (e.g. it is
        empty, and why), in the status line and as the run's one notification.

        It replaces the run's "done" notification: napari stacks a later toast over an earlier
        one, so a "done" shown after the warning hid it.
        """
        self._status.value = message
        self._result_warning = message

    def note_unset_voxel_size(self, name: str) -> None:
        """Add to the status that layer ``name`` has no voxel size, when it has none (scale 1
        and no unit, as a TIFF opened with napari's own reader): the run read it as 1 µm."""
        layer = self._viewer.layers[name] if name in self._viewer.layers else None
        if layer is None or has_voxel_size(layer):
            return
        self._status.value += (
            f" {name!r} has no voxel size (scale 1, no unit), so its voxels were taken as 1 µm; "
            f"if they are not, set its scale in µm (console: viewer.layers[{name!r}].scale = …) "
            "and run again."
        )

    def replace_layers(
        self, layers: list[tuple[Any, dict[str, Any], str]], key: Any = None,
        *, like: str | None = None,
    ) -> list[Any]:
        """Add layer-data tuples, replacing what this widget added before under the same key.

        ``key`` names the input and method (e.g. ``("em", "classical")``); layers of other keys,
        and layers the widget did not add, are never removed: a name they hold is made unique
        with a ``_2``, ``_3``… suffix (and references to it in ``roi_labels`` follow). The new
        layers' spatial axes are in µm, or in the unit of the layer named ``like`` (the input).
        """
        unit = MICROMETRE
        if like is not None and like in self._viewer.layers:
            unit = spatial_unit(self._viewer.layers[like])
        layers = with_units(layers, unit)
        earlier = [layer for layer in self._added.pop(key, []) if layer in self._viewer.layers]
        kept = self._user_edits.kept(earlier)  # the user's now: a rerun must not discard them
        self._kept_layers += [(layer.name, self._user_edits.changed(layer)) for layer in kept]
        for layer in earlier:
            if layer not in kept:
                self._viewer.layers.remove(layer)
        renamed = self._unique_names([attributes.get("name") for _, attributes, _ in layers])
        ensure_cursor_view_direction(self._viewer)
        added = []
        for data, attributes, layer_type in layers:
            attributes = {**attributes, "name": renamed.get(attributes.get("name"))}
            metadata = attributes.get("metadata") or {}
            if metadata.get("roi_labels") in renamed:
                metadata = {**metadata, "roi_labels": renamed[metadata["roi_labels"]]}
                attributes["metadata"] = metadata
            added.append(getattr(self._viewer, f"add_{layer_type}")(data, **attributes))
        for layer in added:
            self._user_edits.watch(layer)
        self._added[key] = added
        set_axis_labels(self._viewer)
        return added

    def _unique_names(self, names: list[str | None]) -> dict[str | None, str | None]:
        taken = {layer.name for layer in self._viewer.layers}
        unique: dict[str | None, str | None] = {}
        for name in names:
            candidate, number = name, 1
            while candidate is not None and candidate in taken:
                number += 1
                candidate = f"{name}_{number}"
            unique[name] = candidate
            if candidate is not None:
                taken.add(candidate)
        return unique

    def prefer_layer(self, picker: Any, fields: tuple[str, ...]) -> None:
        """Refresh a layer picker and move it to a layer carrying one of ``fields``.

        A picker keeps its value while that layer exists, so the first layer a sample or a
        reader adds (e.g. ``synapses``) stayed chosen after the layer the widget needs (the
        cells with their activity) arrived. Only a choice lacking every field is moved.
        """
        picker.reset_choices()
        current = picker.value
        layers = self._viewer.layers
        if current in layers and _contract.has_any(layers[current], fields):
            return
        for name in picker.choices:
            if name in layers and _contract.has_any(layers[name], fields):
                picker.value = name
                return

    def fill_picker(self, picker: Any, name: str | None, none: str = "(none)") -> None:
        """Set ``picker`` to ``name`` (``none`` when it is not a choice) unless the user chose.

        A value this method filled in earlier, or an empty one, may be replaced; anything else
        is the user's own choice and stays.
        """
        filled = self._filled.get(id(picker))
        if picker.value not in (None, none, filled):
            return
        picker.value = name if name in picker.choices else none
        self._filled[id(picker)] = None if picker.value == none else picker.value

    # -- running -------------------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        return self._worker is not None

    def start(self) -> None:
        """Validate the controls and start the core call in a worker thread."""
        if self.is_running:
            return
        try:
            call = self.prepare()
        except (ValueError, TypeError, OSError, EOFError) as error:
            # OSError / EOFError: a chosen file that cannot be read (unreadable, cut short)
            self._fail(error_message(error))
            return
        self.last_call = call.python
        self.last_error = None
        self._run_number += 1
        run_number = self._run_number
        cancel_requested = threading.Event()
        self._cancel_requested = self._current_run[0] = cancel_requested

        def callback(info: dict[str, Any] | None = None) -> bool:
            if cancel_requested.is_set():
                raise TaskCancelled("cancelled by the user")
            if info:
                self._relay.progress.emit((run_number, dict(info)))
            return True

        worker = create_worker(
            call.function,
            **call.kwargs,
            callback=callback,
            _start_thread=False,
            _ignore_errors=True,
        )
        worker.returned.connect(lambda result: self._finish(result, call))
        worker.errored.connect(self._handle_error)
        worker.finished.connect(self._reset)
        self._worker = worker
        self._set_running(True)
        self._status.value = "Running…"
        worker.start()

    def cancel(self) -> None:
        """Ask the running core call to stop at its next progress report."""
        if self._worker is not None and not self._cancel_requested.is_set():
            self._status.value = "Cancelling…"
            self._cancel_requested.set()

    def _set_running(self, running: bool) -> None:
        self._run_button.enabled = not running
        self._cancel_button.enabled = running
        self._progress_bar.visible = running
        if running:
            self._progress_bar.value = 0

    def _handle_progress(self, event: tuple[int, dict[str, Any]]) -> None:
        run_number, info = event
        if run_number != self._run_number or self._worker is None or self._closed.is_set():
            return  # a late report of a finished run must not overwrite its final status
        if info.get("fraction") is not None:
            value = int(1000 * min(max(float(info["fraction"]), 0.0), 1.0))
            self._progress_bar.value = max(value, int(self._progress_bar.value))
        if info.get("message") and not self._cancel_requested.is_set():
            self._status.value = str(info["message"])
        self.on_progress(info)

    def _finish(self, result: Any, call: CoreCall) -> None:
        self.last_result = result
        if self._closed.is_set():
            return
        self._status.value = "Done."  # on_result may replace it with a summary of the result
        self.result_name = call.result_name
        self._result_warning = None
        self._kept_layers = []
        try:
            self.on_result(result)
        except Exception as error:  # a failure building layers must reach the user too
            # the run's work is not lost: the result stays reachable from the console
            self._push_console(call, result)
            if isinstance(error, ValueError):  # written for the user: what happened, what to do
                self._fail(str(error))
            else:
                self._fail(f"Could not show the result: {error_message(error)}")
                traceback.print_exc()
            return
        if is_partial(result):
            self.last_error = "cancelled"
            summary = self._status.value
            self._status.value = "Cancelled: partial result shown" + (
                f"; {summary}" if summary not in ("", "Done.") else "."
            )
        kept = kept_layers_note(self._kept_layers)
        if kept:
            self._status.value += f" Kept {kept}."
        self._push_console(call, result)
        if self._result_warning is not None:  # the status holds it (after "Cancelled: …")
            show_warning(f"napari-mesoscale: {self._status.value}")
        elif self.last_error == "cancelled":  # "done" read as if the whole run had finished
            show_info(f"napari-mesoscale: {self._status.value}")
        elif call.python:
            note = f" (kept {kept}; the new result is beside it)" if kept else ""
            show_info(f"napari-mesoscale: done{note}. Python equivalent: {call.python}")

    def _push_console(self, call: CoreCall, result: Any) -> None:
        """Put ``result`` (as ``call.result_name``) and the names ``call.python`` uses into
        napari's console."""
        names = {**console_namespace(self._viewer, call), call.result_name: result}
        try:
            self._viewer.update_console(names)
        except Exception:  # noqa: BLE001 - the console is optional (headless viewers)
            pass

    def _handle_error(self, error: BaseException) -> None:
        if self._closed.is_set():
            self.last_error = "closed"
            return
        if isinstance(error, Cancelled):
            self._status.value = "Cancelled: nothing was changed."
            self.last_error = "cancelled"
            show_info("napari-mesoscale: run cancelled; no layers were changed.")
            return
        self._fail(error_message(error))

    def _fail(self, message: str) -> None:
        self.last_error = message
        self._status.value = f"Error: {message}"
        show_error(f"napari-mesoscale: {message}")

    def _reset(self) -> None:
        self._worker = None
        if not self._closed.is_set():
            self._set_running(False)


class UserEdits:
    """Which layers a widget added the user has since renamed or edited (points added,
    moved or deleted, labels painted): a rerun keeps those rather than replace them."""

    def __init__(self) -> None:
        self._names: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        self._edited: weakref.WeakSet[Any] = weakref.WeakSet()

    def watch(self, layer: Any) -> None:
        """Start watching ``layer``, as it is now (just added)."""
        self._names[layer] = layer.name
        if isinstance(layer, Image):  # an image output is never edited by hand
            return
        for name in ("data", "paint"):
            emitter = getattr(layer.events, name, None)
            if emitter is not None:
                emitter.connect(partial(_mark_edited, self._edited, weakref.ref(layer)))

    def changed(self, layer: Any) -> bool:
        """Whether the user renamed or edited ``layer`` since :meth:`watch`."""
        return layer in self._edited or self._names.get(layer, layer.name) != layer.name

    def kept(self, layers: list[Any]) -> list[Any]:
        """Those of one run's ``layers`` to keep: the changed ones, with the ROI layer that a
        kept points layer names (``metadata["roi_labels"]``), so that they still match."""
        changed = [layer for layer in layers if self.changed(layer)]
        named = {layer.metadata.get("roi_labels") for layer in changed}
        return [layer for layer in layers if layer in changed or layer.name in named]


def kept_layers_note(kept: list[tuple[str, bool]]) -> str:
    """"'cells' of the last run (you edited or renamed it) and its ROIs 'ROIs'"; "" if none."""
    changed = [repr(name) for name, by_user in kept if by_user]
    if not changed:
        return ""
    one = len(changed) == 1
    note = f"{', '.join(changed)} of the last run (you edited or renamed {'it' if one else 'them'})"
    rois = [repr(name) for name, by_user in kept if not by_user]
    return note + (f" and {'its' if one else 'their'} ROIs {', '.join(rois)}" if rois else "")


def _mark_edited(edited: weakref.WeakSet, layer_ref: weakref.ref, _event: Any = None) -> None:
    layer = layer_ref()
    if layer is not None:
        edited.add(layer)


def error_message(error: BaseException) -> str:
    """The message shown for ``error``: its text, led by its type unless that says nothing.

    The package's own errors (``ValueError``, ``FileNotFoundError``) carry a message written
    for the user; others (``EOFError: No data left in file``) need their type to be read.
    """
    message = str(error) or type(error).__name__
    if not isinstance(error, ValueError | FileNotFoundError | MemoryError):
        message = f"{type(error).__name__}: {message}"
    return message


def layer_removed(name: str, result_name: str) -> ValueError:
    """The error of an ``on_result`` whose input layer ``name`` was deleted during the run.

    The runner pushes the result into the console all the same, as ``result_name``.
    """
    return ValueError(
        f"layer {name!r} was removed during the run; the result is in the console as "
        f"`{result_name}`."
    )


def wrapping_label() -> Label:
    """A Label whose long text wraps instead of widening the dock past the window's edge.

    Call :func:`span_dock_width` once it is in its container.
    """
    label = Label(value="")
    label.native.setWordWrap(True)
    label.native.setMinimumWidth(1)  # 0 would let the wrapped text's size hint widen it
    return label


def span_dock_width(label: Label) -> None:
    """Let a wrapping label in a container use the dock's whole width.

    magicgui puts it beside an empty name column and fixes its width to the wrapped text's
    size hint: "largest shift 0.09 µm; 0 outlier frame(s)." stood word by word in a column a
    sixth of the dock wide.
    """
    label.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    labeled = label._labeled_widget()
    if labeled is not None:
        labeled._label_widget.visible = False


def is_partial(result: Any) -> bool:
    """Whether a core returned a partial result because it was cancelled.

    Cores mark it with ``cancelled=True`` (the protocol of :mod:`napari_mesoscale.progress`)
    or, for fits, ``stopped == "cancelled"``; a report wrapping a fit carries it on ``.fit``.
    """
    for candidate in (result, getattr(result, "fit", None)):
        if candidate is None:
            continue
        if getattr(candidate, "cancelled", False) is True:
            return True
        if getattr(candidate, "stopped", None) == "cancelled":
            return True
    return False


def console_namespace(viewer: Any, call: CoreCall) -> dict[str, Any]:
    """Every name ``call.python`` needs to run in napari's console, plus ``last_call``."""
    import napari_mesoscale
    import napari_mesoscale.workflow  # noqa: F401 - the fit's line calls napari_mesoscale.workflow

    function = call.function
    return {
        "viewer": viewer,
        "napari_mesoscale": napari_mesoscale,
        "np": np,
        getattr(function, "__name__", "function"): function,
        **call.console_names,
        "last_call": call.python,
    }


def ensure_cursor_view_direction(viewer: Any) -> None:
    """Give the cursor a view direction in 3D display before layers are added.

    napari computes the status of a new active Labels layer with features from the cursor's
    view direction, which is only set once the mouse moves on the 3D canvas; with the mouse
    still (e.g. right after a switch to 3D) it fails with "len() of unsized object". The
    camera's view direction is the one the next mouse move would give.
    """
    cursor = viewer.cursor
    if viewer.dims.ndisplay != 3 or getattr(cursor, "_view_direction", 0) is not None:
        return
    displayed = list(viewer.dims.displayed)
    view = np.asarray(getattr(viewer, "scene", viewer).camera.view_direction, dtype=float)
    if len(displayed) != len(view):  # fewer axes than displayed (an empty viewer): nothing to fix
        return
    direction = np.zeros(viewer.dims.ndim)
    direction[displayed] = view
    cursor._view_direction = direction


#: axis names for the trailing axes of the plugin's data: time, then z, y, x in µm
AXIS_LABELS = ("t", "z", "y", "x")


def set_axis_labels(viewer: Any) -> None:
    """Name the viewer's sliders t / z / y / x when its axes are the plugin's (≤ 4 axes)."""
    ndim = viewer.dims.ndim
    if 2 <= ndim <= len(AXIS_LABELS):
        viewer.dims.axis_labels = AXIS_LABELS[-ndim:]
