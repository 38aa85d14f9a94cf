"""EM renderer presets: volumes that do not look like the toy brain's EM, with their truth.

Each preset is an :class:`EMAppearance` (voxel size, contrast of membranes, cytoplasm,
nucleus, vessels, myelin, glia, blood cells, noise, staining gradient, polarity) rendered by
:func:`render_em_preset` into an :class:`EMSample`: the uint8 volume, its voxel size, the true
soma centres (µm, z, y, x), the true soma label volume and a full segmentation (somata with
their primary dendrites, nuclei as separate segments, glia, vessels, myelinated axons and
neuropil fragments) for the label-volume path.

Split rule (fixed before any detector was measured on them): the presets named ``dev_*``
(:data:`DEV_PRESETS`) are the only ones any parameter, threshold or network was tuned or
trained on; the ``heldout_*`` presets (:data:`HELDOUT_PRESETS`) are only ever measured, and
their figures are reported apart. ``heldout_issue16`` mimics the block described in issue 16
(0.5 µm voxels, dark membranes, light cytoplasm, nucleus with envelope and nucleolus, two
vessels with bright lumen, somata of 7-11 µm); ``heldout_inverted_tem`` combines inverted
polarity, anisotropic 1.5 µm sections, dark cytoplasm, many myelinated axons and strong noise;
``heldout_fibsem_irregular`` (added later, committed before any detector ran on it) is
FIB-SEM-like with irregular, elongated somata (``soma_irregularity``), coarse neuropil, dense
myelin, dark glial nuclei, blood-filled vessels and a strong staining gradient;
``heldout_sstem_myelin`` (serial-section TEM: thin sections averaged into 1.6 µm z voxels,
``z_average``, heavy myelin, dark glial nuclei) and ``heldout_fibsem_dark_nuclei`` (FIB-SEM at
0.4 µm: nuclei darker than a bright cytoplasm, curtaining, the strongest staining gradient)
were added together later, also committed before any detector ran on them. The held-out
evaluation renders every held-out preset with each seed of :data:`HELDOUT_SEEDS`; the
confirmation of the fused shell pass as the U-Net path's default renders them with each seed of
:data:`FRESH_HELDOUT_SEEDS`, blocks nobody had rendered when that default was chosen.
The toy brain's own EM (:class:`~napari_mesoscale.synth.render.EMRenderer`) is untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage

__all__ = [
    "DEV_PRESETS",
    "HELDOUT_PRESETS",
    "FRESH_HELDOUT_SEEDS",
    "HELDOUT_SEEDS",
    "PRESETS",
    "EMAppearance",
    "EMSample",
    "render_em_preset",
]


@dataclass(frozen=True)
class EMAppearance:
    """How an EM preset looks; intensities on a 0-1 scale with dark membranes (before
    ``inverted``). Sizes in µm."""

    voxel_size: tuple[float, float, float] = (1.0, 0.5, 0.5)
    extent_um: tuple[float, float, float] = (40.0, 80.0, 80.0)
    soma_diameter_range: tuple[float, float] = (7.0, 11.0)
    soma_density: float = 1 / 9000.0  # somata per µm³
    soma_gap: float = 1.5  # smallest membrane-to-membrane gap between somata
    # relative amplitude of low-order bumps and elongation of the soma surface (0: spheres)
    soma_irregularity: float = 0.0
    neuropil: float = 0.55
    neuropil_membrane: float = 0.3  # depth of the neuropil membranes
    neuropil_scale: float = 0.6  # µm, width of the band-passed noise making the processes
    cytoplasm: float = 0.72
    plasma_membrane: float = 0.4
    membrane_width: float = 0.3
    nucleus: float = 0.6
    nucleus_fraction: float = 0.5  # nucleus radius / soma radius
    envelope: float = 0.3
    nucleolus: float = 0.25
    dendrites: int = 2  # primary dendrites per soma
    vessels: int = 1
    vessel_radius: tuple[float, float] = (3.0, 4.5)
    lumen: float = 0.92
    vessel_wall: float = 0.35
    blood_cells: int = 2  # per vessel
    blood_cell: float = 0.2
    myelinated_axons: int = 8
    myelin: float = 0.12
    glia: int = 6
    glia_nucleus: float = 0.3
    grain: float = 0.04
    noise: float = 0.05
    blur_um: float = 0.3
    gradient: float = 0.15
    inverted: bool = False
    # thin sections averaged into each z voxel (ssTEM / FIB-SEM data downsampled in z): the
    # block is drawn on a z grid this many times finer and each z voxel is the mean of its
    # sub-sections, so membranes cut at a grazing angle smear along z as in real data
    z_average: int = 1
    # FIB-SEM curtaining: streaks along y from uneven milling, an offset that changes along x
    # and slowly from slice to slice (z), of this standard deviation (0-1 scale)
    curtaining: float = 0.0


DEV_PRESETS: dict[str, EMAppearance] = {
    "dev_sbem": EMAppearance(),
    "dev_fibsem_inverted": EMAppearance(
        voxel_size=(0.5, 0.5, 0.5),
        extent_um=(30.0, 60.0, 60.0),
        nucleus=0.82,
        envelope=0.35,
        vessels=2,
        vessel_radius=(2.5, 3.5),
        inverted=True,
        noise=0.04,
        gradient=0.2,
    ),
    "dev_low_contrast_aniso": EMAppearance(
        voxel_size=(2.0, 0.5, 0.5),
        extent_um=(48.0, 80.0, 80.0),
        cytoplasm=0.64,
        plasma_membrane=0.25,
        neuropil_membrane=0.2,
        nucleus=0.55,
        myelinated_axons=20,
        noise=0.09,
        gradient=0.35,
        blur_um=0.5,
    ),
    "dev_dense_isotropic": EMAppearance(
        voxel_size=(1.0, 1.0, 1.0),
        extent_um=(48.0, 96.0, 96.0),
        soma_density=1 / 6000.0,
        soma_gap=0.3,
        cytoplasm=0.62,
        neuropil=0.6,
        nucleus=0.45,
        vessels=2,
        glia=15,
        noise=0.06,
    ),
    # cytoplasm darker than the neuropil (the usual look of many TEM / SBEM stains): a soma
    # is a dark body in a light neuropil, so a detector cannot rely on a bright cytoplasm
    "dev_dark_cytoplasm": EMAppearance(
        voxel_size=(1.0, 0.5, 0.5),
        extent_um=(36.0, 72.0, 72.0),
        neuropil=0.62,
        cytoplasm=0.47,
        nucleus=0.66,
        envelope=0.3,
        myelinated_axons=16,
        glia=8,
        noise=0.07,
        gradient=0.25,
    ),
    # inverted, noisy, 2 µm sections, cytoplasm as grey as the neuropil: only the membranes,
    # the nucleus and the lack of texture tell a soma
    "dev_grey_inverted_aniso": EMAppearance(
        voxel_size=(2.0, 0.75, 0.75),
        extent_um=(48.0, 84.0, 84.0),
        neuropil=0.57,
        cytoplasm=0.58,
        nucleus=0.72,
        nucleolus=0.35,
        myelinated_axons=30,
        myelin=0.15,
        vessels=1,
        blood_cells=3,
        glia=12,
        noise=0.1,
        gradient=0.3,
        inverted=True,
    ),
    # faint somata in thick sections: 1.75 µm sections, plasma membrane and nuclear envelope
    # barely darker than the neuropil's membranes, strong noise and staining gradient; dark
    # membranes, cytoplasm a shade lighter than the neuropil
    "dev_faint_thick_sections": EMAppearance(
        voxel_size=(1.75, 0.6, 0.6),
        extent_um=(42.0, 72.0, 72.0),
        neuropil=0.56,
        neuropil_membrane=0.22,
        cytoplasm=0.6,
        plasma_membrane=0.2,
        membrane_width=0.35,
        nucleus=0.5,
        envelope=0.22,
        myelinated_axons=15,
        glia=8,
        grain=0.05,
        noise=0.08,
        gradient=0.4,
        blur_um=0.45,
    ),
    # faint somata after inversion (bright membranes): cytoplasm darker than the neuropil,
    # plasma membrane and envelope barely above the neuropil's membranes, 1.25 µm sections
    "dev_faint_inverted_dark": EMAppearance(
        voxel_size=(1.25, 0.6, 0.6),
        extent_um=(40.0, 76.0, 76.0),
        neuropil=0.58,
        neuropil_membrane=0.26,
        cytoplasm=0.47,
        plasma_membrane=0.22,
        nucleus=0.64,
        envelope=0.26,
        nucleolus=0.32,
        myelinated_axons=22,
        glia=9,
        noise=0.09,
        gradient=0.35,
        blur_um=0.4,
        inverted=True,
    ),
    # inverted, 2 µm sections on a coarse 0.8 µm grid, dim somata with a bright nucleus, three
    # dendrites each, many myelinated axons
    "dev_inverted_thick_dim": EMAppearance(
        voxel_size=(2.0, 0.8, 0.8),
        extent_um=(50.0, 80.0, 80.0),
        neuropil=0.6,
        cytoplasm=0.53,
        plasma_membrane=0.26,
        nucleus=0.74,
        envelope=0.3,
        nucleolus=0.28,
        dendrites=3,
        myelinated_axons=30,
        glia=12,
        noise=0.085,
        gradient=0.25,
        inverted=True,
    ),
}

HELDOUT_PRESETS: dict[str, EMAppearance] = {
    "heldout_issue16": EMAppearance(
        voxel_size=(0.5, 0.5, 0.5),
        extent_um=(40.0, 80.0, 80.0),
        soma_density=30 / (40.0 * 80.0 * 80.0),
        neuropil=0.58,
        neuropil_membrane=0.35,
        cytoplasm=0.78,
        nucleus=0.66,
        vessels=2,
        myelinated_axons=6,
        glia=4,
        noise=0.05,
        gradient=0.1,
    ),
    "heldout_inverted_tem": EMAppearance(
        voxel_size=(1.5, 0.75, 0.75),
        extent_um=(45.0, 90.0, 90.0),
        neuropil=0.6,
        cytoplasm=0.5,  # cytoplasm darker than the neuropil
        plasma_membrane=0.3,
        nucleus=0.7,
        envelope=0.35,
        nucleolus=0.3,
        myelinated_axons=25,
        vessels=1,
        vessel_radius=(4.0, 5.0),
        blood_cells=3,
        glia=10,
        noise=0.08,
        gradient=0.3,
        inverted=True,
    ),
    # defined and committed before any detector ran on it (session of 2026-11-29): FIB-SEM-like
    # 1 x 0.5 x 0.5 µm voxels, bright membranes (inverted), irregular and elongated 7-12 µm
    # somata with four dendrites and large nuclei, coarser neuropil processes than any dev
    # preset, dense myelinated axons, glia whose nuclei look dark, two vessels full of blood
    # cells, the strongest staining gradient of all presets; rendered with seed 0
    "heldout_fibsem_irregular": EMAppearance(
        voxel_size=(1.0, 0.5, 0.5),
        extent_um=(40.0, 80.0, 80.0),
        soma_diameter_range=(7.0, 12.0),
        soma_density=1 / 8000.0,
        soma_gap=3.0,
        soma_irregularity=0.12,
        neuropil=0.52,
        neuropil_membrane=0.28,
        neuropil_scale=0.9,
        cytoplasm=0.66,
        plasma_membrane=0.32,
        membrane_width=0.25,
        nucleus=0.58,
        nucleus_fraction=0.6,
        envelope=0.3,
        nucleolus=0.3,
        dendrites=4,
        vessels=2,
        vessel_radius=(2.5, 4.0),
        blood_cells=4,
        blood_cell=0.25,
        myelinated_axons=40,
        myelin=0.1,
        glia=14,
        glia_nucleus=0.8,  # bright before inversion: dark in the volume
        grain=0.05,
        noise=0.06,
        blur_um=0.25,
        gradient=0.45,
        inverted=True,
    ),
    # defined and committed before any detector ran on them (session of 2026-11-29, 08:00 UTC);
    # parameters from what the microscopes give, not from any detector output.
    # Serial-section TEM of myelin-rich tissue (e.g. near white matter): 40 nm sections and 4 nm
    # pixels downsampled to 1.6 µm in z (five 0.32 µm sub-sections averaged per voxel here) and
    # 0.4 µm in plane; dark membranes (TEM, not inverted), light cytoplasm, heavy myelin (many
    # thick, very dark sheaths), oligodendrocyte-like glia with dark heterochromatic nuclei,
    # one vessel, moderate noise (averaging lowers it) and a mild gradient across the sections
    "heldout_sstem_myelin": EMAppearance(
        voxel_size=(1.6, 0.4, 0.4),
        extent_um=(48.0, 80.0, 80.0),
        soma_density=1 / 10000.0,
        neuropil=0.57,
        neuropil_membrane=0.3,
        neuropil_scale=0.5,
        cytoplasm=0.7,
        plasma_membrane=0.38,
        membrane_width=0.25,
        nucleus=0.62,
        envelope=0.32,
        nucleolus=0.25,
        vessels=1,
        vessel_radius=(3.0, 4.0),
        myelinated_axons=70,
        myelin=0.08,
        glia=16,
        glia_nucleus=0.22,
        grain=0.05,
        noise=0.06,
        blur_um=0.2,
        gradient=0.2,
        z_average=5,
    ),
    # FIB-SEM block at 0.4 µm isotropic (8 nm voxels downsampled), the detector image shown
    # TEM-like (dark membranes): bright cytoplasm, nuclei darker than the cytoplasm and the
    # neuropil (dense heterochromatin) with a dark nucleolus, curtaining streaks from the ion
    # beam and the strongest staining gradient of all presets (uneven heavy-metal penetration
    # into a block; 80 x 160 x 160 voxels, the size the fine-tuning budget is set for)
    "heldout_fibsem_dark_nuclei": EMAppearance(
        voxel_size=(0.4, 0.4, 0.4),
        extent_um=(32.0, 64.0, 64.0),
        soma_density=1 / 8500.0,
        neuropil=0.56,
        neuropil_membrane=0.3,
        cytoplasm=0.76,
        plasma_membrane=0.36,
        nucleus=0.4,
        envelope=0.22,
        nucleolus=0.2,
        vessels=1,
        vessel_radius=(2.5, 3.5),
        myelinated_axons=10,
        glia=8,
        glia_nucleus=0.3,
        grain=0.04,
        noise=0.05,
        blur_um=0.25,
        gradient=0.55,
        curtaining=0.04,
    ),
}

# The held-out evaluation: every held-out preset rendered with each of these seeds (seeds 1-2
# were first rendered for the held-out presets in the final measurement of 2026-11-29).
HELDOUT_SEEDS: tuple[int, ...] = (0, 1, 2)
# Fresh held-out blocks: seeds 3-5 of every held-out preset, defined (2026-11-29) before any
# detector or renderer ran on them, to confirm the fused shell pass as the U-Net path's default,
# a decision made after seeds 0-2 had been seen. Measured once; nothing is chosen on them.
FRESH_HELDOUT_SEEDS: tuple[int, ...] = (3, 4, 5)

PRESETS: dict[str, EMAppearance] = {**DEV_PRESETS, **HELDOUT_PRESETS}


@dataclass
class EMSample:
    """A rendered preset with its truth.

    Attributes
    ----------
    volume : (Z, Y, X) uint8
    voxel_size : (3,) tuple of float, µm
    centres : (N, 3) float, true soma centres in µm (z, y, x)
    soma_labels : (Z, Y, X) int32, soma i (1..N) inside its plasma membrane
    segmentation : (Z, Y, X) int32, every compartment; soma i keeps id i (with its dendrites,
        without its nucleus), the nucleus of soma i has id ``nucleus_offset + i``
    diameters : (N,) float, true soma diameters (µm)
    name : str
    appearance : EMAppearance
    """

    volume: np.ndarray
    voxel_size: tuple[float, float, float]
    centres: np.ndarray
    soma_labels: np.ndarray
    segmentation: np.ndarray
    diameters: np.ndarray
    name: str
    appearance: EMAppearance
    nucleus_offset: int = 10_000
    extras: dict = field(default_factory=dict)


def _box(centre, reach, vs, shape):
    """Index slices of the voxels within ``reach`` µm (per axis) of ``centre`` µm."""
    lo = np.maximum(0, np.floor((np.asarray(centre) - reach) / vs)).astype(int)
    hi = np.minimum(shape, np.ceil((np.asarray(centre) + reach) / vs) + 1).astype(int)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def _coords(sl, vs):
    return [
        (np.arange(s.start, s.stop) * v).reshape([-1 if i == a else 1 for i in range(3)])
        for a, (s, v) in enumerate(zip(sl, vs, strict=True))
    ]


def _segment_distance(coords, p0, p1):
    """Distance (µm) of grid points to the segment p0-p1, and the position along it (0-1)."""
    d = np.asarray(p1, float) - np.asarray(p0, float)
    length2 = max(float(d @ d), 1e-12)
    rel = [c - a for c, a in zip(coords, p0, strict=True)]
    t = np.clip(sum(r * di for r, di in zip(rel, d, strict=True)) / length2, 0.0, 1.0)
    return np.sqrt(sum((r - t * di) ** 2 for r, di in zip(rel, d, strict=True))), t


def _through_line(rng, extent, margin=0.0):
    """A random straight line crossing the block: two end points beyond its faces."""
    centre = rng.uniform(margin, np.asarray(extent) - margin)
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    half = float(np.linalg.norm(extent))
    return centre - half * direction, centre + half * direction


def _ring(dist, radius, width, vs_min):
    """A thin shell profile at ``radius`` whose depth falls when the voxel outgrows it."""
    w = max(width, 0.5 * vs_min)
    return (width / w) ** 0.5 * np.exp(-(((dist - radius) / w) ** 2))


def _place_somata(rng, a: EMAppearance, extent, forbidden):
    n = int(round(a.soma_density * float(np.prod(extent))))
    centres, diameters = [], []
    lo_d, hi_d = a.soma_diameter_range
    for _ in range(200 * max(n, 1)):
        if len(centres) == n:
            break
        d = rng.uniform(lo_d, hi_d)
        c = rng.uniform(0.5 * d * 0.6, np.asarray(extent) - 0.5 * d * 0.6)
        if any(
            np.linalg.norm(c - c2) < 0.5 * (d + d2) + a.soma_gap
            for c2, d2 in zip(centres, diameters, strict=True)
        ):
            continue
        if any(dist(c) < 0.5 * d + 1.0 for dist in forbidden):
            continue
        centres.append(c)
        diameters.append(d)
    return np.asarray(centres, float).reshape(-1, 3), np.asarray(diameters, float)


def _line_distance_fn(p0, p1, radius):
    def dist(c):
        return float(_segment_distance([np.asarray(v) for v in c], p0, p1)[0]) - radius

    return dist


def _neuropil(rng, a: EMAppearance, shape, vs):
    sigma = a.neuropil_scale / vs
    noise = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    noise /= max(float(noise.std()), 1e-9)
    membranes = np.exp(-((noise / 0.45) ** 2))
    vol = a.neuropil - a.neuropil_membrane * membranes
    fragments, _ = ndimage.label(membranes < 0.5)
    return vol.astype(np.float32), fragments


def render_em_preset(
    name: str,
    *,
    seed: int = 0,
    extent_um: tuple[float, float, float] | None = None,
    **overrides,
) -> EMSample:
    """Render preset ``name`` (see :data:`PRESETS`) with its truth; deterministic per seed.

    ``extent_um`` (µm, z, y, x) overrides the preset's block size; other keywords override
    fields of its :class:`EMAppearance`.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown EM preset {name!r}; choose from {sorted(PRESETS)}.")
    a = replace(PRESETS[name], **overrides)
    if extent_um is not None:
        a = replace(a, extent_um=tuple(float(e) for e in extent_um))
    if a.z_average < 1:
        raise ValueError(f"z_average must be at least 1; got {a.z_average}.")
    coarse = np.asarray(a.voxel_size, float)
    # drawn on a z grid z_average times finer, averaged back below
    vs = coarse / np.array([a.z_average, 1.0, 1.0])
    shape = tuple(int(round(e / v)) for e, v in zip(a.extent_um, coarse, strict=True))
    shape = (shape[0] * a.z_average, *shape[1:])
    extent = np.asarray(shape) * vs
    name_seed = sum(ord(ch) * (i + 1) for i, ch in enumerate(name))
    rng = np.random.default_rng([seed, name_seed])
    vol, fragments = _neuropil(rng, a, shape, vs)
    seg = np.zeros(shape, np.int32)
    frag_ids = fragments > 0
    seg[frag_ids] = 50_000 + fragments[frag_ids]
    vessels = []
    for _ in range(a.vessels):
        p0, p1 = _through_line(rng, extent, margin=0.2 * float(extent.min()))
        vessels.append((p0, p1, rng.uniform(*a.vessel_radius)))
    forbidden = [_line_distance_fn(p0, p1, r + 1.0) for p0, p1, r in vessels]
    centres, diameters = _place_somata(rng, a, extent, forbidden)
    _paint_myelin(rng, a, vol, seg, vs, extent, centres, diameters)
    _paint_vessels(rng, a, vol, seg, vs, vessels)
    _paint_glia(rng, a, vol, seg, vs, extent, centres, diameters, vessels)
    soma_labels = np.zeros(shape, np.int32)
    for i, (c, d) in enumerate(zip(centres, diameters, strict=True), start=1):
        _paint_soma(rng, a, vol, seg, soma_labels, vs, c, d, i)
    if a.z_average > 1:
        vol, seg, soma_labels, centres = _average_sections(
            a.z_average, vs[0], vol, seg, soma_labels, centres
        )
    vol = _finish(rng, a, vol, coarse)
    return EMSample(
        volume=vol,
        voxel_size=tuple(float(v) for v in coarse),
        centres=centres,
        soma_labels=soma_labels,
        segmentation=seg,
        diameters=diameters,
        name=name,
        appearance=a,
    )


def _average_sections(k, fine_z, vol, seg, soma_labels, centres):
    """Each z voxel the mean of ``k`` consecutive fine sections; the labels those of its middle
    section. A z voxel's centre is its middle section's plane, so the truth moves by that
    offset (the volume's z voxel ``j`` stands at ``j`` voxels, as every detector assumes)."""
    n = vol.shape[0] // k
    middle = k // 2
    averaged = vol[: n * k].reshape(n, k, *vol.shape[1:]).mean(axis=1)
    shift = np.array([middle * fine_z, 0.0, 0.0])
    return (
        averaged.astype(np.float32),
        seg[middle::k][:n],
        soma_labels[middle::k][:n],
        centres - shift,
    )


def _paint_myelin(rng, a, vol, seg, vs, extent, centres, diameters):
    for k in range(a.myelinated_axons):
        r_axon = rng.uniform(0.4, 1.0)
        outer = r_axon + rng.uniform(0.4, 0.7)
        for _ in range(50):
            p0, p1 = _through_line(rng, extent)
            far = all(
                _segment_distance([np.asarray(v) for v in c], p0, p1)[0] > 0.5 * d + outer
                for c, d in zip(centres, diameters, strict=True)
            )
            if far:
                break
        _tube(vol, seg, vs, p0, p1, outer, a.myelin, 60_000 + k)
        _tube(vol, seg, vs, p0, p1, r_axon, a.neuropil + 0.1, 60_000 + k)


def _tube(vol, seg, vs, p0, p1, radius, value, label):
    shape = vol.shape
    lo = np.minimum(p0, p1) - radius - vs
    hi = np.maximum(p0, p1) + radius + vs
    sl = tuple(
        slice(int(max(0, np.floor(lo_ / v))), int(min(s, np.ceil(hi_ / v) + 1)))
        for lo_, hi_, v, s in zip(lo, hi, vs, shape, strict=True)
    )
    if any(s.stop <= s.start for s in sl):
        return None
    dist, t = _segment_distance(_coords(sl, vs), p0, p1)
    inside = dist <= radius
    vol[sl][inside] = value
    if label is not None:
        seg[sl][inside] = label
    return sl, dist, t


def _paint_vessels(rng, a, vol, seg, vs, vessels):
    for k, (p0, p1, r) in enumerate(vessels):
        wall = rng.uniform(0.6, 1.0)
        _tube(vol, seg, vs, p0, p1, r + wall, a.vessel_wall, 70_000 + k)
        got = _tube(vol, seg, vs, p0, p1, r, a.lumen, 70_000 + k)
        if got is None:
            continue
        for _ in range(a.blood_cells):
            t = rng.uniform(0.3, 0.7)
            c = np.asarray(p0) + t * (np.asarray(p1) - np.asarray(p0))
            c = c + rng.normal(0, 0.3 * r, 3)
            rc = min(0.8 * r, 3.0)
            sl = _box(c, rc, vs, vol.shape)
            if any(s.stop <= s.start for s in sl):
                continue
            dz, dy, dx = (g - ci for g, ci in zip(_coords(sl, vs), c, strict=True))
            cell = (dz / (0.45 * rc)) ** 2 + (dy / rc) ** 2 + (dx / rc) ** 2 <= 1
            vol[sl][cell] = a.blood_cell


def _paint_glia(rng, a, vol, seg, vs, extent, centres, diameters, vessels):
    placed = 0
    for _ in range(50 * max(a.glia, 1)):
        if placed == a.glia:
            break
        d = rng.uniform(4.0, 5.5)
        c = rng.uniform(0, extent)
        if any(
            np.linalg.norm(c - c2) < 0.5 * (d + d2) + 0.5
            for c2, d2 in zip(centres, diameters, strict=True)
        ):
            continue
        if any(_line_distance_fn(p0, p1, r + 1.0)(c) < 0.5 * d for p0, p1, r in vessels):
            continue
        sl = _box(c, 0.5 * d + 1.0, vs, vol.shape)
        dist = np.sqrt(sum((g - ci) ** 2 for g, ci in zip(_coords(sl, vs), c, strict=True)))
        r = 0.5 * d
        sub = vol[sl]
        sub[dist <= r] = a.neuropil - 0.05
        sub[dist <= 0.8 * r] = a.glia_nucleus
        sub -= a.plasma_membrane * 0.7 * _ring(dist, r, a.membrane_width, vs.min())
        seg[sl][dist <= r] = 80_000 + placed
        placed += 1


def _paint_soma(rng, a, vol, seg, soma_labels, vs, c, d, i):
    r = 0.5 * d
    # primary dendrites: tapering tubes of cytoplasm leaving the soma
    for _ in range(a.dendrites):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        length = rng.uniform(8.0, 16.0)
        p0, p1 = c + 0.6 * r * direction, c + (r + length) * direction
        got = _tube(vol, seg, vs, p0, p1, rng.uniform(1.0, 1.5), a.cytoplasm, i)
        if got is not None:
            sl, dist, _ = got
            vol[sl] -= a.plasma_membrane * 0.5 * _ring(dist, 1.2, a.membrane_width, vs.min())
    sl = _box(c, r * (1.0 + 2.0 * a.soma_irregularity) + 1.5, vs, vol.shape)
    g = _coords(sl, vs)
    dist = np.sqrt(sum((gi - ci) ** 2 for gi, ci in zip(g, c, strict=True)))
    if a.soma_irregularity > 0:
        # an irregular surface: the membrane at r * s(direction), written as a distance whose
        # r level set is that surface (the rings below keep their width in µm)
        dist = dist - r * (_surface_scale(rng, a.soma_irregularity, g, c, dist) - 1.0)
    offset = rng.normal(0, 0.12 * r, 3)
    rn = a.nucleus_fraction * r * rng.uniform(0.9, 1.1)
    nc = c + offset
    nd = np.sqrt(sum((gi - ci) ** 2 for gi, ci in zip(g, nc, strict=True)))
    nucleolus_c = nc + rng.normal(0, 0.25 * rn, 3)
    nld = np.sqrt(sum((gi - ci) ** 2 for gi, ci in zip(g, nucleolus_c, strict=True)))
    sub = vol[sl]
    inside = dist <= r
    sub[inside] = a.cytoplasm
    nucleus = inside & (nd <= rn)
    sub[nucleus] = a.nucleus
    sub[nucleus & (nld <= 0.3 * rn)] = a.nucleolus
    sub -= a.envelope * _ring(nd, rn, a.membrane_width, vs.min()) * inside
    sub -= a.plasma_membrane * _ring(dist, r, a.membrane_width, vs.min())
    seg_sub = seg[sl]
    seg_sub[inside] = i
    seg_sub[nucleus] = 10_000 + i
    soma_labels[sl][inside] = i


def _surface_scale(rng, irregularity, g, c, dist):
    """Radius multiplier per voxel direction: quadrupole (elongation) and octupole (bumps)
    terms along three random axes, bounded to 1 ± 2 × ``irregularity``."""
    unit = [(gi - ci) / np.maximum(dist, 1e-6) for gi, ci in zip(g, c, strict=True)]
    scale = 1.0
    for _ in range(3):
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        cos = sum(u * ax for u, ax in zip(unit, axis, strict=True))
        quad, octu = rng.normal(0.0, 1.0, 2)
        scale = scale + irregularity * (quad * (cos**2 - 1 / 3) + 0.7 * octu * (cos**3 - 0.6 * cos))
    return np.clip(scale, 1.0 - 2.0 * irregularity, 1.0 + 2.0 * irregularity)


def _finish(rng, a, vol, vs):
    shape = vol.shape
    vol += a.grain * rng.standard_normal(shape).astype(np.float32)
    vol = ndimage.gaussian_filter(vol, a.blur_um / vs)
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    ramp = sum(
        (np.arange(n) / max(n - 1, 1) - 0.5).reshape([-1 if i == k else 1 for i in range(3)]) * w
        for k, (n, w) in enumerate(zip(shape, axis, strict=True))
    )
    vol = vol * (1.0 + a.gradient * ramp)
    if a.curtaining > 0:
        # streaks along y: an offset per (z, x), smooth over ~2 slices in z and ~1 µm in x
        streaks = ndimage.gaussian_filter(
            rng.standard_normal((shape[0], shape[2])), (2.0, 1.0 / vs[2])
        )
        streaks *= a.curtaining / max(float(streaks.std()), 1e-9)
        vol = vol + streaks[:, None, :].astype(np.float32)
    vol += a.noise * rng.standard_normal(shape).astype(np.float32)
    if a.inverted:
        vol = 1.0 - vol
    return np.clip(np.rint(255 * vol), 0, 255).astype(np.uint8)
