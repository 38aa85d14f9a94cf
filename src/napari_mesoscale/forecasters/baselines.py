"""Baselines for one-step and free-running forecasts, with one interface.

Every baseline has ``fit(activity, *, stimulus=None) -> self`` (activity (T, N) of the training
block), ``predict(activity, steps=1, stimulus=None) -> (T, N)`` (row t predicted from row t-k
by running the model freely for k = ``steps`` frames; the first ``steps`` rows are NaN, exactly
like :meth:`napari_mesoscale.model.MesoscaleFit.predict`) and ``n_params``.

NaNs in the activity enter the inputs as the neuron's training mean and are left out of the
regression targets.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from napari_mesoscale.forecasters.per_neuron_ridge import solve_per_neuron_ridge
from napari_mesoscale.forecasters.training import adam_loop

__all__ = [
    "Baseline",
    "ConnectomeLinear",
    "GRUBaseline",
    "MeanBaseline",
    "NeuronAR2",
    "Persistence",
    "RidgeVAR",
    "default_baselines",
]


def _check(activity: Any, n: int | None = None) -> np.ndarray:
    x = np.asarray(activity, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"activity must be (T, N); got shape {x.shape}")
    if n is not None and x.shape[1] != n:
        raise ValueError(f"activity has {x.shape[1]} neurons; this baseline was fitted on {n}")
    if np.isinf(x).any():
        raise ValueError("activity contains inf")
    return x


def _stim(stimulus: Any, t: int, s: int | None) -> np.ndarray | None:
    if stimulus is None:
        if s:
            raise ValueError("this baseline was fitted with a stimulus; pass stimulus=")
        return None
    u = np.asarray(stimulus, dtype=np.float64)
    u = u[:, None] if u.ndim == 1 else u
    if u.shape[0] != t:
        raise ValueError(f"stimulus has {u.shape[0]} frames, activity {t}")
    return u


class Baseline:
    """Common interface: normalisation, NaN filling and k-step rollout from a one-step map."""

    name = "baseline"

    def __init__(self) -> None:
        self.mean_: np.ndarray | None = None
        self.std_: np.ndarray | None = None
        self.n_stim_: int = 0

    # subclasses implement _fit(z, u, finite) and _step(z, u) on normalised arrays
    def fit(self, activity: Any, *, stimulus: Any = None) -> Baseline:
        """Fit on the training block ``activity`` (T, N) (and ``stimulus`` (T, S))."""
        x = _check(activity)
        if x.shape[0] < 3:
            raise ValueError("need at least 3 frames to fit a baseline")
        self.mean_ = np.nanmean(x, axis=0)
        self.mean_ = np.where(np.isfinite(self.mean_), self.mean_, 0.0)
        std = np.nanstd(x, axis=0)
        self.std_ = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
        u = _stim(stimulus, x.shape[0], None)
        if u is not None:
            self.u_mean_, self.u_std_ = u.mean(0), np.where(u.std(0) > 1e-12, u.std(0), 1.0)
            u = (u - self.u_mean_) / self.u_std_
        self.n_stim_ = 0 if u is None else u.shape[1]
        finite = np.isfinite(x)
        z = np.where(finite, (x - self.mean_) / self.std_, 0.0)
        self._fit(z, u, finite)
        return self

    def _norm(self, activity: Any, stimulus: Any) -> tuple[np.ndarray, np.ndarray | None]:
        if self.mean_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call .fit() first")
        x = _check(activity, self.mean_.shape[0])
        z = np.where(np.isfinite(x), (x - self.mean_) / self.std_, 0.0)
        u = _stim(stimulus, x.shape[0], self.n_stim_)
        if u is not None and self.n_stim_:
            u = (u - self.u_mean_) / self.u_std_
        elif not self.n_stim_:
            u = None
        return z, u

    def predict(self, activity: Any, steps: int = 1, stimulus: Any = None) -> np.ndarray:
        """k-step prediction aligned with ``activity``; the first ``steps`` rows are NaN."""
        if steps < 1:
            raise ValueError(f"steps must be >= 1; got {steps}")
        z, u = self._norm(activity, stimulus)
        t = z.shape[0]
        out = np.full(z.shape, np.nan)
        if t > steps:
            out[steps:] = self._rollout(z, u, steps)
        return out * self.std_ + self.mean_

    def _rollout(self, z: np.ndarray, u: np.ndarray | None, steps: int) -> np.ndarray:
        t = z.shape[0]
        state = z[: t - steps]
        for k in range(steps):
            state = self._step(state, None if u is None else u[k : t - steps + k])
        return state

    def _fit(self, z: np.ndarray, u: np.ndarray | None, finite: np.ndarray) -> None:
        raise NotImplementedError

    def _step(self, z: np.ndarray, u: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError

    @property
    def n_params(self) -> int:
        return 0


class Persistence(Baseline):
    """x(t+1) = x(t)."""

    name = "persistence"

    def _fit(self, z, u, finite):  # noqa: D102
        pass

    def _step(self, z, u):  # noqa: D102
        return z


class MeanBaseline(Baseline):
    """x(t+1) = the neuron's training mean."""

    name = "mean"

    def _fit(self, z, u, finite):  # noqa: D102
        pass

    def _step(self, z, u):  # noqa: D102
        return np.zeros_like(z)

    @property
    def n_params(self) -> int:  # noqa: D102
        return 0 if self.mean_ is None else int(self.mean_.size)


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    gram = x.T @ x
    reg = alpha * x.shape[0] * np.eye(gram.shape[0])
    reg[-1, -1] = 0.0  # intercept (last column) unpenalised
    return np.linalg.solve(gram + reg, x.T @ y)


class RidgeVAR(Baseline):
    """Ridge vector autoregression x(t+1) = A x(t) + D u(t) + c.

    Dense A (N x N) when N <= ``max_dense``; otherwise low rank: A = diag(a) + C P^T with P the
    top ``rank`` principal directions of the training activity. The ridge strength is chosen
    from ``alphas`` on the last 20 % of the training block, then refitted on all of it.
    """

    name = "ridge_var"

    def __init__(
        self,
        alphas: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0),
        max_dense: int = 2000,
        rank: int = 100,
    ) -> None:
        super().__init__()
        self.alphas, self.max_dense, self.rank = alphas, max_dense, rank

    def _design(self, z: np.ndarray, u: np.ndarray | None) -> np.ndarray:
        cols = [z @ self.proj_ if self.proj_ is not None else z]
        if u is not None:
            cols.append(u)
        cols.append(np.ones((z.shape[0], 1)))
        return np.concatenate(cols, axis=1)

    def _fit(self, z, u, finite):  # noqa: D102
        n = z.shape[1]
        self.proj_ = None
        if n > self.max_dense:
            _, _, vt = np.linalg.svd(z - z.mean(0), full_matrices=False)
            self.proj_ = vt[: min(self.rank, vt.shape[0])].T  # (N, r)
        x = self._design(z[:-1], None if u is None else u[:-1])
        y = z[1:]
        w_ok = finite[1:]
        y = np.where(w_ok, y, 0.0)
        cut = int(0.8 * x.shape[0])
        best, best_alpha = math.inf, self.alphas[0]
        if cut >= 3 and x.shape[0] - cut >= 2 and len(self.alphas) > 1:
            for alpha in self.alphas:
                w = _ridge(x[:cut], y[:cut], alpha)
                err = (((x[cut:] @ w - y[cut:]) ** 2) * w_ok[cut:]).mean()
                if err < best:
                    best, best_alpha = err, alpha
        self.alpha_ = best_alpha
        self.w_ = _ridge(x, y, best_alpha)
        if self.proj_ is not None:  # per-neuron self term on the residual
            resid = y - x @ self.w_
            zz = z[:-1]
            self.self_ = (zz * resid).sum(0) / ((zz**2).sum(0) + best_alpha * zz.shape[0])
        else:
            self.self_ = None

    def _step(self, z, u):  # noqa: D102
        out = self._design(z, u) @ self.w_
        if self.self_ is not None:
            out = out + z * self.self_
        return out

    @property
    def n_params(self) -> int:  # noqa: D102
        extra = 0 if self.self_ is None else self.self_.size
        return int(self.w_.size + extra)


class NeuronAR2(Baseline):
    """Per-neuron AR(2): x_i(t+1) = a_i x_i(t) + b_i x_i(t-1) + d_i u(t) + c_i.

    One ridge regression per neuron on its own two last states, the stimulus and an intercept
    (no other neuron enters), all solved at once; the naive forecaster for second-order units
    such as damped oscillators. Row 0 stands in for its own previous frame (as in
    :meth:`napari_mesoscale.model.MesoscaleFit.predict` with ``input_lags=2``).
    """

    name = "ar2_neuron"

    def __init__(self, alpha: float = 1e-2) -> None:
        super().__init__()
        self.alpha = alpha

    @staticmethod
    def _design(cur: np.ndarray, prev: np.ndarray, u: np.ndarray | None) -> np.ndarray:
        cols = [cur[..., None], prev[..., None]]
        if u is not None:
            cols.append(np.broadcast_to(u[:, None, :], (*cur.shape, u.shape[1])))
        cols.append(np.ones((*cur.shape, 1)))
        return np.concatenate(cols, axis=-1)

    def _fit(self, z, u, finite):  # noqa: D102
        prev = np.concatenate([z[:1], z[:-2]])  # x(t-1) for t = 0..T-2
        design = self._design(z[:-1], prev, None if u is None else u[:-1])
        w_ok = finite[1:]
        y = np.where(w_ok, z[1:], 0.0)
        design = design * w_ok[..., None]  # frames whose target is missing drop out
        reg = self.alpha * design.shape[0] * np.eye(design.shape[-1])
        reg[-1, -1] = 1e-9  # intercept (last column) unpenalised
        self.coef_ = solve_per_neuron_ridge(design, y, reg)  # (N, p)

    def _rollout(self, z, u, steps):  # noqa: D102
        t = z.shape[0]
        cur = z[: t - steps]
        prev = np.concatenate([z[:1], z[: t - steps - 1]])
        for k in range(steps):
            uk = None if u is None else u[k : t - steps + k]
            new = np.einsum("tnp,np->tn", self._design(cur, prev, uk), self.coef_)
            cur, prev = new, cur
        return cur

    @property
    def n_params(self) -> int:  # noqa: D102
        return int(self.coef_.size)


class ConnectomeLinear(Baseline):
    """x_i(t+1) = sum over presynaptic k of i (and i itself) of a_ik x_k(t) + d_i u(t) + c_i.

    Nonzeros of A only where ``adjacency`` (pre -> post, any nonzero) or the diagonal is; one
    ridge regression per neuron, all solved at once (padded batched normal equations).
    """

    name = "connectome_linear"

    def __init__(self, adjacency: Any, alpha: float = 1e-2) -> None:
        super().__init__()
        adj = getattr(adjacency, "adjacency", adjacency)
        self.adjacency = sp.csr_matrix(adj)
        self.alpha = alpha

    def _fit(self, z, u, finite):  # noqa: D102
        from napari_mesoscale.model.initialise import _padded_in_edges

        n = z.shape[1]
        if self.adjacency.shape != (n, n):
            raise ValueError(f"adjacency has shape {self.adjacency.shape}; activity has N={n}")
        coo = sp.coo_matrix(self.adjacency)
        keep = coo.row != coo.col
        pre = np.concatenate([coo.row[keep], np.arange(n)])
        post = np.concatenate([coo.col[keep], np.arange(n)])
        pair = np.unique(post.astype(np.int64) * n + pre)
        pre, post = pair % n, pair // n
        table, tmask, _ = _padded_in_edges(np.stack([pre, post]), n)
        self.src_ = np.where(tmask, pre[np.clip(table, 0, None)], 0)
        self.mask_ = tmask
        s = 0 if u is None else u.shape[1]
        x0, y = z[:-1], np.where(finite[1:], z[1:], 0.0)
        k = self.src_.shape[1]
        p = k + s + 1
        self.coef_ = np.zeros((n, p))
        chunk = max(1, 20_000_000 // max(1, x0.shape[0] * p))
        for start in range(0, n, chunk):  # neuron chunks bound memory only
            sl = slice(start, min(n, start + chunk))
            design = self._design(x0, u[:-1] if u is not None else None, sl)
            gram = np.einsum("tmp,tmq->mpq", design, design)
            rhs = np.einsum("tmp,tm->mp", design, y[:, sl])
            reg = self.alpha * x0.shape[0] * np.eye(p)
            reg[-1, -1] = 1e-9
            self.coef_[sl] = np.linalg.solve(gram + reg[None], rhs[..., None])[..., 0]
        self.n_params_ = int(tmask.sum() + n * (s + 1))

    def _design(self, z: np.ndarray, u: np.ndarray | None, sl: slice) -> np.ndarray:
        neigh = z[:, self.src_[sl]] * self.mask_[sl][None]
        cols = [neigh]
        if u is not None:
            cols.append(np.broadcast_to(u[:, None, :], (z.shape[0], neigh.shape[1], u.shape[1])))
        cols.append(np.ones((z.shape[0], neigh.shape[1], 1)))
        return np.concatenate(cols, axis=-1)

    def _step(self, z, u):  # noqa: D102
        design = self._design(z, u, slice(None))
        return np.einsum("tnp,np->tn", design, self.coef_)

    @property
    def n_params(self) -> int:  # noqa: D102
        return self.n_params_


class _GRUNet(nn.Module):
    def __init__(self, n_in: int, n_out: int, hidden: int) -> None:
        super().__init__()
        self.gru = nn.GRU(n_in, hidden, batch_first=True)
        self.out = nn.Linear(hidden, n_out)


class GRUBaseline(Baseline):
    """A GRU over all neurons: h_t = GRU(h_{t-1}, [x_t, u_t]), x(t+1) = W h_t + b.

    Trained with Adam on windows of ``window`` frames (teacher forcing), early-stopped on the
    last 20 % of the training block (:func:`napari_mesoscale.forecasters.training.adam_loop`).
    Predictions run the GRU over the recording up to t-k and then freely for k steps.
    ``callback`` follows :mod:`napari_mesoscale.progress` (one report per epoch); a cancel
    keeps the best weights so far and sets ``cancelled_ = True``.
    """

    name = "gru"

    def __init__(
        self,
        hidden: int = 64,
        epochs: int = 60,
        window: int = 32,
        lr: float = 3e-3,
        seed: int = 0,
        patience: int = 10,
        callback: Any = None,
    ) -> None:
        super().__init__()
        self.hidden, self.epochs, self.window, self.lr = hidden, epochs, window, lr
        self.seed, self.patience, self.callback = seed, patience, callback
        self.cancelled_ = False

    def _inputs(self, z: np.ndarray, u: np.ndarray | None) -> torch.Tensor:
        x = z if u is None else np.concatenate([z, u], axis=1)
        return torch.as_tensor(x, dtype=torch.float32)

    def _fit(self, z, u, finite):  # noqa: D102
        g = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        n = z.shape[1]
        s = 0 if u is None else u.shape[1]
        self.net_ = _GRUNet(n + s, n, self.hidden)
        inp = self._inputs(z, u)
        tgt = torch.as_tensor(z, dtype=torch.float32)
        msk = torch.as_tensor(finite, dtype=torch.float32)
        t = z.shape[0]
        cut = max(2, int(0.8 * t))
        w = min(self.window, cut - 1)
        starts = np.arange(0, cut - w)

        def epoch_batches(_epoch: int) -> Iterator[torch.Tensor]:
            perm = starts[torch.randperm(len(starts), generator=g).numpy()]
            for b0 in range(0, len(perm), 32):
                yield torch.as_tensor(perm[b0 : b0 + 32])[:, None] + torch.arange(w + 1)

        def loss(idx: torch.Tensor) -> torch.Tensor:
            xb, yb, mb = inp[idx[:, :-1]], tgt[idx[:, 1:]], msk[idx[:, 1:]]
            h, _ = self.net_.gru(xb)
            return (((self.net_.out(h) - yb) ** 2) * mb).sum() / mb.sum().clamp(min=1)

        @torch.no_grad()
        def validate() -> float:
            h, _ = self.net_.gru(inp[None, : t - 1])
            pred = self.net_.out(h)[0, cut - 1 :]
            m = msk[cut:]
            return float((((pred - tgt[cut:]) ** 2) * m).sum() / m.sum().clamp(min=1))

        run = adam_loop(
            self.net_,
            epoch_batches,
            loss,
            epochs=self.epochs,
            lr=self.lr,
            validate=validate if t - cut >= 2 else None,
            patience=self.patience,
            callback=self.callback,
        )
        self.cancelled_ = run.cancelled

    @torch.no_grad()
    def _rollout(self, z, u, steps):  # noqa: D102
        t = z.shape[0]
        inp = self._inputs(z, u)
        h_all, _ = self.net_.gru(inp[None])  # (1, T, H): h_t after reading x_t
        h = h_all[0, : t - steps]  # states at every start s
        pred = self.net_.out(h)  # x(s+1)
        for k in range(1, steps):
            if u is None:
                step_in = pred
            else:
                uk = torch.as_tensor(u[k : t - steps + k], dtype=torch.float32)
                step_in = torch.cat([pred, uk], dim=1)
            _, h_new = self.net_.gru(step_in[:, None, :], h[None])
            h = h_new[0]
            pred = self.net_.out(h)
        return pred.numpy().astype(np.float64)

    @property
    def n_params(self) -> int:  # noqa: D102
        return int(sum(p.numel() for p in self.net_.parameters()))


def default_baselines(adjacency: Any = None, seed: int = 0) -> dict[str, Baseline]:
    """The reference forecasters the mesoscale model is compared with, ready to fit.

    Persistence, training mean, ridge VAR and a GRU; connectome-linear if ``adjacency`` is
    given.
    """
    out: dict[str, Baseline] = {
        "persistence": Persistence(),
        "mean": MeanBaseline(),
        "ridge_var": RidgeVAR(),
        "gru": GRUBaseline(seed=seed),
    }
    if adjacency is not None:
        out["connectome_linear"] = ConnectomeLinear(adjacency)
    return out
