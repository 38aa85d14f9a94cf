"""Where ``correct_motion`` writes: never onto data it was not asked to replace.

Found walking the *Correct motion* widget by hand: an existing folder typed as the registered
Zarr (or the empty field, which magicgui turns into the working directory) was replaced by the
registered movie, everything in it deleted; and a (T, Y, X) movie's Zarr said its axes were
"ZYX", so the plugin then refused it as a volume. Each test failed on the code before.
"""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from napari_mesoscale.io import read_volume
from napari_mesoscale.motion import correct_motion

OPTIONS = {"voxel_size": (2.0, 2.0), "nonrigid": False, "n_reference_frames": 4,
           "reference_iterations": 1}


def _movie(frames: int = 6) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.random((frames, 24, 24)).astype(np.float32)


def test_an_existing_folder_is_refused_and_kept(tmp_path):
    folder = tmp_path / "my data"
    folder.mkdir()
    (folder / "notes.txt").write_text("field notes")
    with pytest.raises(ValueError, match="already exists; pass overwrite=True"):
        correct_motion(_movie(), output=folder, **OPTIONS)
    assert (folder / "notes.txt").read_text() == "field notes"


def test_overwrite_never_replaces_what_is_not_a_zarr_store(tmp_path):
    folder = tmp_path / "my data"
    folder.mkdir()
    (folder / "raw_movie.tif").write_bytes(b"not ours")
    with pytest.raises(ValueError, match="is not a Zarr store; it is never replaced"):
        correct_motion(_movie(), output=folder, overwrite=True, **OPTIONS)
    assert (folder / "raw_movie.tif").read_bytes() == b"not ours"


def test_a_registered_zarr_is_replaced_when_asked(tmp_path):
    path = tmp_path / "registered.zarr"
    first = correct_motion(_movie(), output=path, **OPTIONS)
    assert first.registered.shape == (6, 24, 24)
    with pytest.raises(ValueError, match="already exists"):
        correct_motion(_movie(8), output=path, **OPTIONS)
    again = correct_motion(_movie(8), output=path, overwrite=True, **OPTIONS)
    assert again.registered.shape == (8, 24, 24)
    assert read_volume(path).data.shape == (8, 24, 24)


def test_the_movies_own_store_is_refused_even_with_overwrite(tmp_path):
    path = tmp_path / "raw.zarr"
    source = zarr.open_array(str(path), mode="w", shape=(6, 24, 24), chunks=(1, 24, 24),
                             dtype="float32", zarr_format=2)
    source[:] = _movie()
    with pytest.raises(ValueError, match="would replace the input"):
        correct_motion(source, output=path, overwrite=True, **OPTIONS)
    np.testing.assert_array_equal(zarr.open_array(str(path), mode="r")[:], _movie())


def test_a_plane_movie_is_written_as_time_y_x(tmp_path):
    path = tmp_path / "registered.zarr"
    correct_motion(_movie(), output=path, frame_rate=4.0, **OPTIONS)
    volume = read_volume(path)
    assert volume.axes == "TYX"
    assert volume.frame_rate == 4.0


def test_the_first_nan_frame_is_named_in_the_message():
    """Read in batches, the message named the batch ("frames 4-5"), not the frame, and its
    advice differed from detection's for the same movie."""
    movie = _movie(8)
    movie[5, 3, 3] = np.nan
    movie[6, 0, 0] = np.inf
    expected = r"movie contains NaN or infinite values \(first in frame 5\)\. Replace them"
    with pytest.raises(ValueError, match=expected):
        correct_motion(movie, reference=_movie(1)[0], batch_frames=2, **OPTIONS)
    with pytest.raises(ValueError, match=expected):
        correct_motion(movie, reference=_movie(1)[0], batch_frames=4, **OPTIONS)


def test_a_plane_movie_keeps_its_voxel_size_through_bundles(tmp_path):
    """Saved as TYX, a plane movie came back from a bundle at scale 1 (its y, x voxel size was
    read only where the image had a z axis), and could not be saved again."""
    from napari_mesoscale.io.bundle import ResultsBundle, load_bundle, save_bundle
    from napari_mesoscale.io.volumes import Volume

    movie = Volume(_movie(), "TYX", (1.0, 2.0, 2.0), frame_rate=4.0)
    save_bundle(tmp_path / "a.mesoscale", ResultsBundle(volumes={"movie": movie}))
    [first] = load_bundle(tmp_path / "a.mesoscale").volumes.values()
    assert first.axes == "TYX" and first.voxel_size == (2.0, 2.0)
    save_bundle(tmp_path / "b.mesoscale", ResultsBundle(volumes={"movie": first}))
    [second] = load_bundle(tmp_path / "b.mesoscale").volumes.values()
    assert second.voxel_size == (2.0, 2.0) and second.frame_rate == 4.0
