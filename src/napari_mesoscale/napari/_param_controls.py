"""magicgui controls built from a parameter dataclass (:meth:`Params.widget_options`)."""

from __future__ import annotations

from typing import Any

from magicgui.widgets import Widget, create_widget

from napari_mesoscale.params import Params


def param_control(params: type[Params], name: str, **extra: Any) -> Widget:
    """The control of field ``name`` of ``params``: its default, label, range, tooltip."""
    options = params.widget_options(name, **extra)
    widget_type = "ComboBox" if "choices" in options["options"] else None
    return create_widget(
        value=options["value"],
        name=options["name"],
        label=options["label"],
        annotation=params.field_type(name),
        widget_type=widget_type,
        options=options["options"],
    )
