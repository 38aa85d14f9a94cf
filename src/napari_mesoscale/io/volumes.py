"""Image volumes and movies: TIFF (with voxel sizes), Zarr and OME-Zarr, read lazily.

Axes are named with the letters T, C, Z, Y, X. Voxel sizes are in µm, in (z, y, x) order,
and frame rates in Hz. Large files are returned as dask arrays backed by the file, so that
nothing loads a whole movie until a computation asks for it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_mesoscale.io.atomic import atomic_path

VOLUME_SUFFIXES = (".tif", ".tiff", ".zarr", ".npy")
_EAGER_LIMIT_BYTES = 256 * 2**20


@dataclass
class Volume:
    """An image array with its physical metadata.

    Attributes
    ----------
    data : numpy.ndarray or dask.array.Array
        The pixels, axes as in ``axes``.
    axes : str
        One letter per dimension, e.g. ``"TZYX"`` or ``"ZYX"``.
    voxel_size : tuple of float or None
        (z, y, x) voxel size in µm ((y, x) for an image without a z axis, e.g. a (T, Y, X)
        movie), or None when the file does not say.
    frame_rate : float or None
        Frames per second for movies, when known.
    metadata : dict
        Anything else found in the file.
    """

    data: Any
    axes: str
    voxel_size: tuple[float, ...] | None = None
    frame_rate: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def is_lazy(array: Any) -> bool:
    """Whether ``array`` is a lazy (dask-like) array: it has a task graph and ``compute()``."""
    return hasattr(array, "dask") and hasattr(array, "compute")


def non_finite_frames_error(first_frame: int) -> ValueError:
    """The error for a movie with NaN or infinite values, naming the first such frame."""
    return ValueError(
        f"movie contains NaN or infinite values (first in frame {first_frame}). Replace them "
        "first, e.g. np.nan_to_num(movie, nan=np.nanmedian(movie))."
    )


def check_voxel_size(voxel_size: Any, ndim: int = 3) -> tuple[float, ...]:
    """Validate a voxel size: ``ndim`` positive finite numbers in µm, (z, y, x) order.

    Raises
    ------
    ValueError
        With a message saying what was given and what is expected.
    """
    if voxel_size is None:
        raise ValueError(f"voxel_size is required: {ndim} numbers in µm, (z, y, x) order.")
    values = np.atleast_1d(np.asarray(voxel_size, dtype=float))
    if values.ndim != 1 or values.size != ndim:
        raise ValueError(
            f"voxel_size must have {ndim} values in µm ({', '.join('zyx'[-ndim:])}); "
            f"got {list(values.ravel())}."
        )
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"voxel_size values must be positive and finite µm; got {list(values)}.")
    return tuple(float(v) for v in values)


def _check_axes(axes: str, ndim: int) -> str:
    axes = axes.upper()
    if len(axes) != ndim or set(axes) - set("TCZYX") or len(set(axes)) != len(axes):
        raise ValueError(
            f"axes {axes!r} do not describe an array with {ndim} dimensions; "
            "use one distinct letter of T, C, Z, Y, X per dimension, e.g. 'TZYX'."
        )
    return axes


# -- reading --------------------------------------------------------------------------------
def read_volume(path: str | os.PathLike, *, lazy: bool | None = None) -> Volume:
    """Read a TIFF, Zarr / OME-Zarr or ``.npy`` volume with its voxel size.

    Parameters
    ----------
    path : path-like
        ``.tif``/``.tiff`` (OME-TIFF or ImageJ hyperstack metadata understood), a ``.zarr``
        folder (plain array or OME-Zarr multiscale image; the full-resolution level is read),
        or ``.npy`` (memory-mapped).
    lazy : bool, optional
        Return a dask array backed by the file. By default files larger than 256 MB are
        read lazily and smaller ones loaded.

    Returns
    -------
    Volume
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No such file or folder: {path}")
    name = path.name.lower()
    if name.endswith((".tif", ".tiff")):
        return _read_tiff(path, lazy)
    if name.endswith(".zarr") or (path / ".zattrs").exists() or (path / "zarr.json").exists():
        return _read_zarr(path, lazy)
    if name.endswith(".npy"):
        return _read_npy(path, lazy)
    raise ValueError(
        f"Unknown volume format: {path.name}. Supported: {', '.join(VOLUME_SUFFIXES)} "
        "(TIFF, Zarr / OME-Zarr, NumPy)."
    )


_LAZY_CHUNK_BYTES = 64 * 2**20


class _NpyFile:
    """A ``.npy`` file seen as an array whose slices are read from disk on demand.

    ``dask.array.from_array`` copies a ``numpy.memmap`` into memory (dask 2026.x); handing it
    this object instead keeps the file on disk: each chunk is a fresh memory map, sliced and
    copied, then closed.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        header = _open_npy(path)
        self.shape, self.dtype, self.ndim = header.shape, header.dtype, header.ndim

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.array(np.load(self.path, mmap_mode="r", allow_pickle=False)[key])


def _open_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"{path} is not a readable .npy array ({error}).") from error


def _read_npy(path: Path, lazy: bool | None) -> Volume:
    data = _open_npy(path)
    if not 2 <= data.ndim <= 4:
        raise ValueError(f"{path.name}: {data.ndim}-D arrays are not supported (2-D to 4-D).")
    axes = "TZYX"[-data.ndim :]
    if lazy:
        import dask.array as da

        source = _NpyFile(path)
        stat = path.stat()
        return Volume(
            da.from_array(
                source,
                chunks=_leading_axis_chunks(data.shape, data.dtype),
                name=f"npy-{path.resolve()}-{stat.st_size}-{stat.st_mtime_ns}",
                meta=np.empty((0,) * data.ndim, data.dtype),
            ),
            axes,
        )
    return Volume(np.asarray(data), axes)  # memory-mapped: pages load as they are read


def _leading_axis_chunks(shape: tuple[int, ...], dtype: np.dtype) -> tuple[Any, ...]:
    """Whole frames (planes) per chunk, ~64 MiB; larger single frames split along the rest."""
    import dask.array as da

    per_slice = int(np.prod(shape[1:], dtype=float)) * np.dtype(dtype).itemsize
    if per_slice <= _LAZY_CHUNK_BYTES:
        return (max(1, _LAZY_CHUNK_BYTES // max(per_slice, 1)), *shape[1:])
    rest = da.core.normalize_chunks("auto", shape[1:], limit=_LAZY_CHUNK_BYTES, dtype=dtype)
    return (1, *(chunk[0] for chunk in rest))


class _TiffErrors:
    """Collect what tifffile logs as errors (it reads damaged files partially, silently)."""

    def __enter__(self) -> list[str]:
        import logging

        self.messages: list[str] = []
        self.handler = logging.Handler(level=logging.ERROR)
        self.handler.emit = lambda record: self.messages.append(record.getMessage())
        logging.getLogger("tifffile").addHandler(self.handler)
        return self.messages

    def __exit__(self, *exc: Any) -> None:
        import logging

        logging.getLogger("tifffile").removeHandler(self.handler)


#: errors passed on as they are: they already say what is wrong, and with which file
_KEPT_ERRORS = (MemoryError, PermissionError, IsADirectoryError)


def _read_tiff(path: Path, lazy: bool | None) -> Volume:
    with _TiffErrors() as errors:
        try:
            volume = _read_tiff_file(path, lazy)
        except _KEPT_ERRORS:
            raise
        except Exception as error:  # tifffile meets a damaged file with IndexError, KeyError…
            raise _damaged_tiff(path, [*errors, str(error) or type(error).__name__]) from error
    if errors:
        raise _damaged_tiff(path, errors)
    return volume


def _damaged_tiff(path: Path, problems: list[str]) -> ValueError:
    """The one-line error for a TIFF that cannot be read whole."""
    return ValueError(
        f"{path} is damaged (truncated or corrupt TIFF): {problems[0]}"
        + (f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else "")
        + "; copy it again from the source."
    )


def _read_tiff_file(path: Path, lazy: bool | None) -> Volume:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise ValueError("it holds no readable image")
        series = tif.series[0]
        axes = series.axes.upper().replace("Q", "T").replace("I", "T").replace("S", "C")
        nbytes = int(np.prod(series.shape)) * series.dtype.itemsize
        voxel_size, frame_rate, metadata = _tiff_physical_metadata(tif, axes)
        if lazy or (lazy is None and nbytes > _EAGER_LIMIT_BYTES):
            import dask.array as da
            import zarr

            store = tif.aszarr()
            data = da.from_zarr(zarr.open(store, mode="r"))
        else:
            data = series.asarray()
    return Volume(data, axes, voxel_size, frame_rate, metadata)


def _tiff_physical_metadata(tif: Any, axes: str) -> tuple[Any, Any, dict[str, Any]]:
    """Voxel size, frame rate and other metadata of a TIFF whose first series has ``axes``.

    The voxel size is (z, y, x), or (y, x) for an image without a z axis (a plane or a
    (T, Y, X) movie of one plane), as :func:`read_volume` gives Zarr images back.
    """
    import tifffile

    if tif.is_ome and tif.ome_metadata:
        ome = tifffile.xml2dict(tif.ome_metadata)["OME"]
        image = ome["Image"][0] if isinstance(ome["Image"], list) else ome["Image"]
        pixels = image["Pixels"]
        spatial = "ZYX" if "Z" in axes else "YX"
        sizes = [pixels.get(f"PhysicalSize{axis}") for axis in spatial]
        voxel_size = tuple(float(s) for s in sizes) if all(sizes) else None
        increment = pixels.get("TimeIncrement")
        frame_rate = 1.0 / float(increment) if increment else None
        return voxel_size, frame_rate, _json_description(image.get("Description"))
    if tif.is_imagej and tif.imagej_metadata:
        meta = dict(tif.imagej_metadata)
        page = tif.pages[0]
        x_res = page.tags.get("XResolution")
        y_res = page.tags.get("YResolution")
        spacing = meta.get("spacing")
        voxel_size = None
        if x_res and y_res and spacing:
            x = x_res.value[1] / x_res.value[0]
            y = y_res.value[1] / y_res.value[0]
            voxel_size = (float(spacing), float(y), float(x))
        interval = meta.get("finterval")
        return voxel_size, (1.0 / interval if interval else None), meta
    return None, None, {}


def _json_description(description: Any) -> dict[str, Any]:
    if not isinstance(description, str):
        return {}
    try:
        value = json.loads(description)
    except json.JSONDecodeError:
        return {"description": description}
    return value if isinstance(value, dict) else {"description": value}


def _read_zarr(path: Path, lazy: bool | None) -> Volume:
    import dask.array as da
    import zarr

    node = _open_zarr(path)
    voxel_size = frame_rate = None
    axes = None
    metadata: dict[str, Any] = {}
    if isinstance(node, zarr.Group):
        attributes = dict(node.attrs)
        ome = attributes.get("ome", attributes)
        multiscales = ome.get("multiscales")
        if not multiscales:
            raise ValueError(
                f"{path.name} is a Zarr group without OME-Zarr 'multiscales' metadata; "
                "open the array inside it (path/to/group.zarr/<array>) instead."
            )
        image = multiscales[0]
        axes = _ome_axes(path, image)
        level, array = _full_resolution(path, node, image)
        if len(axes) != array.ndim:
            raise ValueError(
                f"{path.name}: the OME-Zarr metadata names {len(axes)} axes ({axes!r}) for an "
                f"array with {array.ndim} dimensions {tuple(array.shape)}; the file is broken."
            )
        try:
            scale = _ome_scale(level, image)
        except (ValueError, TypeError, KeyError) as error:
            raise ValueError(f"{path.name}: {error}") from None
        if scale is not None:
            _check_ome_scale(path, axes, scale)
            per_axis = dict(zip(axes, scale, strict=True))
            if "Y" in per_axis and "X" in per_axis:  # (z,) y, x: a movie of one plane has no z
                voxel_size = tuple(float(per_axis[axis]) for axis in "ZYX" if axis in per_axis)
            if per_axis.get("T"):
                frame_rate = 1.0 / float(per_axis["T"])
        _check_chunks_present(path, array, attributes)
        skip = ("multiscales", "ome", _COMPLETE_MARK)
        metadata = {k: v for k, v in attributes.items() if k not in skip}
    else:
        array = node
        attributes = dict(node.attrs)
        if "voxel_size" in attributes:
            voxel_size = tuple(float(v) for v in attributes["voxel_size"])
        frame_rate = attributes.get("frame_rate")
        axes = attributes.get("axes")
        # read into the volume's own fields, not kept twice (napari's layer for the volume
        # failed on 'axes' given twice)
        metadata = {
            k: v for k, v in attributes.items() if k not in ("voxel_size", "frame_rate", "axes")
        }
    axes = _check_axes(axes or "TZYX"[-array.ndim :], array.ndim)
    nbytes = int(np.prod(array.shape)) * np.dtype(array.dtype).itemsize
    source = _ZarrChunks(path, array)
    if lazy or (lazy is None and nbytes > _EAGER_LIMIT_BYTES):
        from dask.base import tokenize

        name = "from-zarr-" + tokenize(array, str(path.resolve()))
        meta = np.empty((0,) * array.ndim, array.dtype)
        data = da.from_array(source, chunks=array.chunks, name=name, meta=meta)
    else:
        data = source[...]
    return Volume(data, axes, voxel_size, frame_rate, metadata)


def _open_zarr(path: Path) -> Any:
    """The Zarr array or group at ``path``; a ValueError naming it when it is damaged."""
    import zarr

    try:
        return zarr.open(str(path), mode="r")
    except _KEPT_ERRORS:
        raise
    except Exception as error:  # a broken .zarray: KeyError 'zarr_format', JSONDecodeError…
        problem = str(error) or type(error).__name__
        if isinstance(error, KeyError):
            problem = f"its metadata lacks {problem}"
        raise ValueError(
            f"{path} is damaged (not a readable Zarr array or OME-Zarr image: {problem}); "
            "copy it again from the source."
        ) from error


def _full_resolution(path: Path, node: Any, image: dict[str, Any]) -> tuple[Any, Any]:
    """The first ``datasets`` entry of an OME-Zarr multiscale image and its array."""
    try:
        level = image["datasets"][0]
        return level, node[level["path"]]
    except _KEPT_ERRORS:
        raise
    except Exception as error:  # KeyError, IndexError, TypeError or zarr's own
        raise ValueError(
            f"{path} is damaged: its OME-Zarr 'datasets' metadata does not lead to an array "
            f"({type(error).__name__}: {error}); copy it again from the source."
        ) from error


class _ZarrChunks:
    """A Zarr array whose undecodable chunks raise a ``ValueError`` naming the file.

    A corrupt chunk otherwise surfaces deep inside a computation as the codec's own error
    (e.g. ``RuntimeError: error during blosc decompression: -1``), naming neither the file
    nor the problem.
    """

    def __init__(self, path: Path, array: Any) -> None:
        self.path, self.array = path, array
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            return np.asarray(self.array[key])
        except (ValueError, MemoryError):
            raise
        except Exception as error:  # codecs raise RuntimeError, TypeError, their own types
            raise ValueError(
                f"{self.path.name}: a chunk of the image cannot be decoded ({error}); the copy "
                "is damaged: copy it again from the source."
            ) from error


def _ome_axes(path: Path, image: dict[str, Any]) -> str:
    try:
        return "".join(a if isinstance(a, str) else a["name"] for a in image["axes"]).upper()
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path.name}: OME-Zarr 'axes' metadata is malformed ({error}).") from None


def _check_ome_scale(path: Path, axes: str, scale: list[float]) -> None:
    """OME scales must be one positive finite number per axis."""
    if len(scale) != len(axes):
        raise ValueError(
            f"{path.name}: the OME-Zarr scale {scale} has {len(scale)} values for the "
            f"{len(axes)} axes {axes!r}; the file is broken."
        )
    bad = [f"{axis}={value}" for axis, value in zip(axes, scale, strict=True) if not value > 0]
    if bad or not np.all(np.isfinite(scale)):
        raise ValueError(
            f"{path.name}: OME-Zarr scale {scale} is not a voxel size / frame interval "
            f"(every value must be positive and finite; bad: {', '.join(bad) or 'non-finite'})."
        )


_COMPLETE_MARK = "napari_mesoscale_all_chunks_written"


def _check_chunks_present(path: Path, array: Any, attributes: dict[str, Any]) -> None:
    """Missing chunks read as the fill value (zeros): refuse them in our own files, warn else.

    :func:`write_ome_zarr` writes every chunk (even empty ones) and marks the image, so a
    missing chunk there means a damaged copy. Other writers may omit chunks equal to the
    fill value on purpose, so for them this is only a warning.
    """
    try:
        expected, present = int(array.nchunks), int(array.nchunks_initialized)
    except (AttributeError, OSError, TypeError):
        return
    if present >= expected:
        return
    text = (
        f"{path.name}: {expected - present} of {expected} chunks of the image are missing on "
        f"disk; they would read as the fill value ({array.fill_value!r})"
    )
    if attributes.get(_COMPLETE_MARK):
        raise ValueError(f"{text}. The file was written complete, so the copy is damaged.")
    import warnings

    warnings.warn(f"{text} (some writers omit empty chunks on purpose).", stacklevel=4)


def _ome_scale(level: dict[str, Any], image: dict[str, Any]) -> list[float] | None:
    scale = None
    for transforms in (
        level.get("coordinateTransformations"),
        image.get("coordinateTransformations"),
    ):
        for transform in transforms or []:
            if transform.get("type") == "scale":
                values = [float(v) for v in transform["scale"]]
                if scale is not None and len(scale) != len(values):
                    raise ValueError(
                        f"OME-Zarr scales of different lengths {scale} and {values}; the "
                        "multiscale metadata is broken."
                    )
                scale = (
                    values if scale is None else [a * b for a, b in zip(scale, values, strict=True)]
                )
    return scale


# -- writing --------------------------------------------------------------------------------
def write_tiff(
    path: str | os.PathLike,
    data: Any,
    *,
    voxel_size: Any,
    axes: str = "ZYX",
    frame_rate: float | None = None,
    metadata: dict[str, Any] | None = None,
    uuid: str | None = None,
    compression: str | None = "zlib",
) -> Path:
    """Write an OME-TIFF with physical voxel sizes (µm) and frame interval, atomically.

    ``voxel_size`` is (z, y, x) µm, or (y, x) for an image without a z axis (a (Y, X) plane
    or a (T, Y, X) movie of one plane), as :func:`read_volume` gives it back.
    ``metadata`` (JSON-serialisable) is stored as an OME XML annotation and comes back in
    :attr:`Volume.metadata`. Pass ``uuid`` for byte-identical files across runs. Dask arrays
    are written plane by plane, never loaded whole.
    """
    import tifffile

    axes = _check_axes(axes, np.ndim(data))
    spatial = "YX" if np.size(voxel_size) == 2 and "Z" not in axes else "ZYX"
    sizes = check_voxel_size(voxel_size, len(spatial))
    ome: dict[str, Any] = {"axes": axes, "Creator": "napari-mesoscale"}
    for axis, size in zip(spatial, sizes, strict=True):
        ome[f"PhysicalSize{axis}"] = size
        ome[f"PhysicalSize{axis}Unit"] = "µm"
    if uuid is not None:
        ome["UUID"] = uuid
    if frame_rate:
        ome["TimeIncrement"] = 1.0 / float(frame_rate)
        ome["TimeIncrementUnit"] = "s"
    if metadata:
        ome["Description"] = json.dumps(metadata, sort_keys=True)
    path = Path(path)
    with atomic_path(path) as temporary:
        planes = _iter_planes(data)
        tifffile.imwrite(
            temporary,
            planes,
            shape=tuple(int(s) for s in np.shape(data)),
            dtype=np.dtype(data.dtype),
            ome=True,
            metadata=ome,
            compression=compression,
            photometric="minisblack",
        )
    return path


def _iter_planes(data: Any):
    shape = np.shape(data)
    leading = shape[:-2]
    for index in np.ndindex(*leading):
        yield np.asarray(data[index])


def write_ome_zarr(
    path: str | os.PathLike,
    data: Any,
    *,
    voxel_size: Any,
    axes: str = "ZYX",
    frame_rate: float | None = None,
    chunks: tuple[int, ...] | None = None,
) -> Path:
    """Write a single-scale OME-Zarr (v0.4 layout) image, chunk by chunk and atomically.

    ``voxel_size`` is (z, y, x) µm, or (y, x) for an image without a z axis (a movie of one
    plane, as :func:`read_volume` gives it back).
    """
    import dask.array as da
    import zarr

    axes = _check_axes(axes, np.ndim(data))
    spatial = "YX" if np.size(voxel_size) == 2 and "Z" not in axes else "ZYX"
    per_axis = dict(zip(spatial, check_voxel_size(voxel_size, len(spatial)), strict=True))
    if frame_rate:
        per_axis["T"] = 1.0 / float(frame_rate)
    scale = [per_axis.get(axis, 1.0) for axis in axes]
    kinds = {"T": ("time", "second"), "C": ("channel", None)}
    axes_meta = []
    for axis in axes:
        kind, unit = kinds.get(axis, ("space", "micrometer"))
        entry = {"name": axis.lower(), "type": kind}
        if unit:
            entry["unit"] = unit
        axes_meta.append(entry)
    if chunks is None:
        chunks = tuple(
            1 if axis in "TC" else min(s, 256) for axis, s in zip(axes, np.shape(data), strict=True)
        )
    source = data if isinstance(data, da.Array) else da.from_array(np.asarray(data), chunks=chunks)
    path = Path(path)
    with atomic_path(path, directory=True) as temporary:
        root = zarr.open_group(str(temporary), mode="w", zarr_format=2)
        root.attrs["multiscales"] = [
            {
                "version": "0.4",
                "axes": axes_meta,
                "datasets": [
                    {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}
                ],
            }
        ]
        root.attrs[_COMPLETE_MARK] = True
        target = root.create_array(
            "0",
            shape=source.shape,
            chunks=chunks,
            dtype=source.dtype,
            config={"write_empty_chunks": True},
        )
        da.store(source.rechunk(chunks), target, lock=False)
    return path
