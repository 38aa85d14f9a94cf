"""The one progress / cancel protocol of every long-running function of the package.

A long function takes ``callback=None``. It wraps it once, ``progress = Progress.wrap(callback)``,
and reports with ``progress.report(fraction, message, **figures)``; a sub-step gets
``progress.stage(start, end, "name")``, a :class:`Progress` whose own 0..1 maps onto
``[start, end]`` of its parent, with its name prefixed to every message. Stages nest, so the
fraction a caller sees is always the fraction of the *whole* job and only rises.

The callback is called with one dictionary: ``fraction`` (0..1 of the whole job), ``message``
(``"stage: sub-stage: text"``), ``stage`` (the innermost stage's name) and any figures the
function adds (``epoch``, ``losses``, …). It stops the work by returning ``False`` or by
raising :class:`Cancelled` (or a subclass); either way :meth:`Progress.report` raises a
:class:`Cancelled`. Functions that can return a useful partial result (training) catch it and
return what they have with ``cancelled=True``; every other function lets it propagate.

Each package keeps its historical exception name (``DetectionCancelled``, ``FitCancelled``, …)
as a subclass of :class:`Cancelled`, so ``except Cancelled`` catches all of them.

Example
-------
>>> def work(callback=None):
...     progress = Progress.wrap(callback)
...     detect = progress.stage(0.0, 0.5, "detect")
...     for i in range(10):
...         detect.report(i / 10, f"slab {i}")
...     progress.report(1.0, "done")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ProgressCallback = Callable[[dict[str, Any]], Any]

__all__ = ["Cancelled", "EpochsNumberedOn", "Progress", "ProgressCallback"]


class Cancelled(Exception):  # noqa: N818 - a control-flow signal, not an error
    """The progress callback asked the work to stop (it returned False or raised this)."""


class Progress:
    """A progress callback mapped onto ``[start, end]`` of the whole job, under a stage name.

    Parameters
    ----------
    callback : callable or None
        The user's callback (``None``: reports are free and nothing can cancel).
    start, end : float
        The part of the whole job this object's own 0..1 covers.
    prefix : str
        Stage names of this object and its parents, joined by ``": "``.
    cancel_type : type of Cancelled
        The exception raised when the callback returns ``False``.
    """

    def __init__(
        self,
        callback: ProgressCallback | None = None,
        start: float = 0.0,
        end: float = 1.0,
        prefix: str = "",
        cancel_type: type[Cancelled] = Cancelled,
    ) -> None:
        self.callback = callback
        self.start = float(start)
        self.end = float(end)
        self.prefix = prefix
        self.cancel_type = cancel_type

    @classmethod
    def wrap(
        cls,
        callback: ProgressCallback | Progress | None,
        cancel_type: type[Cancelled] = Cancelled,
    ) -> Progress:
        """A :class:`Progress` from a plain callback (or the same object if it is one)."""
        if isinstance(callback, Progress):
            return callback
        return cls(callback, cancel_type=cancel_type)

    def __call__(self, info: dict[str, Any] | None = None) -> bool:
        """Behave as a plain callback, so a :class:`Progress` can be passed as ``callback=``."""
        info = dict(info or {})
        fraction = info.pop("fraction", None)
        if fraction is None and info.get("epochs"):
            fraction = float(info.get("epoch", 0)) / float(info["epochs"])
        message = info.pop("message", "") or ""
        self.report(float(fraction or 0.0), message, **info)
        return True

    @property
    def active(self) -> bool:
        """Whether anybody listens (skip building costly progress figures otherwise)."""
        return self.callback is not None

    def stage(self, start: float, end: float, name: str = "") -> Progress:
        """A child covering ``[start, end]`` of this object's own 0..1, named ``name``."""
        span = self.end - self.start
        prefix = ": ".join(part for part in (self.prefix, name) if part)
        return Progress(
            self.callback,
            self.start + span * float(start),
            self.start + span * float(end),
            prefix,
            self.cancel_type,
        )

    def report(self, fraction: float = 0.0, message: str = "", **figures: Any) -> None:
        """Send ``fraction`` (of this stage) and ``message``; raise :class:`Cancelled` on stop."""
        if self.callback is None:
            return
        own = min(max(float(fraction), 0.0), 1.0)
        text = ": ".join(part for part in (self.prefix, message) if part)
        info = {
            "fraction": self.start + (self.end - self.start) * own,
            "message": text,
            "stage": self.prefix.rsplit(": ", 1)[-1],
            **figures,
        }
        answer = self.callback(info)
        if answer is False:
            raise self.cancel_type(f"cancelled during: {text or 'work'}")


class EpochsNumberedOn(Progress):
    """A stage whose reports number their ``epoch`` after ``offset`` earlier ones.

    For a training that continues another (the default fit's retraining after its moves are
    reverted), so that a loss plot keyed by epoch shows it after the first instead of
    dropping it as a repeat of epochs already drawn.
    """

    def __init__(self, stage: Progress, offset: int) -> None:
        super().__init__(stage.callback, stage.start, stage.end, stage.prefix, stage.cancel_type)
        self.offset = int(offset)

    def stage(self, start: float, end: float, name: str = "") -> Progress:
        return EpochsNumberedOn(super().stage(start, end, name), self.offset)

    def report(self, fraction: float = 0.0, message: str = "", **figures: Any) -> None:
        if figures.get("epoch") is not None:
            figures["epoch"] = figures["epoch"] + self.offset
        super().report(fraction, message, **figures)
