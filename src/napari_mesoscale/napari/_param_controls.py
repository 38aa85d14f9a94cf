"""magicgui controls built from a parameter dataclass (:meth:`Params.widget_options`)."""

from __future__ import annotations

from typing import Any

from magicgui.widgets import Widget, create_widget

from napari_mesoscale.params import Params


def param_control(params: type[Params], name: str, **extra: Any) -> Widget:
    """The control of field ``name`` of ``params``: its default, label, range, tooltip.

    ``extra`` overrides what :meth:`Params.widget_options` gives (``label=``, ``value=``,
    ``options={...}``).
    """
    options = params.widget_options(name, **extra)
    if "choices" in options["options"]:
        options.setdefault("widget_type", "ComboBox")
    if options["value"] is not None:
        options.setdefault("annotation", params.field_type(name))
    return create_widget(**options)
