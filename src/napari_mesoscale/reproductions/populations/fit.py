"""Maximum-likelihood (or MAP) fitting of the mesoscopic population model (René et al. 2020).

Adam on the binomial log-likelihood in float64, with per-component gradient clipping
(the gradient is rescaled so that no component exceeds ``grad_clip``, algorithm 2 of the
seed), sequential minibatches with a short burn-in, and several restarts from different
initial values, keeping the one with the highest log-likelihood on the whole recording.
Positive parameters (time constants, ``c``, ``delta_u``, ``J_theta``) are optimised in log
space; weights and potentials directly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from napari_mesoscale.progress import Cancelled, Progress
from napari_mesoscale.reproductions.populations.mesoscopic import (
    _POSITIVE,
    DTYPE,
    FITTABLE,
    MesoscopicModel,
)
from napari_mesoscale.reproductions.populations.microscopic import (
    GIFParams,
    PopulationCancelled,
    two_population_params,
)

__all__ = ["MesoscopicFit", "fit_mesoscopic", "log_prior", "MesoscopicBaseline"]


def log_prior(name: str, value: torch.Tensor) -> torch.Tensor:
    """Log density (up to a constant) of the seed's weak priors (Table 7) for one parameter.

    ``w ~ N(0, 4^2)``, ``log10 tau_m ~ N(-2, 2^2)``, ``u_th ~ N(15, 10^2)``,
    ``u_r ~ N(0, 10^2)``, ``c ~ Gamma(2, 5)``, ``delta_u ~ Gamma(3, 1.5)``,
    ``log10 tau_s ~ N(-3, 3^2)``, ``J_theta ~ Gamma(2, 0.5)``, ``log10 tau_theta ~ N(-1, 5^2)``
    (Gamma with shape and scale). Parameters without a prior contribute 0.
    """

    def normal(x: torch.Tensor, mu: float, sd: float) -> torch.Tensor:
        return (-0.5 * ((x - mu) / sd) ** 2).sum()

    def gamma(x: torch.Tensor, k: float, theta: float) -> torch.Tensor:
        x = x.clamp_min(1e-12)
        return ((k - 1) * torch.log(x) - x / theta).sum()

    v = value
    if name == "w":
        return normal(v, 0.0, 4.0)
    if name == "tau_m":
        return normal(torch.log10(v), -2.0, 2.0)
    if name == "u_th":
        return normal(v, 15.0, 10.0)
    if name == "u_r":
        return normal(v, 0.0, 10.0)
    if name == "c":
        return gamma(v, 2.0, 5.0)
    if name == "delta_u":
        return gamma(v, 3.0, 1.5)
    if name == "tau_s":
        return normal(torch.log10(v), -3.0, 3.0)
    if name == "J_theta":
        return gamma(v[v > 0], 2.0, 0.5) if bool((v > 0).any()) else v.sum() * 0
    if name == "tau_theta":
        return normal(torch.log10(v), -1.0, 5.0)
    return v.sum() * 0


def _sample_prior(name: str, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    if name == "w":
        return rng.normal(0.0, 4.0, shape)
    if name == "tau_m":
        return 10 ** np.clip(rng.normal(-2.0, 0.5, shape), -3, -1)
    if name == "c":
        return rng.gamma(2.0, 5.0, shape)
    if name == "delta_u":
        return rng.gamma(3.0, 1.5, shape)
    if name == "tau_s":
        return 10 ** np.clip(rng.normal(-2.5, 0.5, shape), -3.5, -1.5)
    if name == "J_theta":
        return rng.gamma(2.0, 0.5, shape)
    if name == "tau_theta":
        return 10 ** np.clip(rng.normal(-0.5, 0.5, shape), -2, 1)
    if name == "u_th":
        return rng.normal(15.0, 10.0, shape)
    if name == "u_r":
        return rng.normal(0.0, 10.0, shape)
    raise ValueError(f"no prior to sample {name!r} from; use init='perturb'.")


@dataclass
class MesoscopicFit:
    """Result of :func:`fit_mesoscopic`.

    Attributes
    ----------
    params : GIFParams
        Parameters of the best restart (the fitted ones replaced).
    fitted : tuple of str
        Names of the fitted parameters.
    log_likelihood : float
        Binomial log-likelihood of the best parameters on the scored part of the data.
    restarts : list of dict
        Per restart: ``init``, ``final`` (dicts of arrays), ``log_likelihood``, ``trace``
        (loss per iteration) and ``seconds``.
    dt : float
    K : int
        Number of refractory age bins of the model.
    score_start : int
        First step scored (earlier ones are burn-in).
    stderr : dict of ndarray
        Standard errors from the inverse Fisher information (when polished).
    cancelled : bool
        The progress callback stopped the fit: the best restart so far, unpolished if the
        cancel came before or during the polish.
    """

    params: GIFParams
    fitted: tuple[str, ...]
    log_likelihood: float
    restarts: list[dict] = field(default_factory=list)
    dt: float = 1e-3
    K: int = 0
    score_start: int = 0
    stderr: dict[str, np.ndarray] = field(default_factory=dict)
    cancelled: bool = False

    @property
    def model(self) -> MesoscopicModel:
        """The fitted :class:`MesoscopicModel`."""
        return MesoscopicModel(self.params, self.dt, K=self.K)

    def value(self, name: str) -> np.ndarray:
        """Fitted value of one parameter."""
        return np.asarray(getattr(self.params, name))

    def relative_error(self, truth: GIFParams, name: str = "w") -> np.ndarray:
        """``|fit - truth| / |truth|`` elementwise for one parameter."""
        t = np.asarray(getattr(truth, name), dtype=float)
        return np.abs(self.value(name) - t) / np.abs(t)


def _check_fit_args(fit: Sequence[str], params: GIFParams) -> tuple[str, ...]:
    names = tuple(fit)
    if not names:
        raise ValueError("fit must name at least one parameter, e.g. fit=('w',).")
    for n in names:
        if n not in FITTABLE:
            raise ValueError(f"cannot fit {n!r}; choose from {FITTABLE}.")
    return names


def fit_mesoscopic(
    activity_counts: Any,
    input: Any = None,
    *,
    params: GIFParams | None = None,
    dt: float = 1e-3,
    fit: Sequence[str] = ("w",),
    K: int | None = None,
    n_restarts: int = 3,
    n_iter: int = 300,
    lr: float = 0.01,
    lr_final: float | None = None,
    betas: tuple[float, float] = (0.9, 0.999),
    grad_clip: float = 100.0,
    batch_steps: int = 1000,
    burnin_steps: int = 300,
    data_burnin_steps: int | None = None,
    init: str = "perturb",
    init_spread: float = 0.3,
    prior: bool = False,
    polish_steps: int = 4,
    seed: int = 0,
    callback: Callable[[dict], Any] | None = None,
) -> MesoscopicFit:
    """Fit mesoscopic-model parameters to population spike counts.

    Parameters
    ----------
    activity_counts : array-like of int, shape (T, M)
        Spikes per population and step (``A * N * dt``).
    input : array-like, shape (T, M) or (M,), optional
        External input (mA) that drove the recording.
    params : GIFParams, optional
        Template: all parameters not fitted are held at these values; fitted ones start
        from them (``init="given"``), around them (``"perturb"``) or from the prior
        (``"prior"``). Default :func:`two_population_params`.
    dt : float
        Step of the counts (s).
    fit : sequence of str
        Parameters to fit (René et al. 2020 fit ``w``, ``tau_m``, ``c``, ``delta_u``, ``tau_s``,
        ``J_theta``, ``tau_theta``; ``u_rest``/``u_th`` and ``delta_u`` are degenerate
        together and should not be fitted jointly).
    K : int, optional
        Refractory age bins; default :func:`~.mesoscopic.history_length` (696 for the
        two-population model, whose E adaptation lasts 1 s). Cost grows about as K^2 per
        minibatch: on one CPU core, likelihood + gradient of a 1 s batch takes ~1.7 s at
        K=696 and ~0.25 s at K=100, a full pass over 10 s ~25 s vs ~2.4 s
        (benchmarks/populations.py); K=100 changes the model's mean rates by < 1 %.
    n_restarts, n_iter : int
        Number of independent fits and Adam iterations per fit.
    lr, lr_final, betas : float
        Adam learning rate (decayed geometrically to ``lr_final`` if given) and betas.
    grad_clip : float
        Largest allowed gradient component; larger gradients are rescaled as a whole.
    batch_steps, burnin_steps : int
        Minibatch length and its burn-in (steps); batches run sequentially through the
        data.
    data_burnin_steps : int, optional
        Steps at the start of the data never scored (the model starts silent); default
        ``K + burnin_steps``.
    init : {"perturb", "prior", "given"}
    init_spread : float
        Relative spread of ``"perturb"`` initial values (uniform in ``+-init_spread``).
    prior : bool
        Maximise the posterior with the seed's weak priors instead of the likelihood.
    polish_steps : int
        After Adam, this many Fisher-scoring steps on the whole recording for the best
        restart (an addition to the seed's method: the weights lie on strongly correlated
        ridges, r ~ -0.93, along which minibatch Adam creeps). Gradient and Fisher
        information come from finite differences of the expected counts (forward passes
        only); a step is kept only if it raises the log-likelihood. The inverse Fisher
        information gives the reported standard errors. 0 turns it off.
    seed : int
    callback : callable, optional
        Progress protocol (:mod:`napari_mesoscale.progress`), called every iteration with
        ``fraction``, ``restart``, ``iteration``, ``n_iter``, ``loss`` and ``values``, and
        every polish step with ``polish_step`` and ``log_likelihood``. Returning ``False`` or
        raising a ``Cancelled`` stops the fit: the best result so far is returned with
        ``cancelled=True``.

    Returns
    -------
    MesoscopicFit
    """
    template = two_population_params() if params is None else params
    if not isinstance(template, GIFParams):
        raise ValueError("params must be a GIFParams.")
    names = _check_fit_args(fit, template)
    model = MesoscopicModel(template, dt, K=K)
    counts = model._check_counts(activity_counts)
    T = counts.shape[0]
    I_ext, _ = model._input_array(input, T)
    if n_restarts < 1 or n_iter < 0:
        raise ValueError("n_restarts must be >= 1 and n_iter >= 0.")
    if init not in ("perturb", "prior", "given"):
        raise ValueError(f"init must be 'perturb', 'prior' or 'given', got {init!r}.")
    d_burn = model.K + burnin_steps if data_burnin_steps is None else int(data_burnin_steps)
    if d_burn < 0:
        raise ValueError("data_burnin_steps must be >= 0.")
    batch_steps = int(min(batch_steps, T - d_burn))
    if batch_steps < 10:
        raise ValueError(
            f"the recording ({T} steps) is too short for a burn-in of {d_burn} steps; "
            "give more data or a smaller data_burnin_steps / K."
        )
    rng = np.random.default_rng(seed)
    n_scored = T - d_burn

    def to_free(name: str, value: np.ndarray) -> torch.Tensor:
        v = torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=DTYPE)
        if name in _POSITIVE:
            v = torch.log(v.clamp_min(1e-12))
        return v

    def from_free(name: str, free: torch.Tensor) -> torch.Tensor:
        return torch.exp(free) if name in _POSITIVE else free

    def full_ll(values: dict[str, torch.Tensor]) -> float:
        with torch.no_grad():
            return float(
                model.log_likelihood(
                    counts, I_ext, start=d_burn, stop=T, init_at=0, overrides=values
                )
            )

    starts = np.arange(d_burn, T - batch_steps + 1, batch_steps)
    if starts.size == 0:
        starts = np.array([d_burn])
    restarts: list[dict] = []
    stop_all = False
    progress = Progress.wrap(callback, PopulationCancelled)
    adam = progress.stage(0.0, 0.9 if polish_steps > 0 else 1.0, "restarts")
    for r in range(n_restarts):
        init_vals: dict[str, np.ndarray] = {}
        for n in names:
            base = np.asarray(getattr(template, n), dtype=np.float64)
            if init == "given":
                val = base.copy()
            elif init == "perturb":
                val = base * (1 + rng.uniform(-init_spread, init_spread, base.shape))
                if n in _POSITIVE:
                    val = np.where(base > 0, val, base)
            else:
                val = _sample_prior(n, base.shape, rng)
                if n == "J_theta":
                    val = np.where(base > 0, val, 0.0)
            init_vals[n] = val
        free = {n: to_free(n, v).clone().requires_grad_(True) for n, v in init_vals.items()}
        # keep J_theta = 0 populations at exactly 0 (no adaptation): mask in free space
        fixed_zero = {n: torch.as_tensor(init_vals[n] == 0) for n in names if n in ("J_theta",)}
        opt = torch.optim.Adam(list(free.values()), lr=lr, betas=betas)
        gamma = 1.0
        if lr_final is not None and n_iter > 1:
            gamma = (lr_final / lr) ** (1.0 / (n_iter - 1))
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma)
        trace: list[float] = []
        t_start = time.perf_counter()
        for it in range(n_iter):
            t0 = int(starts[it % starts.size])
            t1 = min(t0 + batch_steps, T)
            values = {n: from_free(n, f) for n, f in free.items()}
            for n, mask in fixed_zero.items():
                values[n] = torch.where(mask, torch.zeros_like(values[n]), values[n])
            ll = model.log_likelihood(
                counts,
                I_ext,
                start=t0,
                stop=t1,
                init_at=max(0, t0 - burnin_steps),
                overrides=values,
                constant=False,
            )
            obj = ll
            if prior:
                frac = (t1 - t0) / n_scored
                obj = obj + frac * sum(log_prior(n, v) for n, v in values.items())
            loss = -obj
            opt.zero_grad()
            loss.backward()
            grads = [f.grad for f in free.values()]
            gmax = max(float(g.abs().max()) for g in grads)
            if not math.isfinite(gmax):
                for g in grads:
                    g.nan_to_num_(0.0, 0.0, 0.0)
                gmax = max(float(g.abs().max()) for g in grads)
            if gmax > grad_clip:
                for g in grads:
                    g.mul_(grad_clip / gmax)
            opt.step()
            sched.step()
            trace.append(float(loss.detach()))
            if progress.active:
                cur = {n: from_free(n, f).detach().numpy().copy() for n, f in free.items()}
                msg = {"restart": r, "iteration": it, "n_iter": n_iter, "loss": trace[-1]}
                try:
                    adam.report(
                        (r * n_iter + it + 1) / (n_restarts * n_iter),
                        f"restart {r + 1}/{n_restarts}",
                        values=cur,
                        **msg,
                    )
                except Cancelled:
                    stop_all = True
                    break
        final = {n: from_free(n, f).detach() for n, f in free.items()}
        for n, mask in fixed_zero.items():
            final[n] = torch.where(mask, torch.zeros_like(final[n]), final[n])
        ll_full = full_ll(final)
        restarts.append(
            {
                "init": init_vals,
                "final": {n: v.numpy().copy() for n, v in final.items()},
                "log_likelihood": ll_full,
                "trace": trace,
                "seconds": time.perf_counter() - t_start,
            }
        )
        if stop_all:
            break
    ok = [r for r in restarts if math.isfinite(r["log_likelihood"])]
    best = max(ok or restarts, key=lambda d: d["log_likelihood"])
    best_vals = {n: np.asarray(v) for n, v in best["final"].items()}
    best_ll = best["log_likelihood"]
    stderr: dict[str, np.ndarray] = {}
    if polish_steps > 0 and not stop_all:
        try:
            best_vals, best_ll, stderr = _fisher_polish(
                model,
                counts,
                I_ext,
                best_vals,
                d_burn,
                polish_steps,
                progress.stage(0.9, 1.0, "polish"),
            )
            best["polished"] = {n: v.copy() for n, v in best_vals.items()}
            best["polished_log_likelihood"] = best_ll
        except Cancelled:
            stop_all = True
    new_params = template.copy(**{n: np.asarray(v) for n, v in best_vals.items()})
    return MesoscopicFit(
        params=new_params,
        fitted=names,
        log_likelihood=best_ll,
        restarts=restarts,
        dt=dt,
        K=model.K,
        score_start=d_burn,
        stderr=stderr,
        cancelled=stop_all,
    )


def _fisher_polish(
    model: MesoscopicModel,
    counts: np.ndarray,
    I_ext: np.ndarray,
    values: dict[str, np.ndarray],
    start: int,
    n_steps: int,
    progress: Progress | None = None,
) -> tuple[dict[str, np.ndarray], float, dict[str, np.ndarray]]:
    """Fisher scoring on the full recording (free parameters, forward passes only).

    A cancel through ``progress`` raises its ``Cancelled`` (the caller keeps the unpolished
    result).
    """
    progress = progress or Progress()
    names = list(values)
    shapes = {n: np.asarray(values[n]).shape for n in names}
    # free coordinates: log for positive parameters; zero-valued J_theta entries stay fixed
    slots: list[tuple[str, tuple]] = []
    for n in names:
        for idx in np.ndindex(shapes[n]):
            if n in _POSITIVE and values[n][idx] <= 0:
                continue
            slots.append((n, idx))

    def pack(vals: dict[str, np.ndarray]) -> np.ndarray:
        return np.array(
            [math.log(vals[n][i]) if n in _POSITIVE else float(vals[n][i]) for n, i in slots]
        )

    def unpack(theta: np.ndarray) -> dict[str, np.ndarray]:
        out = {n: np.array(values[n], dtype=np.float64, copy=True) for n in names}
        for k, (n, i) in enumerate(slots):
            out[n][i] = math.exp(theta[k]) if n in _POSITIVE else theta[k]
        return out

    N = model.N[None, :]
    n_obs = counts[start:]

    def nbar_of(theta: np.ndarray) -> np.ndarray:
        ov = {n: torch.as_tensor(v, dtype=DTYPE) for n, v in unpack(theta).items()}
        with torch.no_grad():
            return model.expected_counts(counts, I_ext, start=start, overrides=ov).numpy()

    def ll_of(nb: np.ndarray) -> float:
        p = np.clip(nb / N, 1e-8, 1 - 1e-8)
        return float((n_obs * np.log(p) + (N - n_obs) * np.log1p(-p)).sum())

    theta = pack(values)
    nb = nbar_of(theta)
    ll = ll_of(nb)
    const = float((_lgamma(N + 1) - _lgamma(n_obs + 1) - _lgamma(N - n_obs + 1)).sum())
    F = None
    for step in range(n_steps + 1):
        Jac = np.empty(nb.shape + (len(slots),))
        for k in range(len(slots)):
            h = 1e-5 * max(abs(theta[k]), 1e-2)
            th2 = theta.copy()
            th2[k] += h
            Jac[..., k] = (nbar_of(th2) - nb) / h
        p = np.clip(nb / N, 1e-8, 1 - 1e-8)
        wgt = 1.0 / (N * p * (1 - p))
        grad = np.einsum("tmk,tm->k", Jac, (n_obs - nb) * wgt)
        F = np.einsum("tmk,tm,tml->kl", Jac, wgt, Jac)
        if step == n_steps:
            break
        try:
            delta = np.linalg.solve(F + 1e-9 * np.trace(F) * np.eye(len(slots)), grad)
        except np.linalg.LinAlgError:
            break
        accepted = False
        for _ in range(8):
            cand = theta + delta
            nb_c = nbar_of(cand)
            ll_c = ll_of(nb_c)
            if np.isfinite(ll_c) and ll_c >= ll:
                theta, nb, ll = cand, nb_c, ll_c
                accepted = True
                break
            delta = delta / 2
        progress.report(
            (step + 1) / n_steps,
            f"step {step + 1}/{n_steps}",
            polish_step=step,
            log_likelihood=ll + const,
        )
        if not accepted:
            break
    stderr_flat = np.full(len(slots), np.nan)
    if F is not None:
        try:
            cov = np.linalg.inv(F)
            stderr_flat = np.sqrt(np.clip(np.diag(cov), 0, None))
        except np.linalg.LinAlgError:
            pass
    final = unpack(theta)
    stderr = {n: np.full(shapes[n], np.nan) for n in names}
    for k, (n, i) in enumerate(slots):
        # delta method back to natural units for log-parameters
        stderr[n][i] = stderr_flat[k] * (final[n][i] if n in _POSITIVE else 1.0)
    return final, ll + const, stderr


def _lgamma(x: np.ndarray) -> np.ndarray:
    return torch.lgamma(torch.as_tensor(x, dtype=DTYPE)).numpy()


class MesoscopicBaseline:
    """The mesoscopic model as a forecast baseline for population activity.

    Same interface as :mod:`napari_mesoscale.forecasters.baselines`: ``fit(activity, *,
    stimulus=None)`` fits the chosen parameters by :func:`fit_mesoscopic`;
    ``predict(activity, steps=1, stimulus=None)`` returns (T, M) where row ``t`` is the
    model's expected activity at ``t`` given the recorded activity up to ``t - steps`` (for
    one step: the exact one-step expectation; for more, the model runs on from ``t - steps``
    on its own expected counts, rounded to whole spikes; this costs one short simulation per
    row). The first ``steps`` rows are NaN. Activities are population rates in Hz, shape
    (T, M), turned into counts with the population sizes of ``params``; the stimulus is the
    external input current (mA) per population.

    Parameters
    ----------
    params : GIFParams, optional
        Template and initial values (default :func:`two_population_params`).
    dt : float
        Step (s).
    **fit_kwargs
        Passed to :func:`fit_mesoscopic` (e.g. ``fit=("w",)``, ``n_iter``, ``K``).
    """

    name = "mesoscopic"

    def __init__(self, params: GIFParams | None = None, dt: float = 1e-3, **fit_kwargs: Any):
        self.template = two_population_params() if params is None else params
        self.dt = float(dt)
        self.fit_kwargs = fit_kwargs
        self.result: MesoscopicFit | None = None

    @property
    def n_params(self) -> int:
        """Number of fitted scalars."""
        if self.result is None:
            return 0
        return int(sum(np.asarray(getattr(self.result.params, n)).size for n in self.result.fitted))

    def _to_counts(self, activity: Any) -> np.ndarray:
        a = np.asarray(activity, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != self.template.M:
            raise ValueError(
                f"activity must have shape (T, {self.template.M}) in Hz; got {a.shape}."
            )
        if not np.all(np.isfinite(a)):
            raise ValueError("activity contains NaN or infinite values.")
        return np.rint(a * self.template.N[None, :] * self.dt).astype(np.int64)

    def fit(self, activity: Any, *, stimulus: Any = None) -> MesoscopicBaseline:
        """Fit on a (T, M) population-activity recording (Hz)."""
        counts = self._to_counts(activity)
        self.result = fit_mesoscopic(
            counts, stimulus, params=self.template, dt=self.dt, **self.fit_kwargs
        )
        return self

    def predict(self, activity: Any, steps: int = 1, stimulus: Any = None) -> np.ndarray:
        """Expected activity (Hz); row ``t`` predicted from rows up to ``t - steps``."""
        if self.result is None:
            raise RuntimeError("MesoscopicBaseline is not fitted; call .fit() first")
        if steps < 1:
            raise ValueError(f"steps must be >= 1; got {steps}")
        counts = self._to_counts(activity)
        model = self.result.model
        T = counts.shape[0]
        N = self.template.N.astype(np.float64)
        out = np.full((T, self.template.M), np.nan)
        if steps == 1:
            with torch.no_grad():
                nbar = model.expected_counts(counts, stimulus).numpy()
            out[1:] = nbar[1:] / (N * self.dt)
            return out
        inp, _ = model._input_array(stimulus, T)
        for t in range(steps, T):
            nxt = _mean_rollout(model, counts[: t - steps + 1], inp[: t + 1], steps)
            out[t] = nxt / (N * self.dt)
        return out


def _mean_rollout(model: MesoscopicModel, history: np.ndarray, inp: np.ndarray, k: int):
    """Expected counts ``k`` steps after ``history`` running on the model's own means."""
    hist = history.astype(np.float64)
    for _ in range(k):
        ext = np.concatenate([hist, np.zeros((1, hist.shape[1]))], axis=0)
        sim = model.simulate(inp[: ext.shape[0]], observed=np.rint(ext))
        nxt = sim.expected[-1]
        hist = np.concatenate([hist, nxt[None, :]], axis=0)
    return hist[-1]
