"""Rendering of the toy brain: calcium movie (eager or lazy dask), soma labels, EM-like volume."""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp
from scipy import ndimage
from scipy.special import erfc

#: photon-count offset of the simulated camera (the movie's dark level)
CAMERA_OFFSET = 100.0

_NEURON_BATCH = 1024
_EM_SOMA_BATCH = 256


def _outer(a: np.ndarray, b: np.ndarray, c: np.ndarray, op=np.add) -> np.ndarray:
    """(B, na), (B, nb), (B, nc) -> (B, na*nb*nc) combining every triple with ``op``."""
    out = op(op(a[:, :, None, None], b[:, None, :, None]), c[:, None, None, :])
    return out.reshape(len(a), -1)


def _iter_patches(positions, voxel_size, shape, extent_um, batch=_NEURON_BATCH, z0=0):
    """Yield (ids, flat, valid, (dz, dy, dx)) for the voxel box around each point, per batch.

    ``flat`` (B, K) are flat voxel indices into ``shape`` (clipped where ``valid`` is False),
    ``dz, dy, dx`` (B, n_axis) the µm offsets of the box's voxel centres from the point along
    each axis (the box is separable, so per-voxel quantities are outer sums of these).
    Voxel index i has its centre at ``i * voxel_size`` µm (napari's convention for ``scale``).
    ``shape`` may be a z-slab starting at global z index ``z0`` (positions stay global).
    """
    vs = np.asarray(voxel_size, dtype=float)
    shp = np.asarray(shape, dtype=np.int64)
    origin = np.array([z0, 0, 0], dtype=np.int64)
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
            diffs.append((vox * vs[a] - pos[:, a, None]).astype(np.float32))
            vox = vox - origin[a]
            valids.append((vox >= 0) & (vox < shp[a]))
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


def soma_labels_only(
    positions: np.ndarray, diameters: np.ndarray, voxel_size, shape, z0: int = 0, ids=None
) -> np.ndarray:
    """Label volume (Z, Y, X) int32: neuron index + 1 at voxels whose centre is in the soma.

    With ``z0`` the volume is the z-slab of ``shape`` starting at global index ``z0``;
    ``ids`` (optional) are the neuron indices of ``positions`` (default 0..n-1).
    """
    v = int(np.prod(shape))
    labels = np.zeros(v, dtype=np.int32)
    if len(positions) == 0:
        return labels.reshape(tuple(shape))
    rmax = diameters.max() / 2
    gid = np.arange(len(positions)) if ids is None else np.asarray(ids)
    patches = _iter_patches(positions, voxel_size, shape, np.full(3, rmax), z0=z0)
    for idx, flat, valid, diffs in patches:
        r = (diameters[idx] / 2).astype(np.float32)[:, None]
        inside = valid & (_dist2(diffs) <= r * r)
        labels[flat[inside]] = np.broadcast_to(gid[idx][:, None] + 1, flat.shape)[inside]
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

    Only the voxels some footprint touches (the non-empty rows of P) change from frame to
    frame; the sparse product is taken over those rows alone and every other voxel's λ is
    ``background · k · drift_t``. Each float32 operation is the one the plain formula makes
    (P b summed row by row in the same order, then + background, then × k·drift_t), so the
    frames are bit-identical to it.
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
        self.p = footprints.tocsr()
        self.baseline = baseline.astype(np.float32)
        self.calcium = calcium
        self.background = background.reshape(-1).astype(np.float32)
        self.drift = drift.astype(np.float32)
        self.k = float(snr) ** 2 * (1.0 + float(self.background.mean()))
        self.shape = tuple(int(s) for s in shape)
        self.seed = int(seed)
        # P without its empty rows: dropping empty rows leaves data and indices untouched,
        # so each remaining row is summed exactly as in the full product
        indptr = self.p.indptr
        counts = np.diff(indptr)
        self._rows = np.flatnonzero(counts > 0)
        self._p_rows = sp.csr_matrix(
            (self.p.data, self.p.indices, np.r_[indptr[:1], indptr[1:][counts > 0]]),
            shape=(len(self._rows), self.p.shape[1]),
        )
        self._bg_rows = self.background[self._rows]

    def _batch_parts(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(k, R) float32 P b over the non-empty rows and the (k,) float32 factors k·drift."""
        b = self.baseline[:, None] * (1.0 + self.calcium[frames].T.astype(np.float32))
        pb = self._p_rows @ b.astype(np.float32)
        pb = pb[:, 0][None] if pb.shape[1] == 1 else np.ascontiguousarray(pb.T)
        scale = (self.k * self.drift[frames]).astype(np.float32)
        return pb, scale

    def _fill_lambda(self, out: np.ndarray, pb_row: np.ndarray, scale: np.float32) -> None:
        """λ of one frame into ``out`` (V,) float32: (background + P b) · k·drift_t."""
        np.multiply(self.background, scale, out=out)
        rows_val = self._bg_rows + pb_row
        rows_val *= scale
        out[self._rows] = rows_val

    def frame_expected(self, frames: np.ndarray) -> np.ndarray:
        """Mean photon count λ (k, V) float32 of ``frames`` (no noise)."""
        frames = np.asarray(frames, dtype=np.int64).reshape(-1)
        img = np.empty((len(frames), int(np.prod(self.shape))), dtype=np.float32)
        if len(frames):
            pb, scale = self._batch_parts(frames)
            for j in range(len(frames)):
                self._fill_lambda(img[j], pb[j], scale[j])
        return img

    def _step(self) -> int:
        """Frames per sparse product: at most 8 (the (R, k) -> (k, R) transpose stays cheap)
        and a (k, R) float32 block of 32 MB at most."""
        return max(1, min(8, int(2**23 // max(len(self._rows), 1))))

    def _render_batches(self, frames: np.ndarray, flat_out: np.ndarray, starts) -> None:
        """Render the batches of ``_step()`` frames beginning at ``starts`` (an iterator, may
        be shared between threads) into ``flat_out`` (k, V) uint16, reusing three buffers:
        ``lam`` (λ), ``tmp`` (√λ) and ``img`` (the noisy frame)."""
        v = flat_out.shape[1]
        offset = np.float32(CAMERA_OFFSET)
        lam = np.empty(v, dtype=np.float32)
        img = np.empty(v, dtype=np.float32)
        tmp = np.empty(v, dtype=np.float32)
        step = self._step()
        rows, scale_done = self._rows, None
        for j0 in starts:
            fr = frames[j0 : j0 + step]
            pb, scale = self._batch_parts(fr)
            for j, t in enumerate(fr):
                # λ and √λ of the voxels no footprint touches only change with k·drift_t
                # (never without drift): recompute them only when it changes
                if scale_done is None or scale[j] != scale_done:
                    np.multiply(self.background, scale[j], out=lam)
                    np.sqrt(lam, out=tmp)
                    scale_done = scale[j]
                rows_val = self._bg_rows + pb[j]
                rows_val *= scale[j]
                lam[rows] = rows_val
                tmp[rows] = np.sqrt(rows_val, out=rows_val)
                rng = np.random.default_rng([self.seed, 0xCA, int(t)])
                rng.standard_normal(dtype=np.float32, out=img)
                img *= tmp
                img += lam
                img += offset
                np.rint(img, out=img)
                np.clip(img, 0, 65535, out=img)
                flat_out[j0 + j] = img

    def render(self, frames, workers: int | None = None) -> np.ndarray:
        """Frames (k, Z, Y, X) uint16, identical whichever frames are rendered together.

        Parameters
        ----------
        frames : array of int
            Frame indices.
        workers : int, optional
            Threads rendering disjoint batches of frames (numpy's random draws and ufuncs
            release the GIL); default ``min(2, os.cpu_count())``. The frames do not depend
            on it: every frame has its own random generator.
        """
        frames = np.asarray(frames, dtype=np.int64).reshape(-1)
        out = np.empty((len(frames), *self.shape), dtype=np.uint16)
        flat_out = out.reshape(len(frames), int(np.prod(self.shape)))
        if workers is None:
            workers = min(2, os.cpu_count() or 1)
        batches = range(0, len(frames), self._step())
        workers = max(1, min(int(workers), len(batches)))
        if workers == 1:
            self._render_batches(frames, flat_out, iter(batches))
            return out
        import threading
        from concurrent.futures import ThreadPoolExecutor

        # the threads take the next batch from one shared iterator (guarded by a lock), so
        # a thread slowed by other load simply takes fewer batches
        it, lock = iter(batches), threading.Lock()

        def shared():
            while True:
                with lock:
                    j0 = next(it, None)
                if j0 is None:
                    return
                yield j0

        with ThreadPoolExecutor(max_workers=workers) as ex:
            futures = [
                ex.submit(self._render_batches, frames, flat_out, shared()) for _ in range(workers)
            ]
            for f in futures:
                f.result()
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
            lambda blk: self.render(blk, workers=1),
            new_axis=[1, 2, 3],
            chunks=(idx.chunks[0], *((s,) for s in self.shape)),
            dtype=np.uint16,
            meta=np.empty((0, 0, 0, 0), dtype=np.uint16),
        )


def _kernel_norm(sigma: float) -> float:
    """Standard deviation of unit white noise after scipy's 3D Gaussian filter of ``sigma``."""
    radius = int(4.0 * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    w = np.exp(-0.5 * x * x / sigma**2)
    w /= w.sum()
    return float(np.sqrt((w * w).sum() ** 3))


def _interp(a: np.ndarray, coords) -> np.ndarray:
    """Linear interpolation of ``a`` at fractional indices ``coords`` (one 1D array per axis)."""
    out = a.astype(np.float32)
    for axis, pos in enumerate(coords):
        n_in = out.shape[axis]
        i0 = np.clip(np.floor(pos).astype(np.int64), 0, max(n_in - 2, 0))
        i1 = np.minimum(i0 + 1, n_in - 1)
        w = (pos - i0).astype(np.float32)
        sh = [1, 1, 1]
        sh[axis] = len(pos)
        w = w.reshape(sh)
        out = np.take(out, i0, axis=axis) * (1 - w) + np.take(out, i1, axis=axis) * w
    return out


class EMRenderer:
    """Renders the EM-like volume slab by slab along z, identically for any slab split.

    Neuropil: a smooth grey level, a net of thin dark membrane-like lines (zero crossings of
    band-passed noise made at half resolution), fine grain. Somata: bright-ish cytoplasm, a dark
    plasma membrane at the soma radius, a darker nucleus with a dark envelope. Synapses: dark
    puncta. Then noise. Every random number comes from a generator seeded by (seed, z row), so
    a slab only needs its own rows (plus a halo for the filters).

    Somata are painted in fixed batches (each batch reads the grey levels left by the previous
    ones, so where two somata overlap the result depends on whether they share a batch); the
    batches are those of the whole volume, so a slab paints the members of each batch that reach
    it together. A slab draws the synapse puncta whose voxel box meets its rows, in their global
    order, so the puncta sums add the same terms in the same order as for the whole volume.
    """

    membrane = 0.25  # µm, half width of the dark membrane
    puncta_sigma = 0.3  # µm

    def __init__(
        self, seed, positions, diameters, nucleus_offset, synapse_xyz, em_voxel_size, em_shape
    ):
        self.seed = int(seed)
        self.positions = positions
        self.diameters = diameters
        self.nucleus_offset = nucleus_offset
        self.synapse_xyz = synapse_xyz
        self.ev = np.asarray(em_voxel_size, dtype=float)
        self.shape = tuple(int(s) for s in em_shape)
        rng = np.random.default_rng([self.seed, 0xE0])
        cshape = tuple(max(2, int(np.ceil(s / 8)) + 1) for s in self.shape)
        g = ndimage.gaussian_filter(rng.standard_normal(cshape), 1.0)
        self._coarse = (2 * (g - g.min()) / max(float(np.ptp(g)), 1e-12) - 1).astype(np.float32)
        self._half = tuple(max(4, s // 2) for s in self.shape)
        # soma batches of the whole volume (-1: reaches no row at all)
        self._soma_reach = (
            float(self.diameters.max()) / 2 + 4 * self.membrane if len(self.diameters) else 0.0
        )
        whole = self._soma_candidates(0, self.shape[0])
        self._soma_batch = np.full(len(self.positions), -1, dtype=np.int64)
        self._soma_batch[whole] = np.arange(len(whole)) // _EM_SOMA_BATCH
        # synapses the whole volume draws, and the z range of each one's voxel box
        syn = np.asarray(self.synapse_xyz, dtype=float).reshape(-1, 3)
        sig, ev0 = self.puncta_sigma, self.ev[0]
        sz = syn[:, 0]
        self._syn_whole = (sz >= -3 * sig - ev0) & (sz <= self.shape[0] * ev0 + 3 * sig + ev0)
        # same arithmetic as _iter_patches(..., np.full(3, 2.5 * sig), ...)
        c = np.rint(syn / self.ev)[:, 0].astype(np.int64)
        half = int(np.ceil(np.full(3, 2.5 * sig) / self.ev).astype(int)[0])
        self._syn_zlo, self._syn_zhi = c - half, c + half

    def _soma_candidates(self, z0: int, z1: int) -> np.ndarray:
        """Indices (ascending) of the somata that may paint global z rows [z0, z1)."""
        if len(self.positions) == 0:
            return np.zeros(0, dtype=np.int64)
        ev0, reach = self.ev[0], self._soma_reach
        zc = self.positions[:, 0]
        return np.flatnonzero((zc >= z0 * ev0 - reach - ev0) & (zc <= z1 * ev0 + reach + ev0))

    def _coords(self, n_out: int, n_in: int) -> np.ndarray:
        return np.linspace(0, n_in - 1, n_out) if n_out > 1 else np.zeros(1)

    def _half_res_noise(self, tag: int, sigma: float, rows: np.ndarray) -> tuple[np.ndarray, int]:
        """Band-passed half-resolution noise for half-res z rows ``rows`` (and their offset)."""
        hz, hy, hx = self._half
        halo = int(4.0 * sigma + 0.5)
        a = max(0, int(rows.min()) - halo)
        b = min(hz, int(rows.max()) + 1 + halo)
        stack = np.stack(
            [
                np.random.default_rng([self.seed, tag, z]).standard_normal((hy, hx), np.float32)
                for z in range(a, b)
            ]
        )
        # a sub-stack that reaches a global edge reflects there exactly like the whole volume
        filt = ndimage.gaussian_filter(stack, sigma)
        return filt / np.float32(_kernel_norm(sigma)), a

    def render(self, z0: int, z1: int) -> np.ndarray:
        """EM slab for global z rows [z0, z1) as uint8 (z1 - z0, Y, X)."""
        zz, yy, xx = self.shape
        sh = (z1 - z0, yy, xx)
        ev = self.ev
        cz = self._coords(zz, self._coarse.shape[0])[z0:z1]
        cy = self._coords(yy, self._coarse.shape[1])
        cx = self._coords(xx, self._coarse.shape[2])
        vol = 150.0 + 18.0 * _interp(self._coarse, (cz, cy, cx))
        hz, hy, hx = self._half
        hzc = self._coords(zz, hz)[z0:z1]
        hyc, hxc = self._coords(yy, hy), self._coords(xx, hx)
        rows = np.unique(np.r_[np.floor(hzc), np.minimum(np.floor(hzc) + 1, hz - 1)]).astype(int)
        n1, a = self._half_res_noise(0xE1, 2.0, rows)
        n1 = _interp(n1, (hzc - a, hyc, hxc))
        vol -= 55.0 * np.exp(-((n1 / 0.18) ** 2))
        del n1
        fine, a = self._half_res_noise(0xE2, 0.5, rows)
        vol += 25.0 * 0.5 * _interp(fine, (hzc - a, hyc, hxc))
        del fine
        vol = vol.astype(np.float32).reshape(-1)
        # somata that reach into the slab, painted in the whole volume's batches
        m = self.membrane
        reach = self._soma_reach
        sel = self._soma_candidates(z0, z1)
        sel = sel[self._soma_batch[sel] >= 0]
        for grp in np.split(sel, np.flatnonzero(np.diff(self._soma_batch[sel])) + 1):
            pos, diam, nuc = self.positions[grp], self.diameters[grp], self.nucleus_offset[grp]
            patches = _iter_patches(pos, ev, sh, np.full(3, reach), _EM_SOMA_BATCH, z0)
            for ids, flat, valid, diffs in patches:
                dist = np.sqrt(_dist2(diffs))
                r = (diam[ids] / 2).astype(np.float32)[:, None]
                nd = np.sqrt(_dist2(diffs, nuc[ids]))
                rn = 0.5 * r
                inside = valid & (dist <= r)
                near = valid & (dist <= r + 4 * m)
                cur = vol[flat]
                val = np.where(inside, 185.0 + 0.25 * (cur - 150.0), cur)
                val = np.where(inside & (nd <= rn), 120.0 + 0.25 * (cur - 150.0), val)
                val -= 70.0 * np.exp(-(((nd - rn) / (0.6 * m)) ** 2)) * inside
                val -= 120.0 * np.exp(-(((dist - r) / m) ** 2))
                vol[flat[near]] = val[near]
        # synapse puncta (accumulated over the voxels they touch only)
        sig = self.puncta_sigma
        syn = self.synapse_xyz
        if len(syn):
            # puncta whose voxel box meets the slab (the others add only zeros), in global order
            ssel = syn[self._syn_whole & (self._syn_zhi >= z0) & (self._syn_zlo < z1)]
            flats, weights = [], []
            for _i, flat, valid, diffs in _iter_patches(
                ssel, ev, sh, np.full(3, 2.5 * sig), 8192, z0
            ):
                g = np.exp(-0.5 * _dist2(diffs) / sig**2) * valid
                flats.append(flat.reshape(-1))
                weights.append(g.reshape(-1))
            if flats:
                uniq, inv = np.unique(np.concatenate(flats), return_inverse=True)
                acc = np.bincount(inv, weights=np.concatenate(weights))
                vol[uniq] -= (110.0 * np.minimum(acc, 1.0)).astype(np.float32)
        vol = vol.reshape(sh)
        for j, z in enumerate(range(z0, z1)):
            rng = np.random.default_rng([self.seed, 0xE3, z])
            vol[j] += 7.0 * rng.standard_normal((yy, xx), dtype=np.float32)
        return np.clip(np.rint(vol), 0, 255).astype(np.uint8)

    def labels(self, z0: int, z1: int) -> np.ndarray:
        """EM soma labels for global z rows [z0, z1)."""
        zc = self.positions[:, 0]
        ev = self.ev
        reach = self.diameters.max() / 2 + ev[0]
        sel = np.flatnonzero((zc >= z0 * ev[0] - reach) & (zc <= z1 * ev[0] + reach))
        sh = (z1 - z0, self.shape[1], self.shape[2])
        return soma_labels_only(self.positions[sel], self.diameters[sel], ev, sh, z0=z0, ids=sel)


def slab_array(func, shape, dtype, slab_voxels: int = 2**23):
    """A dask array of ``shape`` whose z-slabs are ``func(z0, z1)``."""
    import dask.array as da

    zs = max(1, int(slab_voxels // max(1, shape[1] * shape[2])))
    zchunks = tuple(min(zs, shape[0] - z) for z in range(0, shape[0], zs))
    starts = np.concatenate([[0], np.cumsum(zchunks)[:-1]])

    def block(block_id=None):
        z0 = int(starts[block_id[0]])
        return func(z0, z0 + zchunks[block_id[0]])

    return da.map_blocks(
        block,
        chunks=(zchunks, (shape[1],), (shape[2],)),
        dtype=dtype,
        meta=np.empty((0, 0, 0), dtype=dtype),
    )
