"""``MesoscaleFit``: the fitted model, its domains and motifs, prediction, save and load."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from napari_mesoscale.io import atomic_path
from napari_mesoscale.io.torch_files import load_torch_file
from napari_mesoscale.model.config import FORMER_DEFAULTS, ModelConfig
from napari_mesoscale.model.core import (
    MesoscaleNet,
    both_finite,
    frames_per_pass,
    previous_frames,
)
from napari_mesoscale.model.observation import indicator_table, predict_observed

if TYPE_CHECKING:
    from napari_mesoscale.model.initial_model import InitialModel
    from napari_mesoscale.model.prepare import PreparedData
    from napari_mesoscale.model.training import TrainingState

FORMAT = "napari-mesoscale-fit"
FORMAT_VERSION = 1


def package_versions() -> dict[str, str]:
    """Versions of the packages a fit depends on (written beside every saved fit)."""
    import scipy
    import sklearn

    try:
        from napari_mesoscale import __version__ as ours
    except Exception:  # pragma: no cover
        ours = "unknown"
    out = {
        "napari_mesoscale": ours,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pandas": pd.__version__,
        "torch": torch.__version__,
        "scikit-learn": sklearn.__version__,
    }
    return {k: str(v) for k, v in out.items()}


def _sum_dtype(device: torch.device) -> torch.dtype:
    """Accumulate errors in float64 where the device has it (not Apple MPS)."""
    return torch.float32 if device.type == "mps" else torch.float64


@torch.no_grad()
def _pair_errors(
    net: MesoscaleNet,
    z: torch.Tensor,
    m: torch.Tensor,
    u: torch.Tensor | None,
    t0: int,
    t1: int,
    chunk: int = 32,
) -> torch.Tensor:
    """Mean one-step squared error of every candidate pair (N, Lm, B) over frames t0..t1.

    The domain context is computed with the current hard assignment. ``z``, ``m`` (finite
    mask, bool or 0/1) and ``u`` may live on the CPU: each pass moves its frames to the
    net's device. Passes hold at most :data:`~napari_mesoscale.model.core.SCORING_PAIR_FRAMES`
    evaluations, so scoring stays well below training's peak memory.
    """
    dev = net.cmask.device
    slots, pi = net.routed(mode="hard", routing="all")
    n, lm, b = pi.shape
    chunk = frames_per_pass(n, lm * b, chunk)
    num = torch.zeros(n, lm, b, dtype=_sum_dtype(dev), device=dev)
    den = torch.zeros(n, dtype=_sum_dtype(dev), device=dev)
    for s in range(t0, t1 - 1, chunk):
        e = min(t1 - 1, s + chunk)
        zs = z[s : e + 1].to(dev)
        us = None if u is None else u[s:e].to(dev)
        prev = _previous(net, z, s, e, dev)
        out, _ = net.evaluate(zs[:-1], us, pi, slots, prev)
        mk = both_finite(m, s, e, zs.dtype).to(dev)
        out.sub_(zs[1:, :, None, None]).square_().mul_(mk[..., None, None])
        num += out.sum(0, dtype=num.dtype)
        den += mk.sum(0, dtype=num.dtype)
        del out
    err = (num / den.clamp(min=1)[:, None, None]).float()
    return err.masked_fill(~net.cmask[:, :, None], float("inf")).cpu()


def _previous(
    net: MesoscaleNet, z: torch.Tensor, s: int, e: int, dev: torch.device
) -> torch.Tensor | None:
    """x[t-1] of frames s..e on ``dev`` when the net has ``input_lags=2``, else None."""
    return previous_frames(z, s, e).to(dev) if net.input_lags == 2 else None


class _CpuTensors:
    """The normalised recording as CPU tensors (z, finite mask, stimulus) and its float32 z.

    ``m`` is the finite mask as bool (no (T, N) float copy: 2 GiB at zebrafish scale);
    scoring converts one pass at a time.
    """

    def __init__(self, z: np.ndarray, finite: np.ndarray, u: np.ndarray | None) -> None:
        self.z_np = z
        self.z = torch.as_tensor(z)
        self.m = torch.as_tensor(finite)
        self.u = None if u is None else torch.as_tensor(u)

    @classmethod
    def of(cls, data: PreparedData) -> _CpuTensors:
        return cls(data.z32, data.finite, data.u32)


def _reassign_to_best_pair(net: MesoscaleNet, t: _CpuTensors, t0: int, t1: int) -> None:
    """Move every neuron to the pair with the lowest one-step error on frames t0..t1."""
    err = _pair_errors(net, t.z, t.m, t.u, t0, t1).to(net.logits.device)
    n = err.shape[0]
    flat = err.reshape(n, -1).argmin(-1)
    with torch.no_grad():
        onehot = torch.zeros_like(net.logits).reshape(n, -1)
        onehot[torch.arange(n, device=onehot.device), flat] = 10.0
        net.logits.copy_(onehot.reshape(net.logits.shape))
        net.field_logits.zero_()


def _confidence(
    net: MesoscaleNet, t: _CpuTensors, blocks: dict, filt: np.ndarray, n_filters: int
) -> np.ndarray:
    """1 - error with the chosen motif / error with the best other one (validation block)."""
    n = filt.shape[0]
    if n_filters <= 1:
        return np.ones(n)
    v0, v1 = blocks["val"]
    c0, c1 = (v0, v1) if v1 - v0 >= 2 else blocks["train"]
    err = _pair_errors(net, t.z, t.m, t.u, c0, c1)  # (N, Lm, B)
    per_motif = err.min(dim=1).values.numpy()  # (N, B)
    chosen = per_motif[np.arange(n), filt]
    others = per_motif.copy()
    others[np.arange(n), filt] = np.inf
    second = others.min(axis=1)
    conf = np.clip(1.0 - chosen / np.maximum(second, 1e-12), 0.0, 1.0)
    return np.where(np.isfinite(conf), conf, 0.0)


@torch.no_grad()
def _block_errors(
    net: MesoscaleNet, t: _CpuTensors, a: int, b: int, chunk: int = 64
) -> tuple[np.ndarray, float]:
    """Held-out hard one-step errors per neuron and overall (normalised units), frames a..b.

    Frames are predicted a bounded number at a time (:func:`frames_per_pass`), on the net's
    device, so that memory stays bounded for large N.
    """
    n = t.z.shape[1]
    if b - a < 2:
        return np.full(n, np.nan), float("nan")
    dev = net.cmask.device
    squared = torch.zeros(n, dtype=_sum_dtype(dev), device=dev)
    counted = torch.zeros(n, dtype=_sum_dtype(dev), device=dev)
    chunk = frames_per_pass(n, net.n_filters, chunk)
    for s in range(a, b - 1, chunk):
        e = min(b - 1, s + chunk)
        zs = t.z[s : e + 1].to(dev)
        prev = _previous(net, t.z, s, e, dev)
        pred = net.predict_hard(zs[:-1], None if t.u is None else t.u[s:e].to(dev), prev)
        mk = both_finite(t.m, s, e, zs.dtype).to(dev)
        squared += ((pred - zs[1:]) ** 2 * mk).sum(0, dtype=squared.dtype)
        counted += mk.sum(0, dtype=squared.dtype)
    squared, counted = squared.cpu().numpy(), counted.cpu().numpy()
    per = squared / np.maximum(counted, 1)
    return per, float(squared.sum() / max(counted.sum(), 1))


def _domain_table(
    labels: dict[str, np.ndarray], positions: np.ndarray, local: np.ndarray, conf: np.ndarray
) -> dict[str, list]:
    """One row per domain: field, motif, size, centre (µm), local loss and confidence."""
    domain, field, filt = labels["domain"], labels["field"], labels["filter"]
    rows = []
    for d in np.unique(domain):  # one row per domain (table assembly, not the model step)
        members = domain == d
        i0 = int(np.flatnonzero(members)[0])
        c = positions[members].mean(0)
        rows.append(
            {
                "domain": int(d),
                "field": int(field[i0]),
                "motif": int(filt[i0]),
                "size": int(members.sum()),
                "center_z": float(c[0]),
                "center_y": float(c[1]),
                "center_x": float(c[2]),
                "local_loss": float(np.nanmean(local[members])),
                "confidence": float(conf[members].mean()),
            }
        )
    return pd.DataFrame(rows).to_dict(orient="list")


def _filter_table(net: MesoscaleNet, filt: np.ndarray, n_filters: int) -> dict[str, list]:
    desc = net.bank.describe()
    usage = np.bincount(filt, minlength=n_filters)
    return {
        "filter": [d_["filter"] for d_ in desc],
        "type": [d_["type"] for d_ in desc],
        "usage": usage.tolist(),
        "complexity": [d_["complexity"] for d_ in desc],
        "layers": [json.dumps(d_["layers"]) for d_ in desc],
    }


def _normalisation_payload(data: PreparedData) -> dict[str, Any]:
    return {
        "mean": data.mean.tolist(),
        "std": data.std.tolist(),
        "stim_mean": None if data.stim_mean is None else data.stim_mean.tolist(),
        "stim_std": None if data.stim_std is None else data.stim_std.tolist(),
        "positions": data.positions.tolist(),
    }

# what a saved fit must hold for MesoscaleFit to rebuild its network and tables
_REQUIRED_KEYS = ("config", "state", "net_args", "mean", "std", "domains", "blocks", "scores")


class MesoscaleFit:
    """A fitted mesoscale model.

    Attributes
    ----------
    domain_labels : ndarray of int64 (N,)
        Functional domain of every neuron (a (field, filter) pair, numbered 0..D-1).
    motif_labels : ndarray of int64 (N,)
        Motif (basis filter) of every neuron.
    field_labels : ndarray of int64 (N,)
        Receptive field (grid location) of every neuron's domain.
    confidence : ndarray (N,)
        1 - (error with the chosen motif) / (error with the best other motif), on the
        validation block, in [0, 1]; 0 means another motif explains the neuron as well.
    domains : pandas.DataFrame
        One row per domain: domain, field, motif, size, centre (µm) and local loss (test
        one-step MSE of its members, normalised units).
    filters : pandas.DataFrame
        One row per filter: usage (neurons), complexity and learned configuration.
    history : pandas.DataFrame
        Loss curves, one row per epoch.
    scores : dict
        Held-out one-step MSE (normalised units) on validation and test blocks.
    config : ModelConfig
        The configuration the fit ran with (``input_lags="auto"`` resolved to its integer).
    lag_probe : dict or None
        With ``input_lags="auto"``: what the probe measured and picked
        (:class:`napari_mesoscale.model.lag_probe.LagProbe` as a dict); else None.
    motif_choice : dict or None
        With ``motif_choice="split_half"``: which start the fit took (``chosen``:
        ``"initial"`` or ``"discovery"``) and both split-half agreements
        (:func:`napari_mesoscale.model.split_half_choice.choose_motif_start`); else None.
    assignment_choice : dict or None
        With ``activity_assignment="validated"``: which of the two fits was kept
        (``chosen``: ``"trained"`` or ``"motifs"``) and both validation errors
        (:func:`napari_mesoscale.model.validated_assignment.choose_assignment`); with
        ``"restored"``: how many neurons training moved off their initial filter and how many
        got it back, with the validation errors before and after
        (:func:`napari_mesoscale.model.restored_assignment.restore_initial_motifs`); else None.
    stopped : str
        ``"completed"``, ``"early_stopping"`` or ``"cancelled"``.
    cancelled : bool
        Whether the progress callback stopped the fit (the result is then partial).
    """

    def __init__(self, payload: dict) -> None:
        self._p = payload
        # a field missing from an older file had its former default when the file was made
        self.config = ModelConfig.from_dict({**FORMER_DEFAULTS, **payload["config"]})
        self.seed = int(payload["seed"])
        self.domain_labels = np.asarray(payload["domain_labels"], dtype=np.int64)
        self.motif_labels = np.asarray(payload["motif_labels"], dtype=np.int64)
        self.field_labels = np.asarray(payload["field_labels"], dtype=np.int64)
        self.confidence = np.asarray(payload["confidence"], dtype=float)
        self.domains = pd.DataFrame(payload["domains"])
        self.filters = pd.DataFrame(payload["filters"])
        self.history = pd.DataFrame(payload["history"])
        self.scores = dict(payload["scores"])
        self.blocks = {k: tuple(v) for k, v in payload["blocks"].items()}
        self.stopped = payload["stopped"]
        self.versions = dict(payload["versions"])
        self.n_params = int(payload["n_params"])
        self.init_groups = (
            None if payload.get("init_groups") is None else np.asarray(payload["init_groups"])
        )
        self._net: MesoscaleNet | None = None
        self.indicator = indicator_table(payload.get("observation"))
        #: What ``input_lags="auto"``'s probe measured and picked (None: input_lags was given).
        self.lag_probe: dict | None = payload.get("lag_probe")
        #: With ``motif_choice="split_half"``: the start chosen and both split-half agreements.
        self.motif_choice: dict | None = payload.get("motif_choice")
        #: Which fit ``activity_assignment="validated"`` kept, and why; what ``"restored"``
        #: gave back (else None).
        self.assignment_choice: dict | None = payload.get("assignment_choice")

    @property
    def cancelled(self) -> bool:
        """Whether the progress callback stopped the fit (``stopped == "cancelled"``)."""
        return self.stopped == "cancelled"

    # ------------------------------------------------------------------ construction
    @classmethod
    def _from_training(
        cls,
        init: InitialModel,
        data: PreparedData,
        training: TrainingState,
        *,
        seed: int,
        versions: dict,
        device: str,
        compute_device: torch.device | str | None = None,
    ) -> MesoscaleFit:
        """Package a trained network: labels, confidence, held-out scores, tables.

        The scores are computed on ``compute_device`` (default: where the net is; the fit
        passes its training device, so a GPU fit scores on the GPU), the recording streamed
        to it a bounded number of frames at a time; the net ends on the CPU.
        """
        net, config = init.net, init.config
        net.eval()
        if compute_device is not None:
            net.to(compute_device)
        tensors = _CpuTensors.of(data)
        if config.final_reassign:
            _reassign_to_best_pair(net, tensors, *data.blocks["train"])
        _, field, filt = net.choice()
        field, filt = field.cpu().numpy(), filt.cpu().numpy()
        pair = field.astype(np.int64) * config.n_filters + filt
        _, domain = np.unique(pair, return_inverse=True)
        conf = _confidence(net, tensors, data.blocks, filt, config.n_filters)
        per_test, test_mse = _block_errors(net, tensors, *data.blocks["test"])
        per_val, val_mse = _block_errors(net, tensors, *data.blocks["val"])
        net.to("cpu")
        local = per_test if np.isfinite(per_test).any() else per_val
        labels = {"domain": domain, "field": field, "filter": filt}
        payload = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": config.to_dict(),
            "seed": int(seed),
            "state": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
            "net_args": {"n_fields": int(init.grid.n_fields), "n_stimulus": int(net.n_stimulus)},
            "candidates": np.asarray(init.grid.candidates).tolist(),
            "centers": np.asarray(init.grid.centers).tolist(),
            **_normalisation_payload(data),
            "domain_labels": domain.tolist(),
            "motif_labels": filt.tolist(),
            "field_labels": field.tolist(),
            "confidence": conf.tolist(),
            "domains": _domain_table(labels, data.positions, local, conf),
            "filters": _filter_table(net, filt, config.n_filters),
            "history": pd.DataFrame(training.history).to_dict(orient="list"),
            "scores": {"val_mse": val_mse, "test_mse": test_mse},
            "blocks": {k: list(v) for k, v in data.blocks.items()},
            "stopped": training.stopped,
            "versions": versions,
            "n_params": net.n_trainable(),
            "init_groups": None
            if init.init_groups is None
            else np.asarray(init.init_groups).tolist(),
            "device": device,
            "n_edges": int(init.edges.shape[1]),
            "uses_connectome": init.edge_weight_struct is not None,
            # linear_skip: the untrained (linear) state's validation loss, the first candidate
            # of the best state (None without the linear path)
            "start_val_loss": training.start_val,
        }
        fit = cls(payload)
        fit._net = net
        return fit

    # ------------------------------------------------------------------ the network
    @property
    def n_neurons(self) -> int:
        return int(self.motif_labels.shape[0])

    @property
    def net(self) -> MesoscaleNet:
        """The trained torch module (CPU), rebuilt from the saved state when loaded."""
        if self._net is None:
            st = self._p["state"]
            cfg = self.config
            net = MesoscaleNet(
                st["cand"].clone().masked_fill(~st["cmask"], -1),
                st["relpos"],
                self._p["net_args"]["n_fields"],
                torch.stack([st["pre"], st["post"]]),
                n_filters=cfg.n_filters,
                n_stimulus=self._p["net_args"]["n_stimulus"],
                hidden=cfg.hidden,
                depth=cfg.depth,
                activations=tuple(cfg.activations),
                shared_field_logits=cfg.shared_field_logits,
                population_filters=cfg.population_filters,
                input_lags=cfg.input_lags,
                linear_skip=cfg.linear_skip != "none",
                neuron_gains=cfg.neuron_gains,
            )
            net.load_state_dict(st)
            net.eval()
            self._net = net
        return self._net

    # ------------------------------------------------------------------ prediction
    def _normalise(self, activity: Any, stimulus: Any) -> tuple[torch.Tensor, Any]:
        x = np.asarray(activity, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_neurons:
            raise ValueError(
                f"activity must be (T, {self.n_neurons}) like the fitted recording; got {x.shape}"
            )
        mean, std = np.asarray(self._p["mean"]), np.asarray(self._p["std"])
        z = np.where(np.isfinite(x), (x - mean) / std, 0.0).astype(np.float32)
        u = None
        if self._p["stim_mean"] is not None:
            if stimulus is None:
                raise ValueError("this model was fitted with a stimulus; pass stimulus=(T, S)")
            s = np.asarray(stimulus, dtype=np.float64)
            s = s[:, None] if s.ndim == 1 else s
            if s.shape[0] != x.shape[0]:
                raise ValueError(f"stimulus has {s.shape[0]} frames, activity {x.shape[0]}")
            u = torch.as_tensor(
                ((s - np.asarray(self._p["stim_mean"])) / np.asarray(self._p["stim_std"])).astype(
                    np.float32
                )
            )
        return torch.as_tensor(z), u

    def predict(
        self, activity: Any, steps: int = 1, stimulus: Any = None, chunk: int = 256
    ) -> np.ndarray:
        """Predict activity ``steps`` frames ahead (one-step or free-running).

        A fit with ``observation="calcium"`` takes and predicts dF/F (the latent run by
        :meth:`predict_latent`, read out through ``fit.indicator``); see
        :mod:`napari_mesoscale.model.observation`.
        """
        if steps < 1:
            raise ValueError(f"steps must be >= 1; got {steps}")
        if self._p.get("observation") is not None:
            return predict_observed(self, activity, steps, stimulus, chunk)
        return self.predict_latent(activity, steps, stimulus, chunk)

    @torch.no_grad()
    def predict_latent(
        self, activity: Any, steps: int = 1, stimulus: Any = None, chunk: int = 256
    ) -> np.ndarray:
        """Predict what the filters evolve ``steps`` frames ahead (one-step or free-running).

        Parameters
        ----------
        activity : array_like (T, N)
            Recorded activity (NaN allowed: enters as the neuron's mean).
        steps : int
            Horizon k. Row t of the result is predicted from row t-k of ``activity`` by running
            the model freely for k steps (k = 1 is the one-step prediction). With
            ``input_lags=2`` row t-k-1 enters as well (row 0 stands in for its own
            predecessor) and the run carries its own previous prediction.
        stimulus : array_like (T, S), optional
            Required when the model was fitted with a stimulus.

        Returns
        -------
        ndarray (T, N)
            Predictions aligned with ``activity``, in its units; the first ``steps`` rows are
            NaN (nothing to predict them from).
        """
        if steps < 1:
            raise ValueError(f"steps must be >= 1; got {steps}")
        z, u = self._normalise(activity, stimulus)
        t = z.shape[0]
        out = np.full((t, self.n_neurons), np.nan)
        net = self.net
        chunk = frames_per_pass(self.n_neurons, self.config.n_filters, chunk)
        for s in range(0, max(0, t - steps), chunk):
            e = min(t - steps, s + chunk)
            state = z[s:e]
            previous = previous_frames(z, s, e) if net.input_lags == 2 else None
            for k in range(steps):
                u_k = None if u is None else u[s + k : e + k]
                previous, state = state, net.predict_hard(state, u_k, previous)
            out[s + steps : e + steps] = state.numpy()
        mean, std = np.asarray(self._p["mean"]), np.asarray(self._p["std"])
        return out * std + mean

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | os.PathLike) -> Path:
        """Write the fit to ``path`` (a ``.pt`` file) atomically, with a JSON sidecar.

        The sidecar ``<path>.json`` holds the format version, parameters, seed, package
        versions, scores and the per-domain table, readable without torch.
        """
        path = Path(path)
        if path.suffix == "":
            path = path.with_suffix(".pt")
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as temporary:
            torch.save(self._p, temporary)
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": self._p["config"],
            "seed": self.seed,
            "versions": self.versions,
            "scores": self.scores,
            "stopped": self.stopped,
            "n_params": self.n_params,
            "n_neurons": self.n_neurons,
            "n_domains": int(self.domains.shape[0]),
            "device": self._p.get("device"),
            "lag_probe": self._p.get("lag_probe"),
            "assignment_choice": self._p.get("assignment_choice"),
            "motif_choice": self._p.get("motif_choice"),
        }
        side = path.with_suffix(path.suffix + ".json")
        with atomic_path(side) as temporary:
            temporary.write_text(json.dumps(meta, indent=2, default=float))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> MesoscaleFit:
        """Read a fit written by :meth:`save`."""
        path = Path(path)
        if not path.exists() and path.with_suffix(".pt").exists():
            path = path.with_suffix(".pt")
        payload = load_torch_file(path, "saved fit")
        if payload.get("format") != FORMAT:
            raise ValueError(f"{path} is not a napari-mesoscale fit")
        missing = [key for key in _REQUIRED_KEYS if key not in payload]
        if missing:
            raise ValueError(f"{path} is not a complete napari-mesoscale fit: no {missing}")
        if int(payload.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(
                f"{path} was written by a newer napari-mesoscale (format "
                f"{payload['format_version']} > {FORMAT_VERSION}); upgrade to read it."
            )
        return cls(payload)

    def __repr__(self) -> str:
        return (
            f"MesoscaleFit(N={self.n_neurons}, filters={self.config.n_filters}, "
            f"domains={self.domains.shape[0]}, test_mse={self.scores.get('test_mse'):.4g}, "
            f"stopped={self.stopped!r})"
        )
