"""A small LeNet on scikit-learn's bundled 8x8 digits: Dyer & Griffin 2022, scaled down.

The network (826 units, every one a "neuron" with a location (layer, family, x, y)):

=========== ============== ====== ==================================
layer       shape          units  connection to the previous layer
=========== ============== ====== ==================================
INPUT       (1, 8, 8)      64     --
CONVRAMP1   (6, 8, 8)      384    3x3 convolution (padding 1) + ramp
POOLING1    (6, 4, 4)      96     2x2 max pooling
CONVRAMP2   (12, 4, 4)     192    3x3 convolution (padding 1) + ramp
POOLING2    (12, 2, 2)     48     2x2 max pooling
LINEARRAMP  (32,)          32     fully connected + ramp
LINEARSOFT  (10,)          10     fully connected + softmax
=========== ============== ====== ==================================

It trains in a few seconds on 2 CPU threads (digits are bundled with scikit-learn: no
download). Stimulus sets follow the paper: GAUSSIAN (i.i.d. N(0, 1) pixels), IMPULSE (one
pixel of +-1e9 per image, two images per pixel) and DIGITS (held-out digit images, the
structured set, the paper's MNIST). :func:`run_reproduction` computes the features of each set
and their concatenation (CONCAT), localises the held-out half of the units with the classifier
bank and the Hungarian algorithm, and returns the per-layer RMS graph-distance error table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from napari_mesoscale.evaluate import EvaluationCancelled, correlation_eigenfeatures
from napari_mesoscale.progress import Progress
from napari_mesoscale.reproductions.localisation.localise import (
    layerwise_graph_error,
    localise_neurons,
)

LAYERS = ("INPUT", "CONVRAMP1", "POOLING1", "CONVRAMP2", "POOLING2", "LINEARRAMP", "LINEARSOFT")
_SHAPES = {
    "INPUT": (1, 8, 8),
    "CONVRAMP1": (6, 8, 8),
    "POOLING1": (6, 4, 4),
    "CONVRAMP2": (12, 4, 4),
    "POOLING2": (12, 2, 2),
    "LINEARRAMP": (32, 1, 1),
    "LINEARSOFT": (10, 1, 1),
}


def _build_net(seed: int):
    import torch
    from torch import nn

    torch.manual_seed(seed)

    class SmallLeNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
            self.conv2 = nn.Conv2d(6, 12, 3, padding=1)
            self.fc1 = nn.Linear(48, 32)
            self.fc2 = nn.Linear(32, 10)

        def forward(self, x, record: bool = False):
            acts = [x]
            h = torch.relu(self.conv1(x))
            acts.append(h)
            h = torch.max_pool2d(h, 2)
            acts.append(h)
            h = torch.relu(self.conv2(h))
            acts.append(h)
            h = torch.max_pool2d(h, 2)
            acts.append(h)
            h = torch.relu(self.fc1(h.flatten(1)))
            acts.append(h)
            logits = self.fc2(h)
            acts.append(torch.softmax(logits, dim=1))
            if record:
                return torch.cat([a.flatten(1) for a in acts], dim=1)
            return logits

    return SmallLeNet()


def train_lenet(
    *, seed: int = 0, epochs: int = 30, test_fraction: float = 0.33
) -> tuple[Any, float, np.ndarray]:
    """Train the small LeNet on scikit-learn's digits.

    Returns
    -------
    net : torch.nn.Module
    accuracy : float
        Accuracy on the held-out digits.
    held_out : ndarray (n, 1, 8, 8)
        Held-out digit images (scaled to [0, 1]), the DIGITS stimulus set.
    """
    import torch
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    te, tr = perm[:n_test], perm[n_test:]
    net = _build_net(seed)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x[tr]), torch.from_numpy(y[tr])
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(tr), generator=gen)
        for start in range(0, len(tr), 64):
            batch = order[start : start + 64]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(xt[batch]), yt[batch])
            loss.backward()
            opt.step()
    with torch.no_grad():
        pred = net(torch.from_numpy(x[te])).argmax(1).numpy()
    return net, float((pred == y[te]).mean()), x[te]


def unit_table() -> pd.DataFrame:
    """Location (layer, family, x, y) of every unit, in the order of recorded activations."""
    frames = []
    for layer in LAYERS:
        f, h, w = _SHAPES[layer]
        ff, yy, xx = np.meshgrid(np.arange(f), np.arange(h), np.arange(w), indexing="ij")
        frames.append(
            pd.DataFrame({"layer": layer, "family": ff.ravel(), "x": xx.ravel(), "y": yy.ravel()})
        )
    return pd.concat(frames, ignore_index=True)


def unit_graph(units: pd.DataFrame | None = None):
    """Undirected graph (scipy CSR) of the network's connections between units."""
    from scipy import sparse

    units = unit_table() if units is None else units
    offsets, start = {}, 0
    for layer in LAYERS:
        offsets[layer] = start
        start += int(np.prod(_SHAPES[layer]))
    n = start

    def index(layer, f, y, x):
        _, h, w = _SHAPES[layer]
        return offsets[layer] + (f * h + y) * w + x

    rows, cols = [], []

    def conv(src, dst, k):
        fs, hs, ws = _SHAPES[src]
        fd, hd, wd = _SHAPES[dst]
        r = k // 2
        for fo in range(fd):
            for yo in range(hd):
                for xo in range(wd):
                    for fi in range(fs):
                        for yi in range(max(0, yo - r), min(hs, yo + r + 1)):
                            for xi in range(max(0, xo - r), min(ws, xo + r + 1)):
                                rows.append(index(src, fi, yi, xi))
                                cols.append(index(dst, fo, yo, xo))

    def pool(src, dst):
        fs, hs, ws = _SHAPES[src]
        for f in range(fs):
            for y in range(hs):
                for x in range(ws):
                    rows.append(index(src, f, y, x))
                    cols.append(index(dst, f, y // 2, x // 2))

    def full(src, dst):
        a = offsets[src] + np.arange(int(np.prod(_SHAPES[src])))
        b = offsets[dst] + np.arange(int(np.prod(_SHAPES[dst])))
        aa, bb = np.meshgrid(a, b, indexing="ij")
        rows.extend(aa.ravel().tolist())
        cols.extend(bb.ravel().tolist())

    conv("INPUT", "CONVRAMP1", 3)
    pool("CONVRAMP1", "POOLING1")
    conv("POOLING1", "CONVRAMP2", 3)
    pool("CONVRAMP2", "POOLING2")
    full("POOLING2", "LINEARRAMP")
    full("LINEARRAMP", "LINEARSOFT")
    adj = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)).tocsr()
    return ((adj + adj.T) > 0).astype(np.int8)


def stimuli(kind: str, *, n_images: int = 2000, digits: np.ndarray | None = None, seed: int = 0):
    """Stimulus images (n, 1, 8, 8) of one kind: "GAUSSIAN", "IMPULSE" or "DIGITS"."""
    rng = np.random.default_rng(seed)
    if kind == "GAUSSIAN":
        return rng.standard_normal((n_images, 1, 8, 8))
    if kind == "IMPULSE":
        images = np.zeros((128, 1, 8, 8))
        for p in range(64):
            images[2 * p, 0, p // 8, p % 8] = 1e9
            images[2 * p + 1, 0, p // 8, p % 8] = -1e9
        return images
    if kind == "DIGITS":
        if digits is None:
            raise ValueError("DIGITS stimuli need the held-out digit images (digits=...).")
        return np.asarray(digits, dtype=np.float64)
    raise ValueError(f"unknown stimulus kind {kind!r}; use GAUSSIAN, IMPULSE or DIGITS.")


def record(net: Any, images: np.ndarray) -> np.ndarray:
    """Activations (n_images, 826) of every unit, computed in float64."""
    import torch

    net64 = net.double()
    with torch.no_grad():
        out = net64(torch.as_tensor(images, dtype=torch.float64), record=True).numpy()
    net.float()
    return out


def checkerboard_split(units: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The paper's "perfect" split: checkerboard in x, y per family; odd/even linear units."""
    linear = units["layer"].isin(["LINEARRAMP", "LINEARSOFT"]).to_numpy()
    parity = np.where(
        linear, units["family"].to_numpy() % 2, (units["x"] + units["y"]).to_numpy() % 2
    )
    return np.flatnonzero(parity == 0), np.flatnonzero(parity == 1)


def random_split(units: pd.DataFrame, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random half split stratified by layer."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for layer in LAYERS:
        idx = rng.permutation(np.flatnonzero(units["layer"].to_numpy() == layer))
        train.append(idx[: idx.size // 2])
        test.append(idx[idx.size // 2 :])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def run_reproduction(
    *,
    seed: int = 0,
    epochs: int = 30,
    n_gaussian: int = 2000,
    n_estimators: int = 100,
    n_eigenvectors: int = 16,
    n_moments: int = 2,
    split: str = "checkerboard",
    n_jobs: int | None = None,
    callback: Callable[[dict], Any] | None = None,
) -> dict[str, Any]:
    """Train the small LeNet, localise its units from GAUSSIAN/IMPULSE/DIGITS/CONCAT features.

    Parameters
    ----------
    seed : int
        Seed of training, stimuli, split (when random) and forests.
    epochs : int
        Training epochs on the digits.
    n_gaussian : int
        Number of GAUSSIAN images.
    n_estimators, n_eigenvectors, n_moments
        Localisation settings (paper: 16 eigenvectors, mean and standard deviation).
    split : {"checkerboard", "random"}
        Train/test split of the units (the paper's "perfect" split, or random per layer).
    n_jobs : int, optional
        Passed to scikit-learn.
    callback : callable, optional
        Progress callback.

    Returns
    -------
    dict
        ``table``: DataFrame with one row per layer plus MEAN and one column per feature set
        (RMS graph-distance error) and ``RANDOM`` (random-assignment baseline);
        ``exact``: fraction exactly placed per feature set; ``accuracy``: the network's digit
        accuracy; ``silent``: silent units per stimulus set; ``n_units``.
    """
    progress = Progress.wrap(callback, EvaluationCancelled)
    units = unit_table()
    net, accuracy, held_out = train_lenet(seed=seed, epochs=epochs)
    progress.report(0.2, "network trained")
    acts = {
        "GAUSSIAN": record(net, stimuli("GAUSSIAN", n_images=n_gaussian, seed=seed + 1)),
        "IMPULSE": record(net, stimuli("IMPULSE")),
        "DIGITS": record(net, stimuli("DIGITS", digits=held_out)),
    }
    silent = {k: int((a.std(0) == 0).sum()) for k, a in acts.items()}
    feats = {
        k: correlation_eigenfeatures(a, n_eigenvectors, n_moments=n_moments, method="dense")
        for k, a in acts.items()
    }
    feats["CONCAT"] = np.hstack([feats["GAUSSIAN"], feats["IMPULSE"], feats["DIGITS"]])
    if split == "checkerboard":
        train_idx, test_idx = checkerboard_split(units)
    elif split == "random":
        train_idx, test_idx = random_split(units, seed)
    else:
        raise ValueError(f"split must be 'checkerboard' or 'random'; got {split!r}.")
    table, exact = _error_table(
        units,
        feats,
        train_idx,
        test_idx,
        n_estimators=n_estimators,
        seed=seed,
        n_jobs=n_jobs,
        progress=progress.stage(0.2, 1.0),
    )
    return {
        "table": table,
        "exact": exact,
        "accuracy": accuracy,
        "silent": silent,
        "n_units": len(units),
        "split": split,
        "seed": seed,
    }


def _error_table(
    units: pd.DataFrame,
    feats: dict[str, np.ndarray],
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    *,
    n_estimators: int,
    seed: int,
    n_jobs: int | None,
    progress: Progress,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per-layer RMS graph-distance error and exact fraction of each feature set's localisation."""
    graph = unit_graph(units)
    columns = ["layer", "family", "x", "y"]
    labels_train = units.iloc[train_idx][columns].reset_index(drop=True)
    slots = units.iloc[test_idx][columns].reset_index(drop=True)
    table = None
    exact = {}
    for k, name in enumerate(["GAUSSIAN", "IMPULSE", "DIGITS", "CONCAT"]):
        res = localise_neurons(
            None,
            labels_train,
            train_idx,
            test_idx,
            slots=slots,
            features=feats[name],
            top="layer",
            n_estimators=n_estimators,
            seed=seed,
            n_jobs=n_jobs,
        )
        assigned_nodes = test_idx[res.slot_index]
        errors = layerwise_graph_error(
            graph, test_idx, assigned_nodes, units["layer"].to_numpy()[test_idx]
        )
        if table is None:
            table = errors[["layer", "n"]].copy()
            table["RANDOM"] = errors["random_rms"].to_numpy()
        table[name] = errors["rms_error"].to_numpy()
        exact[name] = float(errors["exact"].iloc[-1])
        progress.report((k + 1) / 4, f"localised with {name}")
    return table[["layer", "n", "GAUSSIAN", "IMPULSE", "DIGITS", "CONCAT", "RANDOM"]], exact


def markdown_table(table: pd.DataFrame) -> str:
    """The per-layer error table as GitHub markdown."""
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in table.iterrows():
        cells = [f"{v:.2f}" if isinstance(v, float) else str(v) for v in row.tolist()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
