"""Rendering of the toy brain: calcium movie (eager or lazy dask), soma labels, EM-like volume."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy import ndimage
from scipy.special import erfc

#: photon-count offset of the simulated camera (the movie's dark level)
CAMERA_OFFSET = 100.0

_NEURON_BATCH = 1024


def _outer(a: np.ndarray, b: np.ndarray, c: np.ndarray, op=np.add) -> np.ndarray:
    """(B, na), (B, nb), (B, nc) -> (B, na*nb*nc) combining every triple with ``op``."""
    out = op(op(a[:, :, None, None], b[:, None, :, None]), c[:, None, None, :])
    return out.reshape(len(a), -1)


def _iter_patches(positions, voxel_size, shape, extent_um, batch=_NEURON_BATCH):
    """Yield (ids, flat, valid, (dz, dy, dx)) for the voxel box around each point, per batch.

    ``flat`` (B, K) are flat voxel indices into ``shape`` (clipped where ``valid`` is False),
    ``dz, dy, dx`` (B, n_axis) the µm offsets of the box's voxel centres from the point along
    each axis (the box is separable, so per-voxel quantities are outer sums of these).
    Voxel index i has its centre at ``i * voxel_size`` µm (napari's convention for ``scale``).
    """
    vs = np.asarray(voxel_size, dtype=float)
    shp = np.asarray(shape, dtype=np.int64)
    half = np.ceil(np.asarray(extent_um, dtype=float) / vs).astype(int)
    strides = np.array([shp[1] * shp[2], shp[2], 1], dtype=np.int64)
    for b0 in range(0, len(positions), batch):
        ids = np.arange(b0, min(b0 + batch, len(positions)))
        pos = positions[ids]
        c = np.rint(pos / vs).astype(np.int64)
        diffs, valids, flats = [], [], []
        for a in range(3):
            off = np.arange(-half[a], half[a] + 1)
            vox = c[:, a, None] + off[None, :]
            valids.append((vox >= 0) & (vox < shp[a]))
            diffs.append((vox * vs[a] - pos[:, a, None]).astype(np.float32))
            flats.append(np.clip(vox, 0, shp[a] - 1) * strides[a])
        flat = _outer(*flats)
        valid = _outer(*valids, op=np.logical_and)
        yield ids, flat, valid, diffs


def _dist2(diffs, centre_offset=None) -> np.ndarray:
    """Squared distance (B, K) from per-axis offsets, optionally from a shifted centre (B, 3)."""
    if centre_offset is None:
        return _outer(*(d * d for d in diffs))
    sq = [(d - centre_offset[:, a, None].astype(np.float32)) ** 2 for a, d in enumerate(diffs)]
    return _outer(*sq)


def soma_profiles(
    positions: np.ndarray,
    diameters: np.ndarray,
    voxel_size,
    shape,
    psf_sigma,
    threshold: float = 1e-3,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Blurred-sphere footprints of every soma and the hard label volume.

    Returns the (V, N) CSR matrix P of footprints (a sphere of the soma's diameter convolved
    with an anisotropic Gaussian PSF, approximated radially with the PSF width along the
    direction to the voxel) and the (Z, Y, X) int32 labels (neuron index + 1 inside the sphere).
    """
    sig = np.asarray(psf_sigma, dtype=float)
    rmax = diameters.max() / 2
    v = int(np.prod(shape))
    labels = np.zeros(v, dtype=np.int32)
    rows, cols, vals = [], [], []
    sig2 = (sig**2).astype(np.float32)
    for ids, flat, valid, diffs in _iter_patches(positions, voxel_size, shape, rmax + 3.0 * sig):
        d2 = _dist2(diffs)
        dist = np.sqrt(d2)
        # PSF variance along the direction to the voxel: Σ_a u_a² σ_a²
        s2 = _outer(*(d * d * sig2[a] for a, d in enumerate(diffs)))
        tiny = d2 < 1e-12
        s2 = np.where(tiny, sig2.mean(), s2 / np.where(tiny, 1.0, d2))
        r = (diameters[ids] / 2).astype(np.float32)[:, None]
        val = 0.5 * erfc((dist - r) / np.sqrt(2.0 * s2))
        keep = valid & (val > threshold)
        rows.append(flat[keep])
        cols.append(np.broadcast_to(ids[:, None], flat.shape)[keep])
        vals.append(val[keep].astype(np.float32))
        inside = valid & (d2 <= r * r)
        labels[flat[inside]] = np.broadcast_to(ids[:, None] + 1, flat.shape)[inside]
    p = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(v, len(positions)),
        dtype=np.float32,
    )
    p.sum_duplicates()
    p.sort_indices()
    return p, labels.reshape(tuple(shape))


def soma_labels_only(positions: np.ndarray, diameters: np.ndarray, voxel_size, shape) -> np.ndarray:
    """Label volume (Z, Y, X) int32: neuron index + 1 at voxels whose centre is in the soma."""
    v = int(np.prod(shape))
    labels = np.zeros(v, dtype=np.int32)
    if len(positions) == 0:
        return labels.reshape(tuple(shape))
    rmax = diameters.max() / 2
    for ids, flat, valid, diffs in _iter_patches(positions, voxel_size, shape, np.full(3, rmax)):
        r = (diameters[ids] / 2).astype(np.float32)[:, None]
        inside = valid & (_dist2(diffs) <= r * r)
        labels[flat[inside]] = np.broadcast_to(ids[:, None] + 1, flat.shape)[inside]
    return labels.reshape(tuple(int(s) for s in shape))


def upsample_linear(a: np.ndarray, shape) -> np.ndarray:
    """Linear interpolation of a 3D grid spanning the same box onto ``shape`` (float32)."""
    out = a.astype(np.float32)
    for axis, n_out in enumerate(shape):
        n_in = out.shape[axis]
        pos = np.linspace(0, n_in - 1, n_out) if n_out > 1 else np.zeros(1)
        i0 = np.minimum(pos.astype(np.int64), max(n_in - 2, 0))
        w = (pos - i0).astype(np.float32)
        i1 = np.minimum(i0 + 1, n_in - 1)
        sh = [1, 1, 1]
        sh[axis] = n_out
        w = w.reshape(sh)
        out = np.take(out, i0, axis=axis) * (1 - w) + np.take(out, i1, axis=axis) * w
    return out


def smooth_field(rng: np.random.Generator, shape, coarse: int, lo: float, hi: float) -> np.ndarray:
    """A smooth random field (float32) in [lo, hi]: coarse noise, blurred, linear upsampling."""
    cshape = tuple(max(2, int(np.ceil(s / coarse)) + 1) for s in shape)
    g = ndimage.gaussian_filter(rng.standard_normal(cshape), 1.0)
    up = upsample_linear(g, shape)
    mn, mx = float(up.min()), float(up.max())
    up = (up - mn) / max(mx - mn, 1e-12)
    return (lo + (hi - lo) * up).astype(np.float32)


class MovieRenderer:
    """Renders calcium-movie frames deterministically from the brain's state.

    Frame t = CAMERA_OFFSET + photons with mean λ = k · drift_t · (background + Σ_i P_i b_i
    (1 + c_i,t)) and variance λ (shot noise, drawn as N(λ, λ) with its own seed per frame),
    rounded and clipped to uint16. ``k = snr² · (1 + mean background)`` photons per unit
    brightness, so that ``snr`` is the shot-noise SNR of a resting soma's brightest voxel.
    """

    def __init__(
        self,
        footprints: sp.csr_matrix,
        baseline: np.ndarray,
        calcium: np.ndarray,
        background: np.ndarray,
        drift: np.ndarray,
        snr: float,
        shape,
        seed: int,
    ) -> None:
        self.p = footprints
        self.baseline = baseline.astype(np.float32)
        self.calcium = calcium
        self.background = background.reshape(-1).astype(np.float32)
        self.drift = drift.astype(np.float32)
        self.k = float(snr) ** 2 * (1.0 + float(self.background.mean()))
        self.shape = tuple(int(s) for s in shape)
        self.seed = int(seed)

    def frame_expected(self, frames: np.ndarray) -> np.ndarray:
        """Mean photon count λ (k, V) float32 of ``frames`` (no noise)."""
        frames = np.asarray(frames, dtype=np.int64)
        b = self.baseline[:, None] * (1.0 + self.calcium[frames].T.astype(np.float32))
        img = self.p @ b.astype(np.float32)
        img = img[:, 0][None] if img.shape[1] == 1 else np.ascontiguousarray(img.T)
        img += self.background[None, :]
        img *= (self.k * self.drift[frames])[:, None].astype(np.float32)
        return img

    def render(self, frames) -> np.ndarray:
        """Frames (k, Z, Y, X) uint16, identical whichever frames are rendered together."""
        frames = np.asarray(frames, dtype=np.int64).reshape(-1)
        out = np.empty((len(frames), *self.shape), dtype=np.uint16)
        v = int(np.prod(self.shape))
        step = max(1, int(2**23 // max(v, 1)))
        offset = np.float32(CAMERA_OFFSET)
        for j0 in range(0, len(frames), step):
            fr = frames[j0 : j0 + step]
            lam = self.frame_expected(fr)
            for j, t in enumerate(fr):
                rng = np.random.default_rng([self.seed, 0xCA, int(t)])
                img = rng.standard_normal(v, dtype=np.float32)
                img *= np.sqrt(lam[j])
                img += lam[j]
                img += offset
                np.rint(img, out=img)
                np.clip(img, 0, 65535, out=img)
                out[j0 + j].reshape(-1)[:] = img
        return out

    def lazy(self, frames=None, chunk: int | None = None):
        """A dask array (k, Z, Y, X) uint16 rendering ``frames`` on demand, chunk by chunk."""
        import dask.array as da

        t = self.calcium.shape[0]
        frames = np.arange(t) if frames is None else np.asarray(frames, dtype=np.int64)
        frames = frames.reshape(-1)
        if chunk is None:
            frame_bytes = 2 * int(np.prod(self.shape))
            chunk = int(max(1, min(16, (64 * 2**20) // max(frame_bytes, 1))))
        idx = da.from_array(frames, chunks=chunk)
        return idx.map_blocks(
            lambda blk: self.render(blk),
            new_axis=[1, 2, 3],
            chunks=(idx.chunks[0], *((s,) for s in self.shape)),
            dtype=np.uint16,
            meta=np.empty((0, 0, 0, 0), dtype=np.uint16),
        )


def render_em(
    rng: np.random.Generator,
    positions: np.ndarray,
    diameters: np.ndarray,
    nucleus_offset: np.ndarray,
    synapse_xyz: np.ndarray,
    em_voxel_size,
    em_shape,
) -> tuple[np.ndarray, np.ndarray]:
    """EM-like volume (uint8) and its soma labels (int32) at ``em_voxel_size``.

    Neuropil: textured grey with a net of thin dark membrane-like lines. Somata: bright-ish
    cytoplasm, a dark plasma membrane at the soma radius, a darker nucleus with a dark
    envelope. Synapses: dark puncta at the synapse positions. Then a slight blur and noise.
    """
    shape = tuple(int(s) for s in em_shape)
    ev = np.asarray(em_voxel_size, dtype=float)
    v = int(np.prod(shape))
    vol = 150.0 + 18.0 * smooth_field(rng, shape, 8, -1.0, 1.0)
    # thin dark lines: zero crossings of band-passed noise made at half resolution
    cshape = tuple(max(4, s // 2) for s in shape)
    n1 = ndimage.gaussian_filter(rng.standard_normal(cshape).astype(np.float32), 2.0)
    n1 /= max(float(n1.std()), 1e-9)
    n1 = upsample_linear(n1, shape)
    vol -= 55.0 * np.exp(-((n1 / 0.18) ** 2))
    del n1
    # fine grain, also from half resolution
    fine = ndimage.gaussian_filter(rng.standard_normal(cshape).astype(np.float32), 0.5)
    vol += 25.0 * upsample_linear(fine, shape)
    vol = vol.astype(np.float32).reshape(-1)
    labels = np.zeros(v, dtype=np.int32)
    rmax = diameters.max() / 2
    membrane = 0.25  # µm, half width of the dark membrane
    for ids, flat, valid, diffs in _iter_patches(positions, ev, shape, rmax + 4 * membrane, 256):
        dist = np.sqrt(_dist2(diffs))
        r = (diameters[ids] / 2).astype(np.float32)[:, None]
        nd = np.sqrt(_dist2(diffs, nucleus_offset[ids]))
        rn = 0.5 * r
        inside = valid & (dist <= r)
        near = valid & (dist <= r + 4 * membrane)
        cur = vol[flat]
        val = np.where(inside, 185.0 + 0.25 * (cur - 150.0), cur)
        val = np.where(inside & (nd <= rn), 120.0 + 0.25 * (cur - 150.0), val)
        val -= 70.0 * np.exp(-(((nd - rn) / (0.6 * membrane)) ** 2)) * inside
        val -= 120.0 * np.exp(-(((dist - r) / membrane) ** 2))
        vol[flat[near]] = val[near]
        labels[flat[inside]] = np.broadcast_to(ids[:, None] + 1, flat.shape)[inside]
    # synapse puncta
    if len(synapse_xyz):
        sig = 0.3
        acc = np.zeros(v, dtype=np.float64)
        for _ids, flat, valid, diffs in _iter_patches(synapse_xyz, ev, shape, 2.5 * sig, 8192):
            g = np.exp(-0.5 * _dist2(diffs) / sig**2) * valid
            acc += np.bincount(flat.reshape(-1), weights=g.reshape(-1), minlength=v)
        vol -= (110.0 * np.minimum(acc, 1.0)).astype(np.float32)
    vol = vol.reshape(shape)
    vol += 7.0 * rng.standard_normal(shape, dtype=np.float32)
    em = np.clip(np.rint(vol), 0, 255).astype(np.uint8)
    return em, labels.reshape(shape)
