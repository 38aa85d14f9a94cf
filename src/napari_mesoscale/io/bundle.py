"""Results bundle: one versioned folder holding a run's tables, arrays, volumes and parameters.

Layout of ``<name>.mesoscale/``::

    bundle.json          format name, version, package version, metadata, contents
    tables/<name>.parquet
    arrays/<name>.npy
    volumes/<name>.zarr  OME-Zarr, with voxel size (and frame rate for movies)
    files/<name>/...     opaque attachments (e.g. a fitted model's own save folder)

The whole folder is written beside its destination and renamed into place, so an existing
bundle is either replaced completely or left as it was.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from napari_mesoscale.io.atomic import atomic_path
from napari_mesoscale.io.tables import read_npy
from napari_mesoscale.io.volumes import Volume, read_volume, write_ome_zarr

BUNDLE_FORMAT = "napari-mesoscale-bundle"
BUNDLE_VERSION = 1
BUNDLE_SUFFIX = ".mesoscale"


@dataclass
class ResultsBundle:
    """Tables, arrays, volumes and metadata of one run, saved and loaded as a unit.

    Attributes
    ----------
    tables : dict of str to pandas.DataFrame
        E.g. ``"point_sources"``, ``"neurons"``, ``"synapses"``, ``"domains"``.
    arrays : dict of str to numpy.ndarray
        E.g. ``"traces"`` (N, T), ``"predicted"`` (T, N).
    volumes : dict of str to Volume
        Label volumes and movies with their voxel size.
    metadata : dict
        JSON-serialisable parameters of the run (seed, versions, settings).
    files : dict of str to path
        Folders or files copied into the bundle as they are.
    """

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    volumes: dict[str, Volume] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the bundle folder atomically; returns its path (suffix ``.mesoscale`` added)."""
        return save_bundle(path, self)

    @classmethod
    def load(cls, path: str | os.PathLike, *, lazy: bool = True) -> ResultsBundle:
        """Read a bundle written by :meth:`save`."""
        return load_bundle(path, lazy=lazy)


def to_jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and arrays made plain; anything else unknown as ``str``."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _check_name(kind: str, name: str) -> None:
    if not name or not all(ch.isalnum() or ch in "_-." for ch in name) or name.startswith("."):
        raise ValueError(f"{kind} name {name!r} must use letters, digits, '_', '-' or '.'.")


def save_bundle(path: str | os.PathLike, bundle: ResultsBundle) -> Path:
    """Write ``bundle`` to ``path`` (a folder ending in ``.mesoscale``), atomically."""
    from napari_mesoscale import __version__

    path = Path(path)
    if not path.name.endswith(BUNDLE_SUFFIX):
        path = path.with_name(path.name + BUNDLE_SUFFIX)
    contents: dict[str, Any] = {"tables": [], "arrays": [], "volumes": [], "files": []}
    with atomic_path(path, directory=True) as folder:
        for name, table in bundle.tables.items():
            _check_name("table", name)
            (folder / "tables").mkdir(exist_ok=True)
            table.to_parquet(folder / "tables" / f"{name}.parquet", index=False)
            contents["tables"].append(name)
        for name, array in bundle.arrays.items():
            _check_name("array", name)
            (folder / "arrays").mkdir(exist_ok=True)
            np.save(folder / "arrays" / f"{name}.npy", np.asarray(array), allow_pickle=False)
            contents["arrays"].append(name)
        for name, volume in bundle.volumes.items():
            _check_name("volume", name)
            (folder / "volumes").mkdir(exist_ok=True)
            write_ome_zarr(
                folder / "volumes" / f"{name}.zarr",
                volume.data,
                voxel_size=volume.voxel_size or (1.0, 1.0, 1.0),
                axes=volume.axes,
                frame_rate=volume.frame_rate,
            )
            contents["volumes"].append(name)
        for name, source in bundle.files.items():
            _check_name("file", name)
            source = Path(source)
            destination = folder / "files" / name
            destination.parent.mkdir(exist_ok=True)
            _refuse_escaping_links(source)
            if source.is_dir():
                shutil.copytree(source, destination)
            else:
                destination.mkdir()
                shutil.copy2(source, destination / source.name)
            contents["files"].append(name)
        header = {
            "format": BUNDLE_FORMAT,
            "version": BUNDLE_VERSION,
            "package_version": __version__,
            "contents": contents,
            "metadata": to_jsonable(bundle.metadata),
        }
        (folder / "bundle.json").write_text(json.dumps(header, indent=2, sort_keys=True))
    return path


def is_bundle(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder holding a napari-mesoscale ``bundle.json``."""
    try:
        read_bundle_header(path)
    except ValueError:
        return False
    return True


def looks_like_bundle(path: str | os.PathLike) -> bool:
    """True for a folder named ``*.mesoscale`` or holding a bundle: one to open as a bundle,
    even when damaged (so that opening it says what is wrong)."""
    path = Path(path)
    return (path.is_dir() and path.name.lower().endswith(BUNDLE_SUFFIX)) or is_bundle(path)


def read_bundle_header(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``bundle.json`` of the bundle at ``path``.

    Raises
    ------
    ValueError
        Saying what is wrong: no ``bundle.json`` (an empty or incomplete folder), one that
        cannot be read or is not JSON (damaged), or one of another format.
    """
    path = Path(path)
    header_path = path / "bundle.json"
    if not header_path.is_file():
        raise ValueError(
            f"{path} is not a napari-mesoscale results bundle: it has no bundle.json (an empty "
            "or incomplete folder; a bundle is written whole, so copy or save it again)."
        )
    try:
        header = json.loads(header_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{header_path} is damaged ({error}); the bundle cannot be opened: copy it again "
            "from the source or save it again."
        ) from None
    if not isinstance(header, dict) or header.get("format") != BUNDLE_FORMAT:
        found = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise ValueError(
            f"{header_path} is not a napari-mesoscale bundle header (format {found!r}, "
            f"expected {BUNDLE_FORMAT!r})."
        )
    return header


def load_bundle(path: str | os.PathLike, *, lazy: bool = True) -> ResultsBundle:
    """Read a results bundle; volumes stay lazy (dask) unless ``lazy=False``.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When it is not a bundle, a damaged one (the message says what is damaged), or one
        written by a newer version of the format.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No such results bundle: {path}")
    header = read_bundle_header(path)
    if not isinstance(header.get("version"), int) or header["version"] > BUNDLE_VERSION:
        raise ValueError(
            f"{path.name} was written with bundle format version {header.get('version')!r}; "
            f"this napari-mesoscale reads integer versions up to {BUNDLE_VERSION}. Upgrade the "
            "package."
        )
    contents = _checked_contents(path, header.get("contents"))
    member = {kind: _members(path, kind, names) for kind, names in contents.items()}
    readers = {
        "tables": pd.read_parquet,
        "arrays": lambda p: read_npy(p, "bundle array"),
        "volumes": lambda p: read_volume(p, lazy=lazy),
    }
    read = {kind: _read_members(path, member[kind], reader) for kind, reader in readers.items()}
    return ResultsBundle(**read, metadata=header.get("metadata", {}), files=member["files"])


def _read_members(path: Path, members: dict[str, Path], reader: Any) -> dict[str, Any]:
    """Each member read with ``reader``; a missing or damaged one named in a ValueError."""
    out = {}
    for name, member in members.items():
        try:
            out[name] = reader(member)
        except MemoryError:
            raise
        except Exception as error:  # pyarrow, numpy and zarr raise their own types
            where = member.relative_to(path)
            problem = "is missing" if not member.exists() else f"is damaged ({error})"
            raise ValueError(
                f"{path.name}: {where}, listed in its bundle.json, {problem}; the bundle is "
                "incomplete: copy it again from the source or save it again."
            ) from error
    return out


_MEMBER_LAYOUT = {
    "tables": ("tables", ".parquet"),
    "arrays": ("arrays", ".npy"),
    "volumes": ("volumes", ".zarr"),
    "files": ("files", ""),
}


def _checked_contents(path: Path, contents: Any) -> dict[str, list[str]]:
    """The ``contents`` of a bundle.json: lists of plain names per kind, nothing else."""
    if not isinstance(contents, dict):
        raise ValueError(f"{path / 'bundle.json'} has no 'contents' listing; the bundle is broken.")
    unknown = sorted(set(contents) - set(_MEMBER_LAYOUT))
    if unknown:
        raise ValueError(f"{path / 'bundle.json'} lists unknown contents {unknown}.")
    out = {}
    for kind in _MEMBER_LAYOUT:
        names = contents.get(kind, [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{path / 'bundle.json'}: contents[{kind!r}] must be a list of names.")
        for name in names:
            try:
                _check_name(kind.rstrip("s"), name)
            except ValueError as error:
                raise ValueError(f"{path / 'bundle.json'} is refused: {error}") from None
        out[kind] = names
    return out


def _members(path: Path, kind: str, names: list[str]) -> dict[str, Path]:
    """Paths of the named members, each checked to lie inside the bundle (no escaping links)."""
    folder, suffix = _MEMBER_LAYOUT[kind]
    root = path.resolve()
    out = {}
    for name in names:
        member = path / folder / f"{name}{suffix}"
        if not member.resolve().is_relative_to(root):
            raise ValueError(
                f"{path.name}: {folder}/{name}{suffix} points outside the bundle "
                f"(to {member.resolve()}); refused."
            )
        if member.is_dir():
            _refuse_escaping_links(member, root)
        out[name] = member
    return out


def _refuse_escaping_links(source: Path, root: Path | None = None) -> None:
    """Refuse a folder holding a symbolic link that leads outside ``root`` (default: itself)."""
    if not source.is_dir():
        return
    root = (root or source).resolve()
    for dirpath, dirnames, filenames in os.walk(source):
        for entry in (*dirnames, *filenames):
            candidate = Path(dirpath) / entry
            if candidate.is_symlink() and not candidate.resolve().is_relative_to(root):
                raise ValueError(
                    f"{candidate} is a link to {candidate.resolve()}, outside {root}; "
                    "refused (a bundle copies only what lies inside it)."
                )


# -- a dictionary of mixed values (a napari layer's ``metadata``) kept in a bundle ------------

_TUPLE_MARK = "__tuple__"


def store_values(
    bundle: ResultsBundle, prefix: str, values: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """Put a dictionary of mixed values into ``bundle``; say which keys it cannot hold.

    Numeric arrays go in as ``.npy`` arrays, scipy sparse matrices as the three arrays of their
    COO form, data frames as tables (index kept), and plain values (None, bool, int, float, str,
    numpy scalars, and lists, tuples and string-keyed dictionaries of them) into the returned
    JSON description; members are named ``<prefix>.<key>``. :func:`restore_values` gives the
    dictionary back from that description.

    Parameters
    ----------
    bundle : ResultsBundle
        Receives the arrays and tables (not saved yet).
    prefix : str
        Start of the member names (letters, digits, ``_``, ``-``, ``.``).
    values : dict
        E.g. a napari layer's ``metadata``.

    Returns
    -------
    description : dict
        JSON-serialisable; store it in ``bundle.metadata``.
    left_out : list of str
        Keys whose values cannot be stored (arbitrary Python objects, object arrays,
        non-string keys), in the dictionary's order.
    """
    import scipy.sparse as sp

    description: dict[str, Any] = {"json": {}, "arrays": {}, "sparse": {}, "tables": {}}
    left_out: list[str] = []
    for key, value in values.items():
        if not isinstance(key, str):
            left_out.append(str(key))
            continue
        if isinstance(value, np.ndarray) and value.dtype != object:
            name = _free_name(bundle, prefix, key)
            bundle.arrays[name] = value
            description["arrays"][key] = name
        elif sp.issparse(value):
            coo = value.tocoo()
            name = _free_name(bundle, prefix, key)
            parts = {}
            for part in ("row", "col", "data"):
                parts[part] = f"{name}.{part}"
                bundle.arrays[parts[part]] = np.asarray(getattr(coo, part))
            description["sparse"][key] = {
                "format": value.format,
                "matrix": isinstance(value, sp.spmatrix),
                "shape": [int(n) for n in value.shape],
                **parts,
            }
        elif isinstance(value, pd.DataFrame) and all(isinstance(c, str) for c in value.columns):
            stored = _table_with_index(value)
            if stored is None:
                left_out.append(key)
                continue
            table, index = stored
            name = _free_name(bundle, prefix, key)
            bundle.tables[name] = table
            description["tables"][key] = {"name": name, "index": index}
        else:
            try:
                description["json"][key] = _plain(value)
            except TypeError:
                left_out.append(key)
    return description, left_out


def restore_values(bundle: ResultsBundle, description: dict[str, Any]) -> dict[str, Any]:
    """The dictionary :func:`store_values` described, read back from a loaded ``bundle``.

    Raises
    ------
    ValueError
        When the description names an array or table the bundle does not hold.
    """
    import scipy.sparse as sp

    if not isinstance(description, dict):
        raise ValueError("a bundle's stored values must be described by a dictionary.")

    def member(kind: str, name: Any) -> Any:
        members = bundle.arrays if kind == "array" else bundle.tables
        if not isinstance(name, str) or name not in members:
            raise ValueError(
                f"bundle.json names the {kind} {name!r} for a stored value, but the bundle "
                "holds no such member; it is broken."
            )
        return members[name]

    values: dict[str, Any] = {k: _unplain(v) for k, v in description.get("json", {}).items()}
    for key, name in description.get("arrays", {}).items():
        values[key] = np.asarray(member("array", name))
    for key, saved in description.get("sparse", {}).items():
        row, col, data = (np.asarray(member("array", saved[p])) for p in ("row", "col", "data"))
        coo = (sp.coo_matrix if saved.get("matrix", True) else sp.coo_array)(
            (data, (row, col)), shape=tuple(saved["shape"])
        )
        values[key] = coo.asformat(saved.get("format", "csr"))
    for key, saved in description.get("tables", {}).items():
        table = member("table", saved["name"])
        index = saved.get("index")
        if index:
            table = table.set_index([column for column, _ in index])
            table.index.names = [original for _, original in index]
        values[key] = table
    return values


def _free_name(bundle: ResultsBundle, prefix: str, key: str) -> str:
    """A member name ``<prefix>.<key>`` (key made safe) not yet used by ``bundle``."""
    safe = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in key) or "value"
    base = f"{prefix}.{safe}"
    taken = set(bundle.arrays) | set(bundle.tables)
    name, number = base, 1
    while name in taken or any(t.startswith(f"{name}.") for t in taken):
        number += 1
        name = f"{base}_{number}"
    return name


def _table_with_index(table: pd.DataFrame) -> tuple[pd.DataFrame, list[list[Any]]] | None:
    """``table`` with a non-default index moved into columns, and how to move it back."""
    if isinstance(table.index, pd.RangeIndex) and table.index.equals(pd.RangeIndex(len(table))):
        plain = table.reset_index(drop=True)
        return (plain, []) if _parquet_ready(plain) else None
    originals = list(table.index.names)
    columns = [f"__index_{level}__" for level in range(len(originals))]
    if set(columns) & set(table.columns):
        return None
    moved = table.copy()
    moved.index = moved.index.set_names(columns)
    moved = moved.reset_index()
    if not _parquet_ready(moved):
        return None
    return moved, [[c, o] for c, o in zip(columns, originals, strict=True)]


def _parquet_ready(table: pd.DataFrame) -> bool:
    """Whether ``table`` writes as Parquet (object columns of mixed types do not)."""
    import io

    try:
        table.to_parquet(io.BytesIO(), index=False)
    except Exception:  # TypeError, ValueError and pyarrow's own (ArrowInvalid, ArrowTypeError)
        return False
    return True


def _plain(value: Any) -> Any:
    """``value`` as JSON (tuples marked, to come back as tuples); TypeError if it is not plain."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.number | np.bool_ | np.str_):
        return value.item()
    if isinstance(value, tuple):
        return {_TUPLE_MARK: [_plain(v) for v in value]}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        if _TUPLE_MARK in value:
            raise TypeError(f"a dictionary with the key {_TUPLE_MARK!r} cannot be stored")
        return {k: _plain(v) for k, v in value.items()}
    raise TypeError(f"{type(value).__name__} is not a plain value")


def _unplain(value: Any) -> Any:
    if isinstance(value, list):
        return [_unplain(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {_TUPLE_MARK}:
            return tuple(_unplain(v) for v in value[_TUPLE_MARK])
        return {k: _unplain(v) for k, v in value.items()}
    return value
