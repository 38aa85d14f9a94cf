"""Motion correction: known shifts and warps recovered, outliers flagged, lazy = eager,
cancel, bad input, and memory bounded by the batch rather than the movie."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy import ndimage

from napari_mesoscale.motion import (
    MotionCancelled,
    correct_motion,
    estimate_motion,
    register_if_moving,
)
from napari_mesoscale.motion.simulate import MOTION_PRESETS, apply_motion
from napari_mesoscale.progress import Cancelled


def _texture(shape, seed=0, sigma=1.5):
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.normal(size=shape), sigma).astype(np.float32) * 100 + 500


def _shifted(reference, shifts, seed=1):
    rng = np.random.default_rng(seed)
    frames = [ndimage.shift(reference, s, order=3, mode="nearest") for s in shifts]
    return np.stack(frames) + rng.normal(0, 1.0, (len(shifts), *reference.shape)).astype(np.float32)


def _centred_error(estimate_um, truth_um, voxel_size):
    error = (estimate_um - truth_um) / np.asarray(voxel_size)
    return np.linalg.norm(error - np.median(error, axis=0), axis=1)


@pytest.mark.parametrize(
    "shape,voxel_size", [((16, 48, 48), (2.0, 1.0, 1.0)), ((64, 64), (1.0, 1.0))]
)
def test_rigid_shifts_recovered(shape, voxel_size):
    reference = _texture(shape)
    rng = np.random.default_rng(2)
    # up to 4 voxels laterally; axially 2 voxels (4 µm) of a 16-plane stack
    limits = np.array([2.0, 4.0, 4.0][-len(shape) :] if len(shape) == 3 else [4.0, 4.0])
    shifts_vox = rng.uniform(-1, 1, (12, len(shape))) * limits
    movie = _shifted(reference, shifts_vox)
    result = correct_motion(movie, voxel_size=voxel_size, nonrigid=False)
    error = _centred_error(result.shifts_um, shifts_vox * np.asarray(voxel_size), voxel_size)
    assert np.median(error) < 0.3
    assert error.max() < 0.6
    # the registered frames agree with each other
    assert result.quality.min() > 0.9
    assert result.registered.shape == movie.shape


def test_nonrigid_field_recovered_better_than_rigid():
    voxel_size = (1.0, 1.0)
    frame = _texture((128, 128), seed=3)
    movie = np.repeat(frame[None], 16, axis=0)
    moved, truth = apply_motion(movie, voxel_size, "nonrigid", seed=4, drift_um=0.0, warp_um=2.5)
    points = np.stack(np.meshgrid(np.arange(12, 116, 8), np.arange(12, 116, 8)), -1).reshape(-1, 2)

    def field_error(result):
        residual = np.stack(
            [
                truth.displacement_at(t, points + result.displacement_at(t, points))
                - result.displacement_at(t, points)
                for t in range(len(moved))
            ]
        )
        return np.median(np.linalg.norm(residual - np.median(residual, axis=0), axis=-1))

    nonrigid = correct_motion(moved, voxel_size=voxel_size, block_size_um=32.0)
    rigid = correct_motion(moved, voxel_size=voxel_size, nonrigid=False)
    assert nonrigid.block_shifts_um is not None
    assert field_error(nonrigid) < 0.5
    assert field_error(nonrigid) < 0.6 * field_error(rigid)


def test_quality_flags_an_inserted_outlier_frame():
    reference = _texture((48, 48))
    movie = _shifted(reference, np.random.default_rng(5).uniform(-2, 2, (20, 2)))
    movie[7] = np.random.default_rng(6).normal(500, 100, (48, 48))
    result = correct_motion(movie, voxel_size=(1.0, 1.0), nonrigid=False)
    assert np.flatnonzero(result.outliers).tolist() == [7]
    table = result.to_table()
    assert bool(table.loc[7, "outlier"]) and table["outlier"].sum() == 1


def test_lazy_zarr_path_matches_eager(tmp_path):
    import zarr

    reference = _texture((8, 32, 32))
    movie = _shifted(reference, np.random.default_rng(7).uniform(-2, 2, (10, 3)))
    source = zarr.open_array(
        str(tmp_path / "raw.zarr"),
        mode="w",
        shape=movie.shape,
        chunks=(1, 8, 32, 32),
        dtype="float32",
        zarr_format=2,
    )
    source[:] = movie
    options = {"voxel_size": (2.0, 1.0, 1.0), "batch_frames": 3, "block_size_um": 16.0}
    eager = correct_motion(movie, **options)
    lazy = correct_motion(source, output=tmp_path / "registered.zarr", **options)
    np.testing.assert_allclose(lazy.shifts_um, eager.shifts_um, atol=1e-4)
    np.testing.assert_allclose(lazy.quality, eager.quality, atol=1e-5)
    assert type(lazy.registered).__name__ == "Array"  # dask, backed by the Zarr written
    np.testing.assert_allclose(np.asarray(lazy.registered), eager.registered, atol=1e-3)


def test_cancel_stops_with_motion_cancelled():
    movie = _shifted(_texture((32, 32)), np.zeros((6, 2)))
    seen = []

    def callback(info):
        seen.append(info["fraction"])
        return len(seen) < 2

    with pytest.raises(MotionCancelled):
        correct_motion(movie, voxel_size=(1.0, 1.0), callback=callback)
    assert issubclass(MotionCancelled, Cancelled)
    assert all(0.0 <= f <= 1.0 for f in seen)


def test_bad_input_gives_clear_errors():
    movie = _shifted(_texture((32, 32)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="T, Z, Y, X"):
        correct_motion(movie[0], voxel_size=(1.0, 1.0))
    with pytest.raises(ValueError, match="voxel_size"):
        correct_motion(movie, voxel_size=(2.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="positive"):
        correct_motion(movie, voxel_size=(0.0, 1.0))
    broken = movie.copy()
    broken[2, 3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        correct_motion(broken, voxel_size=(1.0, 1.0))
    with pytest.raises(ValueError, match="block_size_um"):
        correct_motion(movie, voxel_size=(1.0, 1.0), block_size_um=0.0)
    import dask.array as da

    with pytest.raises(ValueError, match="output="):
        correct_motion(da.from_array(movie), voxel_size=(1.0, 1.0))


def test_estimate_and_register_if_moving():
    reference = _texture((64, 64))
    still = _shifted(reference, np.zeros((30, 2)))
    moving = _shifted(reference, np.random.default_rng(8).uniform(-3, 3, (30, 2)))
    assert estimate_motion(still, voxel_size=(1.0, 1.0)).amplitude_voxels < 0.2
    assert estimate_motion(moving, voxel_size=(1.0, 1.0)).amplitude_voxels > 2.0
    same, correction, _ = register_if_moving(still, voxel_size=(1.0, 1.0))
    assert same is still and correction is None
    registered, correction, estimate = register_if_moving(
        moving, voxel_size=(1.0, 1.0), params=None
    )
    assert correction is not None and registered.shape == moving.shape
    assert estimate.amplitude_voxels > 0.5


def test_quick_motion_estimate_reports_progress_and_can_be_cancelled():
    """Detection's 'auto' registration spent its first seconds in an estimate no Cancel reached."""
    moving = _shifted(_texture((64, 64)), np.random.default_rng(8).uniform(-3, 3, (30, 2)))
    seen: list[float] = []
    estimate = estimate_motion(
        moving, voxel_size=(1.0, 1.0), callback=lambda info: seen.append(info["fraction"]) or True
    )
    assert estimate.amplitude_voxels > 2.0 and len(estimate.frames) == 24
    assert len(seen) > 10 and seen == sorted(seen) and seen[-1] == 1.0
    calls: list[float] = []
    with pytest.raises(Cancelled):
        register_if_moving(
            moving,
            voxel_size=(1.0, 1.0),
            callback=lambda info: calls.append(info["fraction"]) or info["fraction"] < 0.05,
        )
    assert max(calls) < 0.1  # stopped inside the estimate, before any correction


def test_motion_presets_and_truth():
    assert {"drift", "jumps", "nonrigid", "heldout"} <= set(MOTION_PRESETS)
    movie = np.repeat(_texture((8, 32, 32))[None], 30, axis=0)
    moved, truth = apply_motion(movie, (2.0, 1.0, 1.0), "heldout", seed=0)
    assert moved.shape == movie.shape and truth.rigid_um.shape == (30, 3)
    assert 2.0 < truth.max_rigid_um <= 10.0 + 1e-9
    assert truth.field_um(0, (8, 32, 32)).shape == (3, 8, 32, 32)
    with pytest.raises(ValueError, match="preset"):
        apply_motion(movie, (2.0, 1.0, 1.0), "earthquake")


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np, zarr, torch
    torch.set_num_threads(1)
    from napari_mesoscale.motion import correct_motion
    n, folder = int(sys.argv[1]), sys.argv[2]
    movie = zarr.open_array(folder + "/raw.zarr", mode="w", shape=(n, 8, 64, 64),
                            chunks=(1, 8, 64, 64), dtype="float32", zarr_format=2)
    rng = np.random.default_rng(0)
    frame = rng.normal(size=(8, 64, 64)).astype(np.float32)
    for t in range(n):
        movie[t] = np.roll(frame, t % 3, axis=2)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    correct_motion(movie, voxel_size=(2.0, 1.0, 1.0), output=folder + "/reg.zarr",
                   nonrigid=False, n_reference_frames=20, reference_iterations=1)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"growth_mib": (after - before) / 1024}))
    """
)


@pytest.mark.slow
def test_zarr_registration_memory_is_bounded_by_the_batch(tmp_path):
    growth = {}
    for n in (200, 800):  # both past the allocators' warm-up of the first batches
        folder = tmp_path / str(n)
        folder.mkdir()
        run = subprocess.run(
            [sys.executable, "-c", _MEMORY_SCRIPT, str(n), str(folder)],
            capture_output=True,
            text=True,
            check=True,
        )
        growth[n] = json.loads(run.stdout.strip().splitlines()[-1])["growth_mib"]
    extra_mib = 600 * 8 * 64 * 64 * 4 / 2**20  # the 600 more frames: 75 MiB
    # four times the frames cost (almost) no more memory: far less than the extra frames
    assert growth[800] - growth[200] < 0.25 * extra_mib, growth


def test_run_pipeline_registers_a_moving_movie_first(brain_small_movie):
    """The pipeline estimates the motion, registers the movie and keeps the shifts."""
    from napari_mesoscale.workflow import run_pipeline

    brain = brain_small_movie
    moved, truth = apply_motion(brain.movie, brain.voxel_size, preset="jumps", seed=1)
    result = run_pipeline(
        moved,
        voxel_size=brain.voxel_size,
        neurons=brain.neurons,
        synapses=brain.synapses,
        frame_rate=brain.frame_rate,
        epochs=2,
        device="cpu",
    )
    assert result.motion is not None and result.summary["motion_registered"]
    assert "motion_shifts" in result.to_bundle().tables
    # the recovered rigid path follows the true one (up to the reference's own offset)
    true_path = truth.rigid_um - truth.rigid_um.mean(0)
    found_path = result.motion.shifts_um - result.motion.shifts_um.mean(0)
    assert np.median(np.abs(np.abs(found_path) - np.abs(true_path))) < 0.5
    # a still movie is left as it is (the quick estimate finds no motion)
    _, no_correction, estimate = register_if_moving(brain.movie, voxel_size=brain.voxel_size)
    assert no_correction is None and estimate.amplitude_voxels < 0.5


def test_cubic_warp_matches_scipy_spline_interpolation():
    """The torch cubic B-spline warp samples as scipy's order-3 map_coordinates."""
    import torch

    from napari_mesoscale.motion._phase import Warper

    rng = np.random.default_rng(3)
    frames = np.stack([_texture((12, 32, 32), seed=s) for s in range(2)])
    field = ndimage.gaussian_filter(rng.uniform(-2, 2, (2, 3, 12, 32, 32)), (0, 0, 2, 4, 4)) * 4
    field = field.astype(np.float32)
    warper = Warper(frames.shape[1:], torch.device("cpu"), "cubic")
    out = warper(torch.from_numpy(frames), torch.from_numpy(field)).numpy()
    grid = np.indices(frames.shape[1:])
    expected = np.stack(
        [
            ndimage.map_coordinates(f, grid + d, order=3, mode="nearest")
            for f, d in zip(frames, field, strict=True)
        ]
    )
    inner = (slice(None), slice(3, -3), slice(4, -4), slice(4, -4))  # edge handling differs
    assert np.abs(out - expected)[inner].max() < 1e-3 * np.abs(expected).max()
    shifts = np.array([[0.4, -1.3, 2.7], [-0.5, 0.25, -3.6]], dtype=np.float32)
    rigid = warper(torch.from_numpy(frames), torch.from_numpy(shifts)).numpy()
    expected = np.stack(
        [ndimage.shift(f, -s, order=3, mode="nearest") for f, s in zip(frames, shifts, strict=True)]
    )
    assert np.abs(rigid - expected)[inner].max() < 1e-3 * np.abs(expected).max()


def test_cubic_resampling_keeps_cell_brightness_steady():
    """A still scene moved by subpixel shifts: after registration a small cell's mean over
    its ROI varies far less with cubic resampling than with linear (which blurs by shift)."""
    shape = (48, 48)
    yy, xx = np.indices(shape)
    cells = [(14, 15), (30, 33), (24, 12), (12, 34)]
    scene = sum(np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 1.2**2)) for y, x in cells)
    scene = (scene * 1000 + _texture(shape, seed=4) * 0.2).astype(np.float32)
    rng = np.random.default_rng(5)
    shifts = rng.uniform(-3, 3, (30, 2))
    movie = np.stack([ndimage.shift(scene, s, order=5, mode="nearest") for s in shifts])
    rois = [(yy - y) ** 2 + (xx - x) ** 2 <= 4 for y, x in cells]
    spread = {}
    for interpolation in ("cubic", "linear"):
        result = correct_motion(
            movie, voxel_size=(1.0, 1.0), nonrigid=False, interpolation=interpolation
        )
        means = np.array([[frame[r].mean() for r in rois] for frame in result.registered])
        spread[interpolation] = float(np.median(means.std(0) / means.mean(0)))
    assert spread["cubic"] < 0.01
    assert spread["cubic"] < 0.4 * spread["linear"], spread


def test_detect_point_sources_registers_first_when_asked(brain_small_movie, tmp_path):
    """register_motion=True: detection on the registered movie, shifts on sources.motion and
    in its saved bundle; False leaves the movie alone."""
    from napari_mesoscale.segment import PointSources, detect_point_sources, match_points

    brain = brain_small_movie
    moved, truth = apply_motion(brain.movie, brain.voxel_size, preset="jumps", seed=1)
    common = dict(voxel_size=brain.voxel_size, cell_diameter=8.0, frame_rate=brain.frame_rate)
    sources = detect_point_sources(moved, register_motion=True, **common)
    raw = detect_point_sources(moved, register_motion=False, **common)
    assert raw.motion is None and sources.motion is not None
    true_path = truth.rigid_um - np.median(truth.rigid_um, 0)
    found = sources.motion.shifts_um - np.median(sources.motion.shifts_um, 0)
    assert np.median(np.linalg.norm((found - true_path) / brain.voxel_size, axis=1)) < 0.5
    # the registered movie sits where the reference is: tissue at p appears at p - offset
    offset = np.median(sources.motion.shifts_um - truth.rigid_um, 0)
    f1 = match_points(sources.positions + offset, brain.positions, 4.0).f1
    f1_raw = match_points(raw.positions, brain.positions, 4.0).f1
    assert f1 > 0.8 and f1 > f1_raw, (f1, f1_raw)
    loaded = PointSources.load(sources.save(tmp_path / "sources.mesoscale"))
    np.testing.assert_allclose(loaded.motion.shifts_um, sources.motion.shifts_um)
    np.testing.assert_array_equal(loaded.motion.quality, sources.motion.quality)


def test_correlation_near_matches_the_inverse_fft_window():
    """The separable DFT at a few lags equals the full inverse FFT's window, also around a
    subpixel centre (the map moved by a frequency ramp)."""
    import torch

    from napari_mesoscale.motion import _phase

    generator = torch.Generator().manual_seed(0)
    for shape in [(11, 24, 25), (32, 30)]:
        dims = tuple(range(1, len(shape) + 1))
        frames = torch.randn(3, *shape, generator=generator)
        reference = torch.randn(1, *shape, generator=generator)
        cross = torch.fft.rfftn(frames, dim=dims) * torch.fft.rfftn(reference, dim=dims).conj()
        width = (2,) * len(shape)
        expected = _phase.correlation_window(cross, shape, width)
        found = _phase.correlation_near(cross, shape, width)
        assert torch.allclose(found, expected, atol=1e-5 * expected.abs().max())
        centre = torch.tensor([[0.3, -1.2, 2.0][: len(shape)]] * 3)
        moved = cross * _phase.frequency_ramp(shape, centre)
        expected = _phase.correlation_window(moved, shape, (1,) * len(shape))
        found = _phase.correlation_near(cross, shape, (1,) * len(shape), centre)
        assert torch.allclose(found, expected, atol=1e-5 * expected.abs().max())


def test_move_toy_brain_without_motion_is_the_recorded_movie(brain_small_movie):
    """The scene moves before the shot noise is drawn: with no motion the recording is the
    toy brain's own movie, noise draw for noise draw."""
    from napari_mesoscale.motion.simulate import move_toy_brain

    brain = brain_small_movie
    still, truth = move_toy_brain(brain, "drift", seed=0, drift_um=0.0, drift_axial_um=0.0)
    assert np.abs(truth.rigid_um).max() == 0.0
    np.testing.assert_array_equal(still, np.asarray(brain.movie, dtype=np.float32))


def _median_trace_r(movie, brain, offset_um=0.0):
    from napari_mesoscale.segment import detect_point_sources, match_points

    sources = detect_point_sources(
        movie, voxel_size=brain.voxel_size, cell_diameter=8.0, frame_rate=brain.frame_rate
    )
    match = match_points(np.asarray(sources.positions) + offset_um, brain.positions, 4.0)
    r = [
        np.corrcoef(sources.dff[:, i], brain.calcium[:, j])[0, 1]
        for i, j in zip(match.detected_index, match.truth_index, strict=True)
    ]
    return float(np.median(r)), float(match.f1)


@pytest.mark.slow
def test_registered_traces_follow_the_true_calcium_as_without_motion(brain_small_movie):
    """Drift and sudden jumps of several µm: after registration the traces of the detected
    cells correlate with the true calcium (median r) within 0.01 of the motion-free movie's,
    where the unregistered movie falls far below. (Detection loses a few cells: with jumps of
    8 µm in a 72 × 72 × 60 µm volume, cells near the edges leave it in some frames.)"""
    from napari_mesoscale.motion.simulate import move_toy_brain

    brain = brain_small_movie
    moved, truth = move_toy_brain(brain, "jumps", seed=3)
    corrected = correct_motion(moved, voxel_size=brain.voxel_size, nonrigid=False)
    offset = np.median(corrected.shifts_um - truth.rigid_um, 0)
    r_free, f1_free = _median_trace_r(np.asarray(brain.movie, dtype=np.float32), brain)
    r_moved, f1_moved = _median_trace_r(moved, brain)
    r_corrected, f1_corrected = _median_trace_r(corrected.registered, brain, offset)
    assert r_corrected > r_free - 0.01, (r_corrected, r_free)
    assert r_moved < r_free - 0.1, (r_moved, r_free)
    assert f1_corrected > max(f1_moved, 0.9), (f1_corrected, f1_moved, f1_free)


def test_matrix_spline_paths_match_the_convolution_and_gather_paths():
    """The GEMM prefilter and the per-frame cubic shift matrices give what the 17-tap
    convolution and the four-tap gathers give (the paths kept for axes over 512 voxels)."""
    import torch

    from napari_mesoscale.motion import _phase

    rng = np.random.default_rng(11)
    for shape in [(3, 7, 33, 20), (4, 40, 24)]:
        frames = torch.from_numpy(rng.normal(size=shape).astype(np.float32)) * 100 + 500
        by_matrix = _phase.spline_prefilter(frames)
        by_convolution = frames
        for axis in range(1, frames.ndim):
            by_convolution = _phase._convolve_prefilter(by_convolution, axis)
        assert torch.allclose(by_matrix, by_convolution, rtol=1e-5, atol=1e-3)
        shifts = torch.from_numpy(rng.uniform(-9, 9, (shape[0], len(shape) - 1))).float()
        warper = _phase.Warper(shape[1:], torch.device("cpu"), "cubic")
        fast = warper._cubic_rigid_matrices(frames, shifts)
        gathered = warper._cubic_rigid(by_convolution, shifts)
        assert torch.allclose(fast, gathered, rtol=1e-5, atol=1e-3)


def _peak_shifts_by_loops(window, half_width):
    """The earlier peak finding: neighbours fetched axis by axis and step by step."""
    import torch

    batch, ndim = window.shape[0], window.ndim - 1
    inner = torch.full_like(window, -torch.inf)
    core = (slice(None),) + tuple(slice(1, -1) for _ in range(ndim))
    inner[core] = window[core]
    flat = inner.reshape(batch, -1).argmax(dim=1)
    index = torch.stack(torch.unravel_index(flat, window.shape[1:]), dim=1)
    rows = torch.arange(batch)
    shifts = torch.empty(batch, ndim)
    for axis in range(ndim):
        values = []
        for step in (-1, 0, 1):
            where = [index[:, a] + (step if a == axis else 0) for a in range(ndim)]
            values.append(window[(rows, *where)])
        left, centre, right = values
        curvature = left - 2 * centre + right
        delta = torch.where(
            curvature < 0, 0.5 * (left - right) / curvature.clamp(max=-1e-12), 0.0
        ).clamp(-0.5, 0.5)
        shifts[:, axis] = index[:, axis] - (half_width[axis] + 1) + delta
    return shifts


def test_vectorised_peak_finding_and_block_smoothing_match_the_loops():
    """One gather for every window's peak neighbours gives the loop version's shifts (to
    1e-4 voxel); the in-place [1, 2, 1] smoothing over patches equals the explicit one."""
    import torch

    from napari_mesoscale.motion import _phase
    from napari_mesoscale.motion._blocks import smooth_over_blocks

    rng = np.random.default_rng(12)
    for shape, half in [((400, 11, 11), (4, 4)), ((90, 5, 7, 9), (1, 2, 3))]:
        lags = np.stack(np.meshgrid(*[np.arange(n) for n in shape[1:]], indexing="ij"), -1)
        centres = rng.uniform(1.5, np.array(shape[1:]) - 2.5, (shape[0], len(shape) - 1))
        centres = centres.reshape(shape[0], *([1] * (len(shape) - 1)), len(shape) - 1)
        peaks = np.exp(-(((lags[None] - centres) ** 2).sum(-1)) / 3.0)
        peaks = peaks.reshape(shape) + rng.normal(0, 0.01, shape)
        window = torch.from_numpy(peaks.astype(np.float32))
        fast = _phase.peak_shifts(window, half)
        assert torch.allclose(fast, _peak_shifts_by_loops(window, half), atol=1e-4, rtol=0)
    counts = (3, 4)
    windows = torch.from_numpy(rng.normal(size=(2, 12, 5, 5)).astype(np.float32))
    grid = windows.reshape(2, *counts, 5, 5)
    for axis in (1, 2):
        before = torch.cat(
            [grid.narrow(axis, 0, 1), grid.narrow(axis, 0, grid.shape[axis] - 1)], axis
        )
        after = torch.cat(
            [grid.narrow(axis, 1, grid.shape[axis] - 1), grid.narrow(axis, -1, 1)], axis
        )
        grid = 0.25 * before + 0.5 * grid + 0.25 * after
    assert torch.allclose(
        smooth_over_blocks(windows, counts), grid.reshape(windows.shape), atol=1e-6
    )


def test_block_extraction_cuts_the_patches_at_their_starts():
    """Evenly spaced grids (strided views) and uneven ones (slices) give every patch as
    it lies in the frame, in C order of the block grid."""
    import itertools

    import torch

    from napari_mesoscale.motion._blocks import BlockGrid

    frames = torch.arange(2 * 6 * 40 * 37, dtype=torch.float32).reshape(2, 6, 40, 37)
    for size in [(6, 16, 16), (4, 24, 20)]:
        grid = BlockGrid.tile((6, 40, 37), size)
        pieces = grid.extract(frames)
        for i, corner in enumerate(itertools.product(*grid.starts)):
            index = tuple(slice(int(c), int(c) + b) for c, b in zip(corner, grid.size, strict=True))
            assert torch.equal(pieces[:, i], frames[(slice(None), *index)])


def test_registered_zarr_keeps_the_voxel_size_and_frame_rate(tmp_path):
    """The Zarr written by ``output=`` held no voxel size: read back (napari's File ▸ Open),
    the registered movie was at 1 µm per voxel, off the cells detected on the movie."""
    from napari_mesoscale.io import read_volume

    reference = _texture((8, 32, 32))
    movie = _shifted(reference, np.random.default_rng(3).uniform(-2, 2, (4, 3)))
    path = tmp_path / "registered.zarr"
    correct_motion(movie, voxel_size=(2.0, 0.5, 0.5), output=path, frame_rate=5.0,
                   block_size_um=16.0)
    volume = read_volume(path)
    assert volume.voxel_size == (2.0, 0.5, 0.5)
    assert volume.frame_rate == 5.0 and volume.axes == "TZYX"
    flat = correct_motion(movie[:, 0], voxel_size=(0.5, 0.5), output=tmp_path / "flat.zarr",
                          block_size_um=16.0)
    assert flat.registered.shape == movie[:, 0].shape
    assert read_volume(tmp_path / "flat.zarr").voxel_size == (0.5, 0.5)
