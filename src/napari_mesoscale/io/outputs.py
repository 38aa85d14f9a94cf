"""Where command-line results go: never onto an input, never onto existing data unasked.

Semantics of an output *folder* (``fit -o``, ``connect --out``, ``evaluate -o``): the results are
written into a temporary sibling ``.<name>.<random>`` and swapped with ``<name>`` only once all
of them are complete (see :func:`~napari_mesoscale.io.atomic.atomic_path`). A run killed at
any moment leaves ``<name>`` either as it was before (old files, all of them) or with the new
results (all of them) — never a mix. An existing non-empty output is replaced only with
``--overwrite``; an output that is, or contains, one of the run's inputs is always refused,
because replacing it would destroy that input.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from napari_mesoscale.io.atomic import atomic_path

__all__ = ["check_output", "output_folder"]


def check_output(
    output: str | os.PathLike,
    inputs: Iterable[str | os.PathLike | None] = (),
    *,
    overwrite: bool = False,
    option: str = "-o",
    overwrite_hint: str = "pass --overwrite",
) -> Path:
    """Refuse an output that is or holds an input, or that exists without ``overwrite``
    (the message says to ``overwrite_hint`` to replace it).

    Raises
    ------
    ValueError
        Naming the option, the path and what to do instead.
    """
    output = Path(output)
    resolved = output.resolve()
    for source in inputs:
        if source is None:
            continue
        source_resolved = Path(source).resolve()
        if source_resolved == resolved or source_resolved.is_relative_to(resolved):
            raise ValueError(
                f"{option} {output} would replace the input {source}; write the results "
                "somewhere else."
            )
    if _has_content(output) and not overwrite:
        raise ValueError(
            f"{option} {output} already exists; {overwrite_hint} to replace it, or choose "
            "another path."
        )
    return output


def _has_content(path: Path) -> bool:
    if path.is_dir() and not path.is_symlink():
        return any(path.iterdir())
    return path.exists() or path.is_symlink()


@contextmanager
def output_folder(
    output: str | os.PathLike,
    inputs: Iterable[str | os.PathLike | None] = (),
    *,
    overwrite: bool = False,
    option: str = "-o",
    carry: Iterable[str] = (),
) -> Iterator[Path]:
    """Yield a temporary folder to write results into; swap it onto ``output`` at the end.

    ``carry`` names entries of the existing ``output`` (e.g. ``"checkpoints"``) brought into
    the new folder (hard-linked where possible) before the swap.
    """
    output = check_output(output, inputs, overwrite=overwrite, option=option)
    if output.exists() and not output.is_dir():
        raise ValueError(f"{option} {output} is a file; an output folder is expected.")
    with atomic_path(output, directory=True) as staging:
        yield staging
        for name in carry:
            _carry(output / name, staging / name)


def _carry(source: Path, destination: Path) -> None:
    import shutil

    if not source.exists() or destination.exists():
        return
    if source.is_dir():
        shutil.copytree(source, destination, copy_function=_link_or_copy)
    else:
        _link_or_copy(source, destination)


def _link_or_copy(source: str | os.PathLike, destination: str | os.PathLike) -> None:
    import shutil

    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)
