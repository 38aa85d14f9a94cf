"""A small trainable 3D U-Net that tells soma voxels from background in EM volumes.

The user paints a few somata (label 2) and some background (label 1) in a sparse annotation
volume (0 = unlabelled); :func:`train_soma_detector` trains on random patches around the
painted voxels with a cross-entropy that ignores unlabelled voxels, and
:meth:`SomaDetector.predict` runs block by block with overlap over volumes of any size.
:func:`~napari_mesoscale.segment.em.detect_somata_em` with ``detector=`` turns the
probability into somata (distance transform, watershed, size filter).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_mesoscale.io import atomic_path
from napari_mesoscale.progress import Progress
from napari_mesoscale.segment.em import (
    check_em_volume,
    downsample,
    downsample_factors,
    upsample_labels,
)
from napari_mesoscale.segment.params import SomaTrainingParams
from napari_mesoscale.segment.sources import DetectionCancelled

UNLABELLED, BACKGROUND, SOMA = 0, 1, 2


def _torch():
    import torch

    return torch


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is available (then ``"mps"``), else ``"cpu"``."""
    torch = _torch()
    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def build_unet(base_channels: int = 8, depth: int = 2):
    """A small 3D U-Net: ``depth`` poolings, ``base_channels`` doubled per level, 2 classes."""
    torch = _torch()
    nn = torch.nn

    def block(cin: int, cout: int):
        return nn.Sequential(
            nn.Conv3d(cin, cout, 3, padding=1),
            nn.BatchNorm3d(cout),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv3d(cout, cout, 3, padding=1),
            nn.BatchNorm3d(cout),
            nn.LeakyReLU(0.1, inplace=True),
        )

    class UNet3D(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            chans = [base_channels * 2**i for i in range(depth + 1)]
            self.down = nn.ModuleList()
            cin = 1
            for c in chans:
                self.down.append(block(cin, c))
                cin = c
            self.up = nn.ModuleList()
            self.merge = nn.ModuleList()
            for c_hi, c_lo in zip(chans[::-1][:-1], chans[::-1][1:], strict=True):
                self.up.append(nn.ConvTranspose3d(c_hi, c_lo, 2, stride=2))
                self.merge.append(block(2 * c_lo, c_lo))
            self.head = nn.Conv3d(chans[0], 2, 1)
            self.pool = nn.MaxPool3d(2)

        def forward(self, x):
            skips = []
            for i, layer in enumerate(self.down):
                x = layer(x)
                if i < len(self.down) - 1:
                    skips.append(x)
                    x = self.pool(x)
            for up, merge, skip in zip(self.up, self.merge, skips[::-1], strict=True):
                x = up(x)
                x = merge(torch.cat([x, skip], dim=1))
            return self.head(x)

    return UNet3D()


def _normalise(image: np.ndarray, centre: float, scale: float) -> np.ndarray:
    return ((image - centre) / scale).astype(np.float32)


def _robust_stats(image: np.ndarray) -> tuple[float, float]:
    sample = image.reshape(-1)
    if sample.size > 2_000_000:
        sample = sample[:: sample.size // 2_000_000]
    centre = float(np.median(sample))
    scale = float(1.4826 * np.median(np.abs(sample - centre)))
    return centre, max(scale, 1e-6)


@dataclass
class SomaDetector:
    """A trained soma U-Net with the settings needed to apply it.

    Attributes
    ----------
    model : torch.nn.Module
        The network (2 output classes: background, soma).
    voxel_size : tuple of float
        Voxel size (µm) of the training volume.
    resolution : float
        Working voxel size (µm) the network runs at.
    config : dict
        Architecture (``base_channels``, ``depth``) and patch size.
    history : list of dict
        Loss (and accuracy on painted voxels) per epoch.
    device : str
        Where the model runs.
    """

    model: Any
    voxel_size: tuple[float, float, float]
    resolution: float
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    device: str = "cpu"

    @property
    def multiple(self) -> int:
        return 2 ** int(self.config.get("depth", 2))

    def working_grid(self, voxel_size: Any) -> tuple[np.ndarray, tuple[float, float, float]]:
        """Integer downsampling factors and working voxel size for an input voxel size."""
        factors = downsample_factors(tuple(voxel_size), self.resolution)
        return factors, tuple(float(v) for v in np.asarray(voxel_size) * factors)

    def predict(
        self,
        volume: Any,
        *,
        voxel_size: Any = None,
        full_resolution: bool = False,
        block: int = 96,
        callback: Callable[[dict[str, Any]], Any] | None = None,
    ) -> np.ndarray:
        """Soma probability (float32) of ``volume``, block by block with overlap.

        Parameters
        ----------
        volume : array_like or dask.array.Array
            (Z, Y, X) EM volume; dask arrays are downsampled block by block.
        voxel_size : sequence of float, optional
            Its voxel size in µm (default: the training voxel size).
        full_resolution : bool
            Return the probability on the input grid (nearest upsampling) instead of the
            working grid (``working_grid(voxel_size)[1]`` µm per voxel).
        block : int
            Edge of the blocks (working voxels) the network sees at once.
        """
        voxel_size = self.voxel_size if voxel_size is None else voxel_size
        volume, vs = check_em_volume(volume, voxel_size)
        factors, _ = self.working_grid(vs)
        image = downsample(volume, factors)
        probability = self.predict_working(image, block=block, callback=callback)
        if full_resolution:
            return upsample_labels(probability, factors, tuple(volume.shape))
        return probability

    def predict_working(
        self,
        image: np.ndarray,
        *,
        block: int = 96,
        callback: Callable[[dict[str, Any]], Any] | None = None,
        progress_span: tuple[float, float] = (0.0, 1.0),
        augment: bool = False,
        rotate_in_plane: bool = True,
    ) -> np.ndarray:
        """Soma probability of an image already on the working grid.

        With ``augment`` (test-time augmentation) the probability is the mean over the 8 flips
        of the image's axes and, with ``rotate_in_plane`` (y and x voxels alike), also over
        their y-x transposes (16 passes): the network's answer no longer depends on which way
        a soma's asymmetries point.
        """
        torch = _torch()
        centre, scale = _robust_stats(image)
        x = _normalise(image, centre, scale)
        views = _test_time_views(augment, rotate_in_plane)
        progress = Progress.wrap(callback, DetectionCancelled).stage(*progress_span)
        out = np.zeros(x.shape, dtype=np.float32)
        self.model.eval()
        with torch.no_grad():
            for k, (flips, transpose) in enumerate(views):
                view = _apply_view(x, flips, transpose)
                span = progress.stage(k / len(views), (k + 1) / len(views))
                prob = self._predict_blocks(np.ascontiguousarray(view), block, span)
                out += _undo_view(prob, flips, transpose)
        return out / len(views)

    def _predict_blocks(self, x: np.ndarray, block: int, progress: Progress) -> np.ndarray:
        """One pass of the network over ``x`` (normalised), block by block with overlap."""
        torch = _torch()
        m = self.multiple
        margin = max(m, int(self.config.get("margin", 16)))
        block = max(int(block), 2 * margin + m)
        shape = np.asarray(x.shape)
        core = block - 2 * margin
        starts = [list(range(0, int(s), core)) for s in shape]
        out = np.zeros(x.shape, dtype=np.float32)
        total = int(np.prod([len(s) for s in starts]))
        done = 0
        for z0 in starts[0]:
            for y0 in starts[1]:
                for x0 in starts[2]:
                    c0 = np.array([z0, y0, x0])
                    c1 = np.minimum(c0 + core, shape)
                    r0 = np.maximum(c0 - margin, 0)
                    r1 = np.minimum(c1 + margin, shape)
                    patch = x[r0[0] : r1[0], r0[1] : r1[1], r0[2] : r1[2]]
                    size = np.asarray(patch.shape)
                    padded = ((size + m - 1) // m) * m
                    pad = [(0, int(p - s)) for p, s in zip(padded, size, strict=True)]
                    patch = np.pad(patch, pad, mode="reflect" if min(size) > 1 else "edge")
                    tensor = torch.from_numpy(np.ascontiguousarray(patch))[None, None]
                    logits = self.model(tensor.to(self.device))
                    prob = torch.softmax(logits, dim=1)[0, 1].float().cpu().numpy()
                    a = c0 - r0
                    b = a + (c1 - c0)
                    out[c0[0] : c1[0], c0[1] : c1[1], c0[2] : c1[2]] = prob[
                        a[0] : b[0], a[1] : b[1], a[2] : b[2]
                    ]
                    done += 1
                    progress.report(done / total, f"U-Net block {done}/{total}")
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Save weights and settings to one file (``torch.save``), written atomically."""
        torch = _torch()
        state = {
            "format": "napari-mesoscale-soma-detector",
            "version": 1,
            "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "voxel_size": list(self.voxel_size),
            "resolution": self.resolution,
            "config": self.config,
            "history": self.history,
        }
        target = Path(path)
        with atomic_path(target) as tmp:
            torch.save(state, tmp)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str = "auto") -> SomaDetector:
        """Load a detector written by :meth:`save`."""
        from napari_mesoscale.io.torch_files import load_torch_file

        state = load_torch_file(path, "soma detector")
        if state.get("format") != "napari-mesoscale-soma-detector":
            raise ValueError(
                f"{path} is not a saved soma detector (a file written by SomaDetector.save or "
                "by 'Train soma detector (EM)')."
            )
        missing = [key for key in ("state_dict", "config") if key not in state]
        if missing:
            raise ValueError(
                f"{path} is not a complete soma detector: missing {', '.join(missing)}."
            )
        config = dict(state["config"])
        model = build_unet(config.get("base_channels", 8), config.get("depth", 2))
        model.load_state_dict(state["state_dict"])
        dev = resolve_device(device)
        model.to(dev)
        return cls(
            model=model,
            voxel_size=tuple(state["voxel_size"]),
            resolution=float(state["resolution"]),
            config=config,
            history=list(state.get("history", [])),
            device=dev,
        )


def _test_time_views(augment: bool, rotate_in_plane: bool) -> list[tuple[tuple[int, ...], bool]]:
    """(flipped axes, y-x transposed) of every view the probability is averaged over."""
    if not augment:
        return [((), False)]
    flips = [tuple(a for a in range(3) if mask >> a & 1) for mask in range(8)]
    transposes = (False, True) if rotate_in_plane else (False,)
    return [(f, t) for t in transposes for f in flips]


def _apply_view(x: np.ndarray, flips: tuple[int, ...], transpose: bool) -> np.ndarray:
    view = np.flip(x, flips) if flips else x
    return view.transpose(0, 2, 1) if transpose else view


def _undo_view(x: np.ndarray, flips: tuple[int, ...], transpose: bool) -> np.ndarray:
    back = x.transpose(0, 2, 1) if transpose else x
    return np.flip(back, flips) if flips else back


PRETRAINED_WEIGHTS = Path(__file__).resolve().parent / "weights" / "soma_prior.pt"


def pretrained_soma_detector(*, device: str = "auto") -> SomaDetector:
    """The small soma U-Net shipped with the package, trained by
    ``scripts/train_soma_prior.py`` on the dev EM presets
    (:data:`napari_mesoscale.synth.em_presets.DEV_PRESETS`, the weights' ``trained_on``; 960
    steps on six of them, then 1288 more on all seven), rendered with jittered contrast, voxel
    size and polarity, at 1 µm working voxels; a starting point that
    :func:`train_soma_detector` fine-tunes from a few painted somata."""
    if not PRETRAINED_WEIGHTS.exists():
        raise FileNotFoundError(
            f"the pretrained soma detector is missing ({PRETRAINED_WEIGHTS}); reinstall the "
            "package or run scripts/train_soma_prior.py."
        )
    return SomaDetector.load(PRETRAINED_WEIGHTS, device=device)


def _downsample_annotations(
    annotations: np.ndarray, factors: np.ndarray, shape: tuple
) -> np.ndarray:
    """Per working voxel: soma if any painted soma voxel, else background if any, else 0."""
    out = np.zeros(shape, dtype=np.int8)
    crop = annotations[: shape[0] * factors[0], : shape[1] * factors[1], : shape[2] * factors[2]]
    blocks = crop.reshape(shape[0], factors[0], shape[1], factors[1], shape[2], factors[2])
    top = blocks.max(axis=(1, 3, 5))
    out[top == BACKGROUND] = BACKGROUND
    out[top == SOMA] = SOMA
    return out


def _checked_annotations(annotations: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Painted annotations as an integer array of the volume's ``shape``, holding 0, 1 and 2."""
    annotations = np.asarray(
        annotations.compute() if hasattr(annotations, "compute") else annotations
    )
    if annotations.shape != shape:
        raise ValueError(
            f"annotations must have the volume's shape {shape}; got "
            f"{annotations.shape}. Paint them in a Labels layer over the EM volume."
        )
    if not np.issubdtype(annotations.dtype, np.integer):
        raise ValueError(f"annotations must be integers (0, 1, 2); got dtype {annotations.dtype}.")
    values = np.unique(annotations)
    if np.any((values < 0) | (values > SOMA)):
        raise ValueError(
            f"annotations may only hold 0 (unlabelled), 1 (background) and 2 (soma); got "
            f"values {values.tolist()}."
        )
    if SOMA not in values or BACKGROUND not in values:
        raise ValueError(
            "annotations need both painted somata (label 2) and painted background (label 1)."
        )
    return annotations


_TRAINING_FIELDS = frozenset(SomaTrainingParams.specs())


def _augmented(
    xp: np.ndarray, yp: np.ndarray, rng: np.random.Generator, augmentation: str
) -> tuple[np.ndarray, np.ndarray]:
    """One training patch flipped on every axis, y and x transposed, its contrast jittered;
    ``"strong"`` also adds noise and blur, so that a few painted somata stand for the fainter,
    noisier ones of the same block."""
    for axis in range(3):
        if rng.random() < 0.5:
            xp, yp = np.flip(xp, axis), np.flip(yp, axis)
    if rng.random() < 0.5:
        xp, yp = xp.transpose(0, 2, 1), yp.transpose(0, 2, 1)
    if augmentation != "strong":
        return xp * rng.uniform(0.9, 1.1) + rng.normal(0, 0.1), yp
    from scipy import ndimage

    if rng.random() < 0.3:
        xp = ndimage.gaussian_filter(xp, rng.uniform(0.3, 0.8))
    xp = xp * rng.uniform(0.7, 1.3) + rng.normal(0, 0.25)
    return xp + rng.normal(0, rng.uniform(0.0, 0.3), xp.shape).astype(np.float32), yp


def train_soma_detector(
    volume: Any,
    annotations: Any,
    *,
    voxel_size: Any,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    batch_size: int | None = None,
    patch_size: int | None = None,
    resolution: float | None = None,
    base_channels: int | None = None,
    depth: int | None = None,
    learning_rate: float | None = None,
    device: str | None = None,
    seed: int | None = None,
    detector: SomaDetector | None = None,
    start_from: str | None = None,
    augmentation: str | None = None,
    self_training: bool | None = None,
    self_training_epochs: int | None = None,
    cell_diameter: float | None = None,
    params: SomaTrainingParams | None = None,
    callback: Callable[[dict[str, Any]], Any] | None = None,
) -> SomaDetector:
    """Train a small 3D U-Net from sparse painted annotations.

    Parameters
    ----------
    volume : array_like
        (Z, Y, X) EM volume.
    annotations : array_like
        Integer volume of the same shape: 0 unlabelled, 1 background, 2 soma (a napari
        Labels layer painted with those values).
    voxel_size : sequence of float
        Voxel size in µm (z, y, x).
    epochs, steps_per_epoch, batch_size : int
        Training length: ``epochs * steps_per_epoch`` steps of ``batch_size`` patches.
    patch_size : int
        Edge of the training patches in working voxels (a multiple of ``2**depth``).
    resolution : float
        Working voxel size (µm), as in :func:`detect_somata_em`.
    base_channels, depth : int
        Network width and number of poolings (the default net has ~90k weights).
    learning_rate : float
        Adam learning rate (cosine decay to 10 % over the run).
    device : str
        ``"auto"`` (GPU when present), ``"cpu"``, ``"cuda"``...
    seed : int
        Seed for weights and patch sampling.
    detector : SomaDetector, optional
        Continue training this detector (e.g. the one of a previous round of painting and
        correcting) instead of the shipped prior or a fresh network.
    start_from : {"pretrained", "scratch"}
        Without ``detector``: fine-tune the shipped soma prior
        (:func:`pretrained_soma_detector`) or start from random weights. Default from
        ``params``; giving ``base_channels`` or ``depth`` means "scratch".
    augmentation : {"light", "strong"}
        Patch augmentation: flips, transposition and ±10 % contrast (``"light"``), or also
        ±30 % contrast, offsets, added noise and blur (``"strong"``).
    self_training, self_training_epochs, cell_diameter
        Self-training (off by default): after the training above, the somata that the
        classical shell path and the trained network agree on, and confident background, are
        added to the painted labels (:func:`self_training_labels`, with ``cell_diameter`` µm)
        and the network trains ``self_training_epochs`` more epochs on them: the paint →
        train → correct → retrain loop run once without the user.
    params : SomaTrainingParams, optional
        The training settings at once (defaults, units, ranges); arguments left at ``None``
        take their value from it, explicit ones override it.
    callback : callable, optional
        Called after every step with ``fraction``, ``message`` and ``step_loss`` (the live
        loss of that step), and after every epoch also with ``epoch``, ``loss`` and ``accuracy``;
        returning False (or raising) stops.

    Returns
    -------
    SomaDetector
        With ``history`` holding the loss per epoch.
    """
    explicit_architecture = base_channels is not None or depth is not None
    settings = (params or SomaTrainingParams()).merged(
        **{k: v for k, v in locals().items() if k in _TRAINING_FIELDS}
    )
    if settings.start_from not in ("pretrained", "scratch"):
        raise ValueError(f"start_from must be 'pretrained' or 'scratch'; got {start_from!r}.")
    if settings.augmentation not in ("light", "strong"):
        raise ValueError(
            f"augmentation must be 'light' or 'strong'; got {settings.augmentation!r}."
        )
    if detector is None and settings.start_from == "pretrained" and start_from is None:
        # an architecture given explicitly asks for a fresh network of that shape
        settings = settings.replace(start_from="scratch" if explicit_architecture else "pretrained")
    progress = Progress.wrap(callback, DetectionCancelled)
    if settings.self_training:
        return _self_trained(volume, annotations, voxel_size, settings, detector, progress)
    torch = _torch()
    volume, vs = check_em_volume(volume, voxel_size)
    annotations = _checked_annotations(annotations, tuple(volume.shape))
    if settings.epochs < 1 or settings.steps_per_epoch < 1 or settings.batch_size < 1:
        raise ValueError("epochs, steps_per_epoch and batch_size must be at least 1.")
    if detector is None and settings.start_from == "pretrained":
        detector = pretrained_soma_detector(device="cpu")
    if detector is not None:
        # a detector carries on at its own working voxel size and architecture
        settings = settings.replace(
            resolution=detector.resolution,
            base_channels=int(detector.config["base_channels"]),
            depth=int(detector.config["depth"]),
        )
    multiple = 2**settings.depth
    patch = max(multiple, int(math.ceil(settings.patch_size / multiple)) * multiple)
    factors = downsample_factors(vs, settings.resolution)
    image = downsample(volume, factors)
    target = _downsample_annotations(annotations, factors, image.shape)
    centre, scale = _robust_stats(image)
    x = _normalise(image, centre, scale)
    # pad so that every patch fits
    pad = [(0, max(0, patch - s)) for s in x.shape]
    x = np.pad(x, pad, mode="reflect" if min(x.shape) > 1 else "edge")
    target = np.pad(target, pad, mode="constant")
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    dev = resolve_device(settings.device)
    if detector is None:
        model = build_unet(settings.base_channels, settings.depth)
        config = {
            "base_channels": settings.base_channels,
            "depth": settings.depth,
            "patch_size": patch,
            "margin": 16,
        }
    else:
        model, config = detector.model, dict(detector.config)
    model.to(dev)
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    # cosine decay to 10 % of the learning rate over the run steadies the last epochs
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimiser,
        T_max=settings.epochs * settings.steps_per_epoch,
        eta_min=0.1 * settings.learning_rate,
    )
    soma_idx = np.argwhere(target == SOMA)
    bg_idx = np.argwhere(target == BACKGROUND)
    shape = np.asarray(x.shape)
    # soma and background voxels are weighted equally, whatever was painted more
    n_soma, n_bg = len(soma_idx), len(bg_idx)
    weight = torch.tensor(
        [0.5 * (n_soma + n_bg) / n_bg, 0.5 * (n_soma + n_bg) / n_soma],
        dtype=torch.float32,
        device=dev,
    )
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight, ignore_index=-1)
    history: list[dict[str, float]] = list(detector.history) if detector is not None else []
    start_time = time.perf_counter()
    for epoch in range(settings.epochs):
        model.train()
        losses, correct, counted = [], 0, 0
        for step in range(settings.steps_per_epoch):
            xs, ys = [], []
            for _b in range(settings.batch_size):
                pool = soma_idx if rng.random() < 0.5 else bg_idx
                centre_voxel = pool[rng.integers(len(pool))]
                jitter = rng.integers(-patch // 4, patch // 4 + 1, size=3)
                lo = np.clip(centre_voxel + jitter - patch // 2, 0, shape - patch)
                sl = tuple(slice(int(a), int(a) + patch) for a in lo)
                xp, yp = x[sl], target[sl].astype(np.int64) - 1  # -1 = unlabelled
                xp, yp = _augmented(xp, yp, rng, settings.augmentation)
                xs.append(np.ascontiguousarray(xp, dtype=np.float32))
                ys.append(np.ascontiguousarray(yp))
            xb = torch.from_numpy(np.stack(xs))[:, None].to(dev)
            yb = torch.from_numpy(np.stack(ys)).to(dev)
            logits = model(xb)
            loss = loss_fn(logits, yb)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            scheduler.step()
            losses.append(float(loss.detach().cpu()))
            # every step, so that Cancel acts within one step
            progress.report(
                (epoch * settings.steps_per_epoch + step + 1)
                / (settings.epochs * settings.steps_per_epoch),
                f"epoch {epoch + 1}/{settings.epochs}, step {step + 1}/{settings.steps_per_epoch}"
                f", loss {losses[-1]:.4f}",
                step_loss=losses[-1],
            )
            with torch.no_grad():
                valid = yb >= 0
                correct += int((logits.argmax(1)[valid] == yb[valid]).sum().cpu())
                counted += int(valid.sum().cpu())
        record = {
            "epoch": len(history) + 1,
            "loss": float(np.mean(losses)),
            "accuracy": correct / max(counted, 1),
            "seconds": time.perf_counter() - start_time,
        }
        history.append(record)
        progress.report(
            (epoch + 1) / settings.epochs,
            f"epoch {epoch + 1}/{settings.epochs}: loss {record['loss']:.4f}",
            epoch=epoch + 1,
            loss=record["loss"],
            accuracy=record["accuracy"],
        )
    model.eval()
    return SomaDetector(
        model=model,
        voxel_size=tuple(vs),
        resolution=float(settings.resolution),
        config=config,
        history=history,
        device=dev,
    )


# Self-training: a detection the classical path also finds (centres within a quarter of the
# cell diameter) and whose mean soma probability reaches SELF_TRAINING_SUPPORT becomes a soma
# label, a ball of SELF_TRAINING_FILL of its radius (as the benchmark's painting); confident
# background is SELF_TRAINING_DABS dabs of 1.5 µm where the probability is below
# SELF_TRAINING_BACKGROUND and no detection of either path lies within a cell diameter.
SELF_TRAINING_SUPPORT = 0.85
SELF_TRAINING_FILL = 0.6
SELF_TRAINING_BACKGROUND = 0.05
SELF_TRAINING_DABS = 40


def _self_trained(
    volume: Any,
    annotations: Any,
    voxel_size: Any,
    settings: SomaTrainingParams,
    detector: SomaDetector | None,
    progress: Progress,
) -> SomaDetector:
    """Train on the painted labels, add the agreed somata and background, train again."""
    once = settings.replace(self_training=False)
    first = train_soma_detector(
        volume,
        annotations,
        voxel_size=voxel_size,
        detector=detector,
        params=once,
        callback=progress.stage(0.0, 0.6, "fine-tuning"),
    )
    extended = self_training_labels(
        first,
        volume,
        annotations,
        voxel_size=voxel_size,
        cell_diameter=settings.cell_diameter,
        seed=settings.seed,
        callback=progress.stage(0.6, 0.8, "labels from agreement"),
    )
    return train_soma_detector(
        volume,
        extended,
        voxel_size=voxel_size,
        detector=first,
        params=once.replace(epochs=settings.self_training_epochs),
        callback=progress.stage(0.8, 1.0, "self-training"),
    )


def self_training_labels(
    detector: SomaDetector,
    volume: Any,
    annotations: Any,
    *,
    voxel_size: Any,
    cell_diameter: float = 8.0,
    seed: int = 0,
    callback: Callable[[dict[str, Any]], Any] | None = None,
) -> np.ndarray:
    """The painted ``annotations`` plus the labels a trained ``detector`` and the classical
    path agree on: somata both find (the network's mean probability in the soma at least
    :data:`SELF_TRAINING_SUPPORT`) and background dabs where the network is confident and
    neither path found a soma nearby. Painted voxels are never changed.

    Returns
    -------
    numpy.ndarray
        uint8 annotations of the volume's shape (0 unlabelled, 1 background, 2 soma).
    """
    from napari_mesoscale.segment.em import detect_somata_em
    from napari_mesoscale.segment.matching import match_points

    progress = Progress.wrap(callback, DetectionCancelled)
    volume, vs = check_em_volume(volume, voxel_size)
    painted = _checked_annotations(annotations, tuple(volume.shape))
    common = {"voxel_size": vs, "cell_diameter": cell_diameter, "full_resolution_labels": False}
    tuned = detect_somata_em(volume, detector=detector, **common, callback=progress.stage(0, 0.6))
    out = painted.astype(np.uint8, copy=True)
    if "probability" not in tuned.summary_images:  # an empty or constant volume
        return out
    classical = detect_somata_em(volume, **common, callback=progress.stage(0.6, 0.9))
    probability = tuned.summary_images["probability"]
    # working voxel i stands at i * work_vs + offset µm (it averages input voxels i*f..i*f+f-1)
    work_vs = np.asarray(tuned.voxel_size, dtype=float)
    offset = 0.5 * (work_vs - np.asarray(vs, dtype=float))
    radii = 0.5 * tuned.features["diameter_um"].to_numpy(dtype=float)
    support = np.array(
        [
            _mean_within(probability, c, 0.5 * r, work_vs, offset)
            for c, r in zip(tuned.positions, radii, strict=True)
        ]
    )
    match = match_points(tuned.positions, classical.positions, 0.25 * cell_diameter)
    agreed = np.zeros(len(tuned.positions), dtype=bool)
    agreed[match.detected_index] = True
    agreed &= support >= SELF_TRAINING_SUPPORT
    for centre, radius in zip(tuned.positions[agreed], radii[agreed], strict=True):
        _paint_ball(out, painted, centre, SELF_TRAINING_FILL * radius, vs, np.zeros(3), SOMA)
    found = np.vstack([tuned.positions, classical.positions])
    _paint_background_dabs(
        out, painted, probability, found, (work_vs, offset, vs), cell_diameter, seed
    )
    progress.report(1.0, f"{int(agreed.sum())} somata agreed on")
    return out


def _ball_slices(shape, centre, radius, vs, offset):
    """Slices of the box around a ball (µm) on a grid whose voxel i stands at i*vs + offset,
    and the squared distance (µm²) of its voxels to the centre; None when outside."""
    lo = np.maximum(0, np.floor((centre - offset - radius) / vs)).astype(int)
    hi = np.minimum(shape, np.ceil((centre - offset + radius) / vs) + 1).astype(int)
    if np.any(hi <= lo):
        return None
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    grids = np.ogrid[sl]
    distance2 = sum(
        (g * v + o - c) ** 2 for g, v, o, c in zip(grids, vs, offset, centre, strict=True)
    )
    return sl, distance2


def _mean_within(values, centre, radius, vs, offset) -> float:
    got = _ball_slices(values.shape, centre, radius, vs, offset)
    if got is None:
        return 0.0
    sl, distance2 = got
    inside = values[sl][distance2 <= radius**2]
    return float(inside.mean()) if inside.size else 0.0


def _paint_ball(out, painted, centre, radius, vs, offset, value) -> None:
    """``value`` on the unpainted voxels within ``radius`` µm of ``centre`` (µm)."""
    got = _ball_slices(out.shape, centre, radius, np.asarray(vs, dtype=float), offset)
    if got is None:
        return
    sl, distance2 = got
    out[sl][(distance2 <= radius**2) & (painted[sl] == UNLABELLED)] = value


def _paint_background_dabs(out, painted, probability, found, grid, cell_diameter, seed) -> None:
    """Dabs of 1.5 µm at random working voxels of low probability farther than a cell
    diameter from every soma ``found`` by either path (``grid``: working voxel size, its
    offset, input voxel size)."""
    from scipy import ndimage

    work_vs, offset, vs = grid
    seeds = np.ones(probability.shape, dtype=bool)
    index = np.round((found - offset) / work_vs).astype(int).reshape(-1, 3)
    index = index[np.all((index >= 0) & (index < probability.shape), axis=1)]
    seeds[tuple(index.T)] = False
    far = np.ones(probability.shape, dtype=bool)
    if len(index):
        far = ndimage.distance_transform_edt(seeds, sampling=work_vs) > cell_diameter
    candidates = np.argwhere(far & (probability < SELF_TRAINING_BACKGROUND))
    if len(candidates) == 0:
        return
    rng = np.random.default_rng(seed)
    picks = candidates[rng.choice(len(candidates), min(SELF_TRAINING_DABS, len(candidates)), False)]
    for pick in picks:
        centre = pick * work_vs + offset
        _paint_ball(out, painted, centre, 1.5, np.asarray(vs, dtype=float), np.zeros(3), BACKGROUND)
