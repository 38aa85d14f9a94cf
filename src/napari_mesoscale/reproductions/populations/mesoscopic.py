"""Mesoscopic GIF population model ("mesoGIF") and its binomial likelihood (René et al. 2020).

The model is the finite-size population equation of Schwalger, Deger & Gerstner (2017)
as used by René, Longtin & Macke (2020, sections 4.2-4.3, appendix E): each population
``alpha`` of ``N_alpha`` neurons is described by

* the *refractory cohorts*: ``m[a]``, the expected number of neurons whose last spike was
  ``a`` steps ago (``a = 1..K``), with the variance-like ``v[a]``, their membrane potential
  ``u[a]`` (reset to ``u_r`` at the spike, clamped during ``t_ref``), their threshold
  ``theta[a] = u_th + theta_kernel(a) + sum_{a' > a} theta_tilde(a') n(t - a')`` (own
  adaptation plus the quasi-renewal average of older spikes) and hazard
  ``lambda[a] = c exp((u[a] - theta[a]) / delta_u)``;
* the *free* neurons (last spike more than ``K`` steps ago), ``x`` with variance ``z``, at
  the free potential ``h`` and threshold ``u_th + sum_{a > K} theta_kernel(a) n(t - a) / N``;
* the expected spike count
  ``n_bar = sum_a P[a] m[a] + P_free x + P_Lambda (N - sum_a m[a] - x)`` with
  ``P = 1 - exp(-dt (lambda(t) + lambda(t - dt)) / 2)`` and the finite-size correction
  ``P_Lambda = (sum_a P[a] v[a] + P_free z) / (sum_a v[a] + z)``;
* the observed count ``n(t) ~ Binomial(N, n_bar / N)`` (eq. 4.18).

Synaptic input: population ``beta``'s activity ``A_beta = n_beta / (N_beta dt)``, delayed by
``delay[alpha, beta]``, filtered by an exponential synapse ``tau_s[beta]`` and scaled by
``J = p N_beta w``, drives ``tau_m dh/dt = -h + u_rest + R I_ext + tau_m sum_beta J y``;
over each step the activity and the input are held constant and the linear equations are
integrated exactly.

Two evaluations share these equations:

* :meth:`MesoscopicModel.simulate` runs them step by step (time-major, numpy), sampling the
  binomial counts (or reading them from data: ``observed=``) — the generative model;
* :meth:`MesoscopicModel.log_likelihood` evaluates the expected counts for *observed*
  counts in parallel over time with torch in float64: given the data, the hazard of each
  cohort depends only on the data and the parameters, so the survival ``m`` is a
  cumulative sum of log-survivals along each cohort and ``v`` a log-cumsum-exp; the free
  potential, synaptic and adaptation filters are exponential filters computed by FFT; only
  the free-neuron counts ``x, z`` form a scalar recursion, solved in log space. The result
  equals the step-by-step evaluation to rounding error (tested), and gradients come from
  autograd.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from napari_mesoscale.progress import Cancelled, Progress
from napari_mesoscale.reproductions.populations.microscopic import GIFParams, PopulationCancelled

__all__ = ["MesoscopicModel", "MesoscopicSimulation", "history_length"]

_TINY = 1e-300
_LOG_TINY = math.log(_TINY)
DTYPE = torch.float64


def history_length(params: GIFParams, dt: float = 1e-3, max_time: float = 10.0) -> int:
    """Number of refractory age bins ``K`` (Schwalger et al. 2017, eq. 86).

    The smallest age beyond which the adaptation kernel stays below ``0.1 delta_u`` for
    every population, at least ``5 tau_m`` and longer than ``t_ref``.
    """
    if dt <= 0:
        raise ValueError(f"dt must be positive, got {dt}.")
    k_max = int(round(max_time / dt))
    K = 1
    for a in range(params.M):
        k = k_max
        if params.J_theta[a] != 0:
            q = params.J_theta[a] / params.tau_theta[a]
            # theta(k) = q exp(-(k dt - t_ref) / tau_theta) < 0.1 delta_u
            ratio = 0.1 * params.delta_u[a] / abs(q)
            if ratio >= 1:
                k = 0
            else:
                t_k = params.t_ref[a] - params.tau_theta[a] * math.log(ratio)
                k = int(math.ceil(t_k / dt))
        else:
            k = 0
        k = min(max(k, int(math.ceil(5 * params.tau_m[a] / dt))), k_max)
        k = max(k, int(round(params.t_ref[a] / dt)) + 1)
        K = max(K, k)
    return K


@dataclass
class MesoscopicSimulation:
    """Output of :meth:`MesoscopicModel.simulate`.

    Attributes
    ----------
    counts : ndarray, shape (T, M)
        Spike counts per population and step (sampled, or the observed ones).
    expected : ndarray, shape (T, M)
        Expected counts ``n_bar`` given the past.
    dt : float
    N : ndarray, shape (M,)
    cancelled : bool
        The progress callback stopped the run: the arrays end at the last step simulated.
    """

    counts: np.ndarray
    expected: np.ndarray
    dt: float
    N: np.ndarray
    cancelled: bool = False

    @property
    def activity(self) -> np.ndarray:
        """Population activity (Hz), shape (T, M)."""
        return self.counts / (self.N[None, :] * self.dt)

    def rates(self, burn_in: float = 0.0) -> np.ndarray:
        """Mean rate per neuron (Hz) after ``burn_in`` seconds."""
        k0 = int(round(burn_in / self.dt))
        return self.counts[k0:].mean(axis=0) / (self.N * self.dt)


# names of the parameters that may be fitted and how they are constrained
_POSITIVE = ("tau_m", "tau_s", "c", "delta_u", "J_theta", "tau_theta")
FITTABLE = ("w", "u_rest", "u_th", "u_r", "R") + _POSITIVE


class MesoscopicModel:
    """The mesoscopic GIF population model (mesoGIF) for given parameters.

    Parameters
    ----------
    params : GIFParams
        Population parameters (the same object as for the microscopic model).
    dt : float
        Time step (s); the paper uses 1 ms.
    K : int, optional
        Number of refractory age bins; default :func:`history_length`.

    Notes
    -----
    Integer-valued quantities (population sizes, delays and refractory periods in steps,
    ``K``) are fixed by the constructor; the continuous parameters can be replaced by
    torch tensors in :meth:`log_likelihood` (``overrides=``) to take gradients.
    """

    def __init__(self, params: GIFParams, dt: float = 1e-3, K: int | None = None) -> None:
        if not isinstance(params, GIFParams):
            raise ValueError("params must be a GIFParams (see two_population_params()).")
        if not (np.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive number of seconds, got {dt!r}.")
        self.params = params
        self.dt = float(dt)
        self.K = int(K) if K is not None else history_length(params, dt)
        self.k_ref = np.rint(params.t_ref / dt).astype(np.int64)
        if self.K <= int(self.k_ref.max()):
            raise ValueError(f"K={self.K} must exceed the refractory period in steps.")
        self.delay_steps = np.rint(params.delay / dt).astype(np.int64)
        if np.any(self.delay_steps < 1):
            raise ValueError(
                f"every delay must be at least one step dt={dt}; got min {params.delay.min()}."
            )
        self.N = params.N.astype(np.float64)
        self.M = params.M
        # cache of the parameter-free part of the cohort thresholds (see _parallel)
        self._th_cache: dict = {}
        self._theta_params = {"J_theta", "tau_theta", "delta_u", "t_ref"}

    # ------------------------------------------------------------------ parameter tensors
    def tensors(self, overrides: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Float64 tensors of all continuous parameters, with optional overrides."""
        p = self.params
        out: dict[str, torch.Tensor] = {}
        for name in ("R", "u_rest", "tau_m", "u_th", "u_r", "c", "delta_u", "tau_s"):
            out[name] = torch.as_tensor(getattr(p, name), dtype=DTYPE)
        out["w"] = torch.as_tensor(p.w, dtype=DTYPE)
        out["p"] = torch.as_tensor(p.p, dtype=DTYPE)
        out["J_theta"] = torch.as_tensor(p.J_theta, dtype=DTYPE)
        out["tau_theta"] = torch.as_tensor(np.where(p.tau_theta > 0, p.tau_theta, 1.0), dtype=DTYPE)
        out["t_ref"] = torch.as_tensor(p.t_ref, dtype=DTYPE)
        if overrides:
            for k, v in overrides.items():
                if k not in out:
                    raise ValueError(f"unknown parameter {k!r}; choose from {sorted(out)}.")
                out[k] = torch.as_tensor(v, dtype=DTYPE)
            out["_over"] = tuple(overrides)  # type: ignore[assignment]
        return out

    def _constants(self, P: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Derived step constants: propagators, kernels (torch, differentiable)."""
        dt, K = self.dt, self.K
        N = torch.as_tensor(self.N, dtype=DTYPE)
        tau_m, tau_s = P["tau_m"], P["tau_s"]
        Pm = torch.exp(-dt / tau_m)  # (M,)
        Ps = torch.exp(-dt / tau_s)  # (M,) per source
        J = P["p"] * N[None, :] * P["w"]  # (M, M) target x source
        # c1[alpha, beta] = tau_m tau_s (Ps - Pm) / (tau_s - tau_m)
        tm = tau_m[:, None]
        ts = tau_s[None, :]
        diff = ts - tm
        safe = torch.where(diff.abs() < 1e-12, torch.full_like(diff, 1e-12), diff)
        c1 = tm * ts * (Ps[None, :] - Pm[:, None]) / safe
        ages = torch.arange(1, K + 2, dtype=DTYPE) * dt  # ages 1..K+1 (s)
        q = P["J_theta"] / P["tau_theta"]  # (M,) jump in mV
        theta = q[None, :] * torch.exp(-(ages[:, None] - P["t_ref"][None, :]) / P["tau_theta"])
        theta_k = theta[:K]  # (K, M) for ages 1..K
        theta_K1 = theta[K]  # (M,) at age K+1
        du = P["delta_u"]
        theta_tilde = du * (-torch.expm1(-theta_k / du)) / N  # (K, M), per spike count
        decay_theta = torch.exp(-dt / P["tau_theta"])
        return {
            "N": N,
            "Pm": Pm,
            "Ps": Ps,
            "J": J,
            "c1": c1,
            "theta": theta_k,
            "theta_K1": theta_K1,
            "theta_tilde": theta_tilde,
            "decay_theta": decay_theta,
        }

    # ------------------------------------------------------------------ step-by-step
    def simulate(
        self,
        input: Any = None,
        n_steps: int | None = None,
        seed: int = 0,
        *,
        observed: Any = None,
        callback: Callable[[dict], Any] | None = None,
    ) -> MesoscopicSimulation:
        """Run the mesoscopic model step by step from the silent state (all neurons free).

        Parameters
        ----------
        input : array-like, shape (T, M) or (M,), optional
            External current (mA) per step; zeros if omitted.
        n_steps : int, optional
            Number of steps (needed when ``input`` is constant or omitted).
        seed : int
            Seed of the binomial sampling.
        observed : array-like of int, shape (T, M), optional
            Use these counts instead of sampling (teacher forcing): the result's
            ``expected`` are then the model's one-step predictions for the data.
        callback : callable, optional
            Progress protocol (:mod:`napari_mesoscale.progress`), called about every 1 % with
            ``fraction``, ``step`` and ``n_steps``. Returning ``False`` or raising a
            ``Cancelled`` stops the run: the steps done so far are returned with
            ``cancelled=True``.

        Returns
        -------
        MesoscopicSimulation
        """
        M, K, dt = self.M, self.K, self.dt
        I_ext, T = self._input_array(input, n_steps, observed)
        obs = None
        if observed is not None:
            obs = self._check_counts(observed)
            if obs.shape[0] != T:
                raise ValueError(f"observed has {obs.shape[0]} steps but input has {T}.")
        with torch.no_grad():
            P = self.tensors()
            C = self._constants(P)
        f = {k: v.numpy() for k, v in P.items()}
        c = {k: v.numpy() for k, v in C.items()}
        N = self.N
        Pm, Ps, J, c1 = c["Pm"], c["Ps"], c["J"], c["c1"]
        theta, theta_K1, theta_tilde, dec_th = (
            c["theta"],
            c["theta_K1"],
            c["theta_tilde"],
            c["decay_theta"],
        )
        tau_m, u_r, u_th, c_esc, du = f["tau_m"], f["u_r"], f["u_th"], f["c"], f["delta_u"]
        mu_base = f["u_rest"][None, :] + f["R"][None, :] * I_ext  # (T, M)
        ages = np.arange(1, K + 1)[:, None]
        active = ages > self.k_ref[None, :]  # (K, M) non-refractory ages
        d = self.delay_steps
        H = K + 1 + int(d.max()) + 1
        nh = np.zeros((H, M))  # nh[j] = n(t - 1 - j)
        y = np.zeros((M, M))
        h = f["u_rest"].copy()
        u = np.tile(u_r, (K, 1))
        lam_prev = np.zeros((K, M))
        m = np.zeros((K, M))
        v = np.zeros((K, M))
        x = N.copy()
        z = np.zeros(M)
        lamf_prev = np.zeros(M)
        G = np.zeros(M)
        rng = np.random.default_rng(seed)
        counts = np.zeros((T, M))
        expected = np.zeros((T, M))
        cols = np.arange(M)[None, :]
        A_coef = tau_m[:, None] * (1 - Pm[:, None]) - c1
        report = max(1, T // 100)
        progress, cancelled = Progress.wrap(callback, PopulationCancelled), False
        for t in range(T):
            A_del = nh[d - 1, cols] / (N[None, :] * dt)  # (M target, M source)
            hinc = mu_base[t] * (1 - Pm) + (J * (A_del * A_coef + c1 * y)).sum(1)
            y = A_del + (y - A_del) * Ps[None, :]
            h = h * Pm + hinc
            u = np.concatenate([u_r[None, :], u[:-1]], axis=0) * Pm + hinc
            u = np.where(active, u, u_r[None, :])
            G = G * dec_th + nh[K] / N
            th_free = u_th + theta_K1 * G
            contrib = theta_tilde * nh[:K]  # (K, M): ages 1..K
            Q = np.cumsum(contrib[::-1], axis=0)[::-1] - contrib  # sum over a' > a
            th = th_free + theta + Q
            lam = np.where(active, c_esc * np.exp((u - th) / du), 0.0)
            lam_shift = np.concatenate([np.zeros((1, M)), lam_prev[:-1]], axis=0)
            Pl = -np.expm1(-0.5 * dt * (lam + lam_shift))
            lamf = c_esc * np.exp((h - th_free) / du)
            Pf = -np.expm1(-0.5 * dt * (lamf + lamf_prev))
            W = (Pl * m).sum(0)
            X = m.sum(0)
            Y = (Pl * v).sum(0)
            Z = v.sum(0)
            denom = Z + z
            PL = np.where(denom > 0, (Y + Pf * z) / np.where(denom > 0, denom, 1.0), 0.0)
            nbar = W + Pf * x + PL * (N - X - x)
            expected[t] = nbar
            if obs is not None:
                n = obs[t]
            else:
                pr = np.clip(nbar / N, 0.0, 1.0)
                n = rng.binomial(N.astype(np.int64), pr).astype(np.float64)
            counts[t] = n
            m_upd = m * (1 - Pl)
            v_upd = (1 - Pl) ** 2 * v + Pl * m
            z = (1 - Pf) ** 2 * z + Pf * x + v_upd[-1]
            x = x * (1 - Pf) + m_upd[-1]
            m = np.concatenate([n[None, :], m_upd[:-1]], axis=0)
            v = np.concatenate([np.zeros((1, M)), v_upd[:-1]], axis=0)
            lam_prev = lam
            lamf_prev = lamf
            nh = np.concatenate([n[None, :], nh[:-1]], axis=0)
            if progress.active and (t % report == 0 or t == T - 1):
                try:
                    progress.report((t + 1) / T, f"step {t + 1}/{T}", step=t + 1, n_steps=T)
                except Cancelled:
                    counts, expected, cancelled = counts[: t + 1], expected[: t + 1], True
                    break
        return MesoscopicSimulation(
            counts=counts.round().astype(np.int64),
            expected=expected,
            dt=dt,
            N=self.params.N,
            cancelled=cancelled,
        )

    # ------------------------------------------------------------------ parallel likelihood
    def expected_counts(
        self,
        counts: Any,
        input: Any = None,
        *,
        start: int = 0,
        stop: int | None = None,
        init_at: int | None = None,
        overrides: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """One-step expected counts ``n_bar(t)`` for observed counts, in parallel over time.

        Parameters
        ----------
        counts : array-like of int, shape (T, M)
            Observed spike counts per population and step.
        input : array-like, shape (T, M) or (M,), optional
            External current (mA).
        start, stop : int
            Steps ``[start, stop)`` for which ``n_bar`` is returned.
        init_at : int, optional
            Step at which the free-neuron counts are initialised: at 0 the model starts
            silent (all neurons free, as :meth:`simulate`) and the result is exact; later,
            ``x = N - sum(m)`` and ``z = 0`` are assumed there, and steps from ``init_at`` to
            ``start`` act as burn-in. Default: 0.
        overrides : dict of tensors, optional
            Parameters to use instead of the model's (e.g. tensors requiring grad).

        Returns
        -------
        torch.Tensor, shape (stop - start, M), float64
        """
        n_np = self._check_counts(counts)
        T = n_np.shape[0]
        I_ext, _ = self._input_array(input, T, None)
        stop = T if stop is None else int(stop)
        init_at = 0 if init_at is None else int(init_at)
        if not (0 <= init_at <= start < stop <= T):
            raise ValueError(
                f"need 0 <= init_at <= start < stop <= T; got init_at={init_at}, "
                f"start={start}, stop={stop}, T={T}."
            )
        P = self.tensors(overrides)
        C = self._constants(P)
        nbar = self._parallel(torch.as_tensor(n_np, dtype=DTYPE), I_ext, P, C, init_at, stop)
        return nbar[start - init_at :]

    def log_likelihood(
        self,
        counts: Any,
        input: Any = None,
        *,
        start: int = 0,
        stop: int | None = None,
        init_at: int | None = None,
        overrides: dict[str, torch.Tensor] | None = None,
        eps: float = 1e-8,
        constant: bool = True,
    ) -> torch.Tensor:
        """Binomial log-likelihood of observed counts (René et al. 2020, eq. 4.22), float64.

        ``sum_t sum_alpha [log C(N, n) + n log p + (N - n) log(1 - p)]`` over steps
        ``[start, stop)`` with ``p = n_bar / N`` clipped to ``[eps, 1 - eps]`` (eq. 4.23).
        ``constant=False`` drops the parameter-free ``log C(N, n)``. See
        :meth:`expected_counts` for the other arguments.
        """
        n_np = self._check_counts(counts)
        stop_ = n_np.shape[0] if stop is None else int(stop)
        nbar = self.expected_counts(
            n_np, input, start=start, stop=stop_, init_at=init_at, overrides=overrides
        )
        N = torch.as_tensor(self.N, dtype=DTYPE)
        n = torch.as_tensor(n_np[start:stop_], dtype=DTYPE)
        p = (nbar / N).clamp(eps, 1 - eps)
        ll = n * torch.log(p) + (N - n) * torch.log1p(-p)
        if constant:
            ll = ll + (torch.lgamma(N + 1) - torch.lgamma(n + 1) - torch.lgamma(N - n + 1))
        return ll.sum()

    def _parallel(
        self,
        n_all: torch.Tensor,
        I_ext: np.ndarray,
        P: dict[str, torch.Tensor],
        C: dict[str, torch.Tensor],
        t_init: int,
        t1: int,
    ) -> torch.Tensor:
        M, K, dt = self.M, self.K, self.dt
        T = n_all.shape[0]
        N = C["N"]
        d = torch.as_tensor(self.delay_steps)
        k_ref = torch.as_tensor(self.k_ref)
        Pm, Ps, J, c1 = C["Pm"], C["Ps"], C["J"], C["c1"]
        # ---- free potential h(t) for t in [0, T): linear filters (exact, FFT) ----------
        # delayed activity per pair: A_del[t, a, b] = n(t - d_ab, b) / (N_b dt)
        A = n_all / (N * dt)  # (T, M)
        A_del = torch.zeros(T, M, M, dtype=DTYPE)
        for a in range(M):
            for b in range(M):
                k = int(d[a, b])
                if k < T:
                    A_del[k:, a, b] = A[: T - k, b]
        Ps_pair = Ps[None, :].expand(M, M)
        y = _exp_filter(A_del.reshape(T, M * M) * (1 - Ps_pair).reshape(1, -1), Ps_pair.reshape(-1))
        y = y.reshape(T, M, M)
        y_prev = torch.cat([torch.zeros(1, M, M, dtype=DTYPE), y[:-1]], dim=0)
        I_t = torch.as_tensor(I_ext, dtype=DTYPE)
        mu0 = P["u_rest"][None, :] + P["R"][None, :] * I_t  # (T, M)
        A_coef = P["tau_m"][:, None] * (1 - Pm[:, None]) - c1  # (M, M)
        hinc = mu0 * (1 - Pm) + (J[None] * (A_del * A_coef[None] + c1[None] * y_prev)).sum(-1)
        steps = torch.arange(1, T + 1, dtype=DTYPE)[:, None]
        h = _exp_filter(hinc, Pm) + P["u_rest"][None, :] * torch.exp(steps * torch.log(Pm))[...]
        # ---- free adaptation filter G(t) = sum_{j>=0} e^{-j dt/tau} n(t-K-1-j)/N ----------
        n_sh = torch.zeros(T, M, dtype=DTYPE)
        if K + 1 < T:
            n_sh[K + 1 :] = n_all[: T - K - 1] / N
        G = _exp_filter(n_sh, C["decay_theta"])
        th_free = P["u_th"] + C["theta_K1"] * G  # (T, M)

        # ---- cohorts s in [s0, s1): s0 = t_init - K, s1 = t1 - 1 ---------------------------
        s0 = t_init - K
        R = t1 - 1 - s0  # number of cohorts
        L = R + K  # extended time axis: times s0 .. s0 + L - 1
        t_ext = torch.arange(s0, s0 + L)
        t_clip = t_ext.clamp(0, T - 1)
        h_ext = torch.where((t_ext < 0)[:, None], P["u_rest"][None, :], h[t_clip])
        thf_ext = th_free[t_clip]
        # n for times s0 - K .. s0 + L - 1 (zero before 0 and, unused, after T)
        t_n = torch.arange(s0 - K, s0 + L)
        n_ext = torch.where(
            ((t_n >= 0) & (t_n < T))[:, None],
            n_all[t_n.clamp(0, T - 1)],
            torch.zeros(1, M, dtype=DTYPE),
        )
        ages = torch.arange(1, K + 1)
        active = (ages[:, None] > k_ref[None, :]).to(DTYPE)  # (K, M)
        if not (self._theta_params & set(P.get("_over", ()))):
            # parameter-free here: computed once for the whole series, sliced per window
            key = (hash(n_all.numpy().tobytes()), T)
            if self._th_cache.get("key") != key:
                Rf = T - 1 + K
                t_nf = torch.arange(-2 * K, T - 1 + K)
                n_f = torch.where(
                    ((t_nf >= 0) & (t_nf < T))[:, None],
                    n_all[t_nf.clamp(0, T - 1)],
                    torch.zeros(1, M, dtype=DTYPE),
                )
                with torch.no_grad():
                    full = self._threshold_offsets(n_f, C, Rf + K, Rf)
                self._th_cache = {"key": key, "th_base": full}
            th_base = self._th_cache["th_base"][:, s0 + K : s0 + K + R]
        else:
            th_base = self._threshold_offsets(n_ext, C, L, R)
        # potentials u(s, a) = h(s + a) - Pm^(a - kref) (h(s + kref) - u_r)
        hT = h_ext.T.contiguous()  # (M, L)
        h_sa = hT[:, 1:].unfold(1, K, 1)[:, :R]  # (M, R, K): h(s0 + i + j + 1)
        idx = torch.arange(R)[None, :] + k_ref[:, None]  # (M, R)
        h_kref = torch.gather(hT, 1, idx)  # h(s + kref)
        expo = (ages[None, :] - k_ref[:, None]).clamp(min=0).to(DTYPE)  # (M, K)
        decay = torch.exp(expo * torch.log(Pm)[:, None])  # (M, K)
        u = h_sa - decay[:, None, :] * (h_kref[:, :, None] - P["u_r"][:, None, None])
        thf_sa = thf_ext.T.contiguous()[:, 1:].unfold(1, K, 1)[:, :R]  # (M, R, K)
        th = thf_sa + th_base
        du = P["delta_u"][:, None, None]
        lam = P["c"][:, None, None] * torch.exp((u - th) / du) * active.T[:, None, :]
        del u, th, h_sa, thf_sa  # free memory early (matters for long, no-grad passes)
        lam_prev = torch.cat([torch.zeros(M, R, 1, dtype=DTYPE), lam[:, :, :-1]], dim=-1)
        xx = 0.5 * dt * (lam + lam_prev)  # (M, R, K) -log survival per step
        del lam, lam_prev
        Pl = -torch.expm1(-xx)
        Lc = -torch.cumsum(xx, dim=-1)  # log survival after ages 1..K  (= L_{a+1})
        L_start = torch.cat([torch.zeros(M, R, 1, dtype=DTYPE), Lc[:, :, :-1]], dim=-1)  # L_a
        n_coh = n_ext[K : K + R].T  # (M, R): n(s0 + i)
        # exponents are floored at -600 (values < 1e-260) to keep denormals out of the math
        surv = torch.exp(L_start.clamp_min(-600.0))
        m = n_coh[:, :, None] * surv
        # v(s, a) = n exp(2 L_a + lcse_{j<a}(log P_j - L_j + 2 xx_j))
        logP = torch.log(Pl.clamp_min(1e-200))
        term = logP - L_start + 2 * xx
        lc = torch.logcumsumexp(term, dim=-1)
        del term, logP
        lc_excl = torch.cat([torch.full((M, R, 1), -math.inf, dtype=DTYPE), lc[:, :, :-1]], -1)
        v = n_coh[:, :, None] * torch.exp((2 * L_start + lc_excl).clamp_min(-600.0))
        v_out = n_coh * torch.exp((2 * Lc[:, :, -1] + lc[:, :, -1]).clamp_min(-600.0))
        m_out = n_coh * torch.exp(Lc[:, :, -1].clamp_min(-600.0))  # m(s, K+1)
        # ---- time sums over cohorts: t = s + a  -> ext index i + j + 1 ----------------
        tidx = (torch.arange(R)[:, None] + torch.arange(1, K + 1)[None, :]).reshape(-1)
        stacked = torch.stack([Pl * m, m, Pl * v, v], dim=0).reshape(4 * M, R * K)
        sums = torch.zeros(4 * M, L, dtype=DTYPE).index_add(1, tidx, stacked)
        del stacked, v, m, Pl
        sums = sums.reshape(4, M, L)[:, :, K : K + (t1 - t_init)]  # times t_init .. t1-1
        W, X, Y, Z = sums[0], sums[1], sums[2], sums[3]  # (M, nt)
        nt = t1 - t_init
        # ---- free neurons ---------------------------------------------------------------
        ts = torch.arange(t_init, t1)
        lamf = P["c"][None, :] * torch.exp((h[ts] - th_free[ts]) / P["delta_u"][None, :])
        if t_init == 0:
            lamf_before = torch.zeros(1, M, dtype=DTYPE)
        else:
            tb = t_init - 1
            lamf_before = (P["c"] * torch.exp((h[tb] - th_free[tb]) / P["delta_u"]))[None, :]
        lamf_prev = torch.cat([lamf_before, lamf[:-1]], dim=0)
        xf = (0.5 * dt * (lamf + lamf_prev)).T  # (M, nt)
        Pf = -torch.expm1(-xf)
        Lam = torch.cat([torch.zeros(M, 1, dtype=DTYPE), -torch.cumsum(xf, -1)], -1)  # (M, nt+1)
        # outflow from cohorts during step r: cohort s = r - K  -> index r - t_init
        mo = m_out[:, :nt]
        vo = v_out[:, :nt]
        if t_init == 0:
            x0 = N.clone()
        else:
            x0 = (N - X[:, 0]).clamp_min(_TINY)
        e = torch.cat(
            [torch.log(x0)[:, None], torch.log(mo[:, :-1].clamp_min(_TINY)) - Lam[:, 1:nt]], -1
        )
        x = torch.exp(Lam[:, :nt] + torch.logcumsumexp(e, -1))  # (M, nt)
        drive = Pf * x + vo
        e2 = torch.cat(
            [
                torch.full((M, 1), _LOG_TINY, dtype=DTYPE),
                torch.log(drive[:, :-1].clamp_min(_TINY)) - 2 * Lam[:, 1:nt],
            ],
            -1,
        )
        z = torch.exp(2 * Lam[:, :nt] + torch.logcumsumexp(e2, -1))
        denom = Z + z
        PL = (Y + Pf * z) / denom.clamp_min(_TINY)
        nbar = W + Pf * x + PL * (N[:, None] - X - x)
        return nbar.T  # (nt, M)

    def _threshold_offsets(
        self, n_ext: torch.Tensor, C: dict[str, torch.Tensor], L: int, R: int
    ) -> torch.Tensor:
        """Cohort-major ``theta_kernel(a) + sum_{a' > a} theta_tilde(a') n(t - a')``."""
        K, M = self.K, self.M
        # win[r, :, k] = n(s0 - K + r + k): age K - k at ext time r
        win = n_ext[:-1].unfold(0, K, 1)  # (L, M, K)
        contrib = win * C["theta_tilde"].flip(0).T[None]  # theta_tilde of age K - k
        incl = contrib.cumsum(-1)  # sum over ages >= K - k
        # Q(age a) = sum over ages > a = incl at k = K - a - 1 (0 for a = K)
        Q_rev = torch.cat([torch.zeros(L, M, 1, dtype=DTYPE), incl[:, :, :-1]], dim=-1)
        # Q_rev[r, :, k] = Q(age K - k); cohort-major needs age j + 1 = K - k -> k = K-1-j
        Q_tm = Q_rev.flip(-1).permute(1, 0, 2).contiguous()  # (M, L, K) by age index j
        Qc = torch.as_strided(Q_tm, (M, R, K), (L * K, K, K + 1), Q_tm.storage_offset() + K)
        return Qc + C["theta"].T[:, None, :]

    # ------------------------------------------------------------------ helpers
    def _check_counts(self, counts: Any) -> np.ndarray:
        arr = np.asarray(counts)
        if arr.ndim != 2 or arr.shape[1] != self.M:
            raise ValueError(
                f"counts must have shape (T, {self.M}) (time, population); got {arr.shape}."
            )
        if arr.shape[0] < 2:
            raise ValueError("counts needs at least two time steps.")
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            raise ValueError("counts contains NaN or infinite values.")
        if np.any(arr < 0) or np.any(arr > self.N[None, :]) or np.any(arr != np.round(arr)):
            raise ValueError(
                "counts must be whole numbers of spikes between 0 and the population size N "
                "per step (did you pass rates in Hz? use counts = A * N * dt)."
            )
        return arr

    def _input_array(self, input: Any, n_steps: int | None, observed: Any = None) -> tuple:
        M = self.M
        if input is None:
            if n_steps is None:
                if observed is None:
                    raise ValueError("give n_steps (or an input array) to set the length.")
                n_steps = np.asarray(observed).shape[0]
            return np.zeros((int(n_steps), M)), int(n_steps)
        arr = np.asarray(input, dtype=np.float64)
        if arr.ndim == 1:
            if arr.shape[0] != M:
                raise ValueError(f"a constant input needs {M} values, got {arr.shape[0]}.")
            if n_steps is None:
                if observed is None:
                    raise ValueError("give n_steps with a constant input.")
                n_steps = np.asarray(observed).shape[0]
            arr = np.broadcast_to(arr, (int(n_steps), M)).copy()
        if arr.ndim != 2 or arr.shape[1] != M:
            raise ValueError(f"input must have shape (T, {M}); got {arr.shape}.")
        if n_steps is not None and arr.shape[0] != n_steps:
            raise ValueError(f"input has {arr.shape[0]} steps, expected {n_steps}.")
        if not np.all(np.isfinite(arr)):
            raise ValueError("input contains NaN or infinite values.")
        return arr, arr.shape[0]


def _exp_filter(x: torch.Tensor, decay: torch.Tensor) -> torch.Tensor:
    """``y[t] = sum_{j>=0} decay^j x[t - j]`` along dim 0 for each column (FFT, exact)."""
    T = x.shape[0]
    n_fft = 1 << (2 * T - 1).bit_length()
    j = torch.arange(T, dtype=DTYPE)[:, None]
    kern = torch.exp(j * torch.log(decay)[None, :])
    X = torch.fft.rfft(x, n=n_fft, dim=0)
    Kf = torch.fft.rfft(kern, n=n_fft, dim=0)
    return torch.fft.irfft(X * Kf, n=n_fft, dim=0)[:T]
