"""Parameter dataclasses: the single source of defaults, types, units, ranges and help text.

Each stage of the pipeline (calcium detection, EM detection, connectome, fit, scoring) has one
dataclass derived from :class:`Params` whose fields are declared with :func:`param`. The core
function reads its defaults from it, the command line builds its options from it
(:meth:`Params.add_arguments`), and the napari widget builds its controls from it
(:meth:`Params.widget_options`), so a default is written exactly once.

Example
-------
>>> from dataclasses import dataclass
>>> @dataclass
... class Smoothing(Params):
...     sigma_um: float = param(2.0, "Gaussian sigma", unit="µm", minimum=0.0)
...     mode: str = param("reflect", "border handling", choices=("reflect", "constant"))
>>> Smoothing().replace(sigma_um=3.0).sigma_um
3.0
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Iterable
from typing import Any, Self

__all__ = ["Params", "ParamSpec", "param"]

_SPEC_KEY = "napari_mesoscale"


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """What :func:`param` records about one field, besides its default."""

    help: str
    unit: str | None = None
    label: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] | None = None
    gui: bool = True
    cli: bool = True


def param(
    default: Any,
    help: str,  # noqa: A002 - mirrors argparse
    *,
    unit: str | None = None,
    label: str | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    step: float | None = None,
    choices: Iterable[Any] | None = None,
    gui: bool = True,
    cli: bool = True,
) -> Any:
    """A dataclass field with its help text, unit and valid range.

    ``minimum`` / ``maximum`` are inclusive; ``choices`` lists the valid values;
    ``gui=False`` / ``cli=False`` keep a field out of the widget or the command line.
    Lists, tuples and dicts are copied for each instance.
    """
    spec = ParamSpec(
        help=help,
        unit=unit,
        label=label,
        minimum=minimum,
        maximum=maximum,
        step=step,
        choices=tuple(choices) if choices is not None else None,
        gui=gui,
        cli=cli,
    )
    metadata = {_SPEC_KEY: spec}
    if isinstance(default, list | dict | set):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _base_type(annotation: Any) -> Any:
    """``float`` for ``float | None``; the annotation itself otherwise."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return members[0] if len(members) == 1 else annotation
    return annotation


class Params:
    """Base of the parameter dataclasses (use with ``@dataclass`` and :func:`param` fields)."""

    # -- introspection --------------------------------------------------------------------
    @classmethod
    def specs(cls) -> dict[str, ParamSpec]:
        """Field name → :class:`ParamSpec`, in declaration order."""
        return {
            f.name: f.metadata.get(_SPEC_KEY, ParamSpec(help=""))
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        }

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Field name → default value."""
        return cls().to_dict()

    @classmethod
    def field_type(cls, name: str) -> Any:
        """The field's type with ``None`` removed from unions (``float | None`` → ``float``)."""
        hints = typing.get_type_hints(cls)
        return _base_type(hints[name])

    @classmethod
    def describe(cls) -> str:
        """A Markdown table of every field: name, default, unit, range, help."""
        rows = [
            "| parameter | default | unit | valid | meaning |",
            "| --- | --- | --- | --- | --- |",
        ]
        for name, spec in cls.specs().items():
            rows.append(
                f"| `{name}` | `{cls.defaults()[name]!r}` | {spec.unit or ''} | "
                f"{_valid_text(spec)} | {spec.help} |"
            )
        return "\n".join(rows)

    # -- values ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-able field values (tuples as lists)."""
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Self:
        """An instance from :meth:`to_dict` output; unknown keys are ignored (older files)."""
        names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        kwargs = {}
        for key, value in values.items():
            if key not in names:
                continue
            if isinstance(value, list) and isinstance(_default_of(names[key]), tuple):
                value = tuple(value)
            kwargs[key] = value
        return cls(**kwargs)

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes``; an unknown name is a ``ValueError`` listing the valid ones."""
        names = {f.name for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(
                f"unknown {type(self).__name__} option(s) {unknown}; valid options: {sorted(names)}"
            )
        values = self.to_dict()
        values.update(changes)
        return type(self).from_dict(values)

    def merged(self, **overrides: Any) -> Self:
        """A copy with the ``overrides`` that are not ``None`` (for ``f(..., x=None)`` APIs)."""
        return self.replace(**{k: v for k, v in overrides.items() if v is not None})

    def validate(self) -> Self:
        """Check every field against its range and choices; ``ValueError`` naming the field."""
        for name, spec in self.specs().items():
            value = getattr(self, name)
            if value is None or isinstance(value, bool):
                continue
            if spec.choices is not None and value not in spec.choices:
                raise ValueError(
                    f"{name}={value!r} is not one of {list(spec.choices)}: {spec.help}"
                )
            if isinstance(value, int | float):
                too_low = spec.minimum is not None and value < spec.minimum
                too_high = spec.maximum is not None and value > spec.maximum
                if too_low or too_high or value != value:
                    raise ValueError(
                        f"{name}={value!r} is out of range (valid: {_valid_text(spec)}"
                        f"{' ' + spec.unit if spec.unit else ''}): {spec.help}"
                    )
        return self

    # -- command line ----------------------------------------------------------------------
    @classmethod
    def add_arguments(
        cls,
        parser: argparse.ArgumentParser,
        *,
        only: Iterable[str] | None = None,
        exclude: Iterable[str] = (),
    ) -> None:
        """Add ``--field-name`` options (default ``None`` = the dataclass's default)."""
        wanted = set(only) if only is not None else None
        for name, spec in cls.specs().items():
            if not spec.cli or name in set(exclude) or (wanted is not None and name not in wanted):
                continue
            kind = cls.field_type(name)
            default = cls.defaults()[name]
            unit = f" [{spec.unit}]" if spec.unit else ""
            # argparse %-formats help strings: a literal "5 %" would break ``--help``
            text = f"{spec.help}{unit} (default: {default})".replace("%", "%%")
            flag = "--" + name.replace("_", "-")
            if kind is bool:
                parser.add_argument(
                    flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=text
                )
            elif typing.get_origin(kind) is tuple:
                element = (typing.get_args(kind) or (float,))[0]
                parser.add_argument(
                    flag, dest=name, type=element, nargs="+", default=None, help=text
                )
            else:
                python_type = kind if kind in (int, float, str) else str
                if _is_int_or_str(kind):
                    python_type = _int_or_str
                parser.add_argument(
                    flag,
                    dest=name,
                    type=python_type,
                    choices=spec.choices,
                    default=None,
                    help=text,
                )

    @classmethod
    def from_namespace(cls, namespace: argparse.Namespace, base: Self | None = None) -> Self:
        """An instance from parsed options (options left unset keep ``base``'s values)."""
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        given = {n: getattr(namespace, n) for n in names if getattr(namespace, n, None) is not None}
        return (base if base is not None else cls()).replace(**given)

    # -- napari widgets --------------------------------------------------------------------
    @classmethod
    def widget_options(cls, name: str, **extra: Any) -> dict[str, Any]:
        """Keyword arguments for ``magicgui.widgets.create_widget`` for field ``name``."""
        spec = cls.specs()[name]
        default = cls.defaults()[name]
        label = spec.label or name.replace("_um", "").replace("_", " ")
        options: dict[str, Any] = {"tooltip": spec.help + (f" [{spec.unit}]" if spec.unit else "")}
        if spec.choices is not None:
            options["choices"] = list(spec.choices)
        if spec.minimum is not None:
            options["min"] = spec.minimum
        if spec.maximum is not None:
            options["max"] = spec.maximum
        elif isinstance(default, int | float) and not isinstance(default, bool):
            options["max"] = 1e9
        if spec.step is not None:
            options["step"] = spec.step
        if spec.unit:
            label = f"{label} ({spec.unit})"
        options.update(extra.pop("options", {}))
        result = {"name": name, "label": label, "value": default, "options": options}
        result.update(extra)
        return result


def _is_int_or_str(annotation: Any) -> bool:
    """Whether ``annotation`` is ``int | str`` (an integer or a keyword such as ``"auto"``)."""
    is_union = isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is (
        typing.Union
    )
    return is_union and set(typing.get_args(annotation)) == {int, str}


def _int_or_str(text: str) -> int | str:
    """A command-line value of an ``int | str`` field: an integer when it reads as one."""
    try:
        return int(text)
    except ValueError:
        return text


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _valid_text(spec: ParamSpec) -> str:
    if spec.choices is not None:
        return ", ".join(repr(c) for c in spec.choices)
    if spec.minimum is None and spec.maximum is None:
        return ""
    low = "−∞" if spec.minimum is None else f"{spec.minimum:g}"
    high = "∞" if spec.maximum is None else f"{spec.maximum:g}"
    return f"{low} … {high}"
