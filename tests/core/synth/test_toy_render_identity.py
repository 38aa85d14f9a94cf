"""The toy brain's calcium movie renderer gives the frames of the plain formula, bit for bit.

``MovieRenderer`` restricts the sparse product to the voxels a footprint touches, batches
frames and renders them in threads; none of that may change a single pixel. The reference
below is the renderer as first written (full sparse product over every voxel, one frame after
the other), kept here as the definition of the movie.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_mesoscale.synth import make_toy_brain
from napari_mesoscale.synth.render import CAMERA_OFFSET, MovieRenderer


def _reference_frames(r: MovieRenderer, frames: np.ndarray) -> np.ndarray:
    """The movie formula evaluated plainly: λ over all V voxels, then N(λ, λ) noise."""
    v = int(np.prod(r.shape))
    out = np.empty((len(frames), *r.shape), dtype=np.uint16)
    for j, t in enumerate(frames):
        b = r.baseline[:, None] * (1.0 + r.calcium[[t]].T.astype(np.float32))
        lam = (r.p @ b.astype(np.float32))[:, 0]  # (V,) float32, empty rows exactly 0
        lam = lam + r.background
        lam *= np.float32(r.k * r.drift[t])
        rng = np.random.default_rng([r.seed, 0xCA, int(t)])
        img = rng.standard_normal(v, dtype=np.float32)
        img *= np.sqrt(lam)
        img += lam
        img += np.float32(CAMERA_OFFSET)
        np.rint(img, out=img)
        np.clip(img, 0, 65535, out=img)
        out[j].reshape(-1)[:] = img
    return out


@pytest.fixture(scope="module")
def brain():
    # drift on, so every frame has its own brightness factor
    return make_toy_brain(
        30, n_frames=30, shape=(20, 64, 64), render="eager", em=False, seed=5, drift=True
    )


def test_eager_movie_equals_reference(brain) -> None:
    r = brain._get_renderer()
    ref = _reference_frames(r, np.arange(brain.n_frames))
    assert brain.movie.dtype == np.uint16
    assert np.array_equal(brain.movie, ref)
    # the restriction to touched voxels matters here: most voxels have no footprint
    assert len(r._rows) < 0.5 * np.prod(brain.shape)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_threads_and_batches_do_not_change_frames(brain, workers: int) -> None:
    r = brain._get_renderer()
    frames = np.array([29, 0, 7, 7, 13, 1, 28, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12])
    got = r.render(frames, workers=workers)
    assert np.array_equal(got, brain.movie[frames])
    assert np.array_equal(r.render([17], workers=workers), brain.movie[17:18])
    assert r.render(np.array([], dtype=np.int64), workers=workers).shape == (0, *brain.shape)


def test_lazy_chunks_equal_eager(brain) -> None:
    for chunk in (1, 4, 9):
        lazy = brain.render_movie(chunk=chunk)
        assert np.array_equal(lazy.compute(scheduler="threads"), brain.movie)


def test_frame_expected_is_noise_free_mean(brain) -> None:
    r = brain._get_renderer()
    lam = r.frame_expected([3, 4])
    assert lam.shape == (2, int(np.prod(brain.shape))) and lam.dtype == np.float32
    b = r.baseline[:, None] * (1.0 + r.calcium[[3, 4]].T.astype(np.float32))
    full = np.ascontiguousarray((r.p @ b).T) + r.background
    full *= (r.k * r.drift[[3, 4]])[:, None].astype(np.float32)
    assert np.array_equal(lam, full)
    # the movie's mean over frames follows λ (photon noise averages out)
    assert np.corrcoef(lam[0], brain.movie[3].reshape(-1).astype(float))[0, 1] > 0.9
