"""Responses to stimulating neurons never seen stimulated: a receptive field learned by gradient.

The data are a perturbation atlas: ``R[i, j]``, the response of responder ``i`` when neuron
``j`` is stimulated, NaN where the pair was not observed. A :class:`ResponseField` predicts
the column of a neuron never stimulated from the columns that were, by where the stimulated
somata lie: the training columns ``k`` are pooled with ``B`` shared basis kernels of the 3D
offset ``pos_k − pos_j`` (anisotropic Gaussians, their sd per basis and axis trained; each
kernel's pool is a weighted mean over the responder's observed entries, shrunk towards 0 by a
trained prior weight, so few or distant neighbours give a small feature). The pooled features,
the reciprocal response ``R[j, i]`` (how ``j`` responded when ``i`` was stimulated) and,
optionally, a connectome-linear prediction are mixed by trained weights per responder group,
plus a bias per group. Every weight is trained jointly by leave-one-stimulated-out: each
training column is predicted from the others (its own column masked out of the pooling),
masked squared error on the observed pairs, responses winsorised at a quantile of the
training columns' |responses| (a handful of pairs tens of sd out would otherwise carry the
squared loss).

This is the mesoscale model's receptive-field basis applied to perturbations, not the
basis-filter dynamics network of :func:`~napari_mesoscale.model.fit_mesoscale`. On the
C. elegans atlas (Randi et al. 2023) it is the row ``learned receptive field, winsorised
0.99`` of ``benchmarks/signal_propagation.py``; ``celegans.predict_response`` is the one-line
entry.

Example::

    fit = fit_response_field(responses, positions, exclude=["AVAL"])  # DataFrames by name
    fit.predict(["AVAL"])                                              # [responder, stimulated]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from napari_mesoscale.params import Params, param
from napari_mesoscale.progress import Progress, ProgressCallback

__all__ = [
    "ResponseField",
    "ResponseFieldFit",
    "ResponseFieldParams",
    "fit_response_field",
    "predict_field",
    "train_response_field",
    "winsorised",
]


@dataclass
class ResponseFieldParams(Params):
    """How a :class:`ResponseField` is trained (defaults: the C. elegans benchmark's row)."""

    basis_widths_um: tuple[float, ...] = param(
        (3.0, 6.0, 12.0, 24.0),
        "initial sd of the basis kernels (one kernel each; its sd per axis is trained)",
        unit="µm",
    )
    steps: int = param(300, "Adam steps of the leave-one-stimulated-out fit", minimum=1)
    learning_rate: float = param(0.02, "Adam learning rate", minimum=1e-6, maximum=1.0)
    l2: float = param(1e-3, "L2 penalty on the mixing weights", minimum=0.0)
    clip_quantile: float | None = param(
        0.99,
        "responses winsorised at this quantile of the training columns' |responses| "
        "(None: not clipped)",
        minimum=0.5,
        maximum=1.0,
    )
    loss: str = param("mse", "training loss on the observed pairs", choices=("mse", "huber"))
    non_negative: bool = param(False, "mixing weights kept ≥ 0 (through a softplus)")
    min_responders: int = param(
        5,
        "a stimulated column trains the field only with at least this many observed responders",
        minimum=1,
    )
    min_stimulated: int = param(3, "fewest training columns a fit accepts", minimum=2)


class ResponseField(torch.nn.Module):
    """A receptive field over the stimulated somata, learned by gradient (module docstring).

    Parameters
    ----------
    groups : int
        Responder groups, each with its own mixing weights and bias.
    widths_um : sequence of float
        Initial sd (µm) of the basis kernels, the same on the three axes.
    extra : int
        Components mixed beside the pooled features (reciprocal, connectome-linear).
    non_negative : bool
        Mixing weights through a softplus (≥ 0).
    """

    def __init__(
        self,
        groups: int,
        widths_um: tuple[float, ...] = (3.0, 6.0, 12.0, 24.0),
        extra: int = 2,
        non_negative: bool = False,
    ):
        super().__init__()
        self.non_negative = non_negative
        self.clip_quantile: float | None = None
        widths = torch.log(torch.tensor(widths_um, dtype=torch.float64))
        self.log_width = torch.nn.Parameter(widths[:, None].repeat(1, 3))
        basis, real = len(widths_um), torch.float64
        self.log_prior = torch.nn.Parameter(torch.full((basis,), -0.7, dtype=real))
        start = -3.0 if non_negative else 0.0  # softplus(-3) ~ 0.05
        self.mix = torch.nn.Parameter(torch.full((groups, basis + extra), start, dtype=real))
        self.bias = torch.nn.Parameter(torch.zeros(groups, dtype=real))

    def pooled(self, offsets, values, observed, keep) -> torch.Tensor:
        """(B, N, J) pooled training columns; offsets (J, K, 3), values / observed (N, K),
        keep (J, K) 0 where a column must not be read (its own, in leave-one-out)."""
        scaled = offsets[None] / self.log_width.exp()[:, None, None]
        kernel = torch.exp(-0.5 * (scaled**2).sum(-1)) * keep
        total = torch.einsum("nk,bjk->bnj", values, kernel)
        weight = torch.einsum("nk,bjk->bnj", observed, kernel)
        return total / (weight + self.log_prior.exp()[:, None, None])

    def predict(self, inputs: dict[str, torch.Tensor], group: torch.Tensor) -> torch.Tensor:
        """Prediction (N, J) from :func:`field_inputs` and the responders' groups (N,)."""
        keys = ("offsets", "values", "observed", "keep")
        return self(self.pooled(*(inputs[k] for k in keys)), inputs["others"], group)

    def weights(self) -> torch.Tensor:
        """The mixing weights (groups, B + E): non-negative through a softplus if asked."""
        return torch.nn.functional.softplus(self.mix) if self.non_negative else self.mix

    def forward(self, pooled, others, group) -> torch.Tensor:
        """Prediction (N, J) from pooled (B, N, J), the other components (E, N, J) and the
        responders' groups (N,)."""
        features = torch.cat([pooled, others])
        mixed = torch.einsum("fnj,nf->nj", features, self.weights()[group])
        return mixed + self.bias[group][:, None]


def reciprocal_responses(R: np.ndarray, train: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Prediction of R[i, j] (j in ``columns``) by R[j, i]: how j responded when i was
    stimulated (i a training neuron; 0 otherwise). Only training columns are read."""
    out = np.zeros((len(R), len(columns)))
    out[train] = np.nan_to_num(R[np.ix_(columns, train)]).T
    return out


def field_inputs(R, positions, train, columns, linear=None) -> dict[str, torch.Tensor]:
    """What the field reads to predict ``columns``: only training columns' responses (minus
    each column itself when it is a training column: leave-one-stimulated-out), the
    reciprocal responses and, if given, the linear prediction (N, len(columns)) scaled to
    unit sd over its block."""
    as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    keep = 1.0 - (columns[:, None] == train[None, :])
    others = [reciprocal_responses(R, train, columns)]
    if linear is not None:
        others.append(linear / (np.std(linear) + 1e-12))
    return {
        "offsets": as_tensor(positions[train][None] - positions[columns][:, None]),
        "values": as_tensor(np.nan_to_num(R[:, train])),
        "observed": as_tensor(np.isfinite(R[:, train]).astype(float)),
        "keep": as_tensor(keep),
        "others": as_tensor(np.stack(others)),
    }


def winsorised(R: np.ndarray, train: np.ndarray, quantile: float | None) -> np.ndarray:
    """R with every entry clipped at the ``quantile`` of the training columns' |responses|;
    ``None``: R itself."""
    if quantile is None:
        return R
    bound = np.nanquantile(np.abs(R[:, train]), quantile)
    return np.clip(R, -bound, bound)


def _training_loss(model, inputs, group, target, observed, params, delta) -> torch.Tensor:
    error = (model.predict(inputs, group) - target)[observed]
    if params.loss == "mse":
        fit = (error**2).mean()
    else:
        fit = torch.nn.functional.huber_loss(error, torch.zeros_like(error), delta=delta)
    return fit + params.l2 * (model.weights() ** 2).sum()


def train_response_field(
    R: np.ndarray,
    positions: np.ndarray,
    groups: np.ndarray,
    train: np.ndarray,
    linear: np.ndarray | None = None,
    params: ResponseFieldParams | None = None,
    callback: ProgressCallback | None = None,
) -> tuple[ResponseField, float]:
    """Train a :class:`ResponseField` on arrays, leave-one-stimulated-out on ``train``.

    Parameters
    ----------
    R : ndarray (N, N)
        Responses [responder, stimulated], column j = neuron j; NaN unobserved.
    positions : ndarray (N, 3)
        Somata (z, y, x), µm.
    groups : ndarray of int (N,)
        Responder groups (0 … G − 1).
    train : ndarray of int
        Sorted training columns.
    linear : ndarray (N, len(train)), optional
        A connectome-linear prediction of the training columns, cross-fitted (each column
        predicted by a fit that did not read it); None: no linear component.
    params : ResponseFieldParams, optional
    callback : callable, optional
        Progress (:mod:`napari_mesoscale.progress`); cancelling raises ``Cancelled``.

    Returns
    -------
    model, final_loss
        The trained field (``clip_quantile`` set) and its last training loss.
    """
    params = params or ResponseFieldParams()
    progress = Progress.wrap(callback)
    R = winsorised(R, train, params.clip_quantile)
    model = ResponseField(
        int(groups.max()) + 1,
        tuple(params.basis_widths_um),
        extra=1 if linear is None else 2,
        non_negative=params.non_negative,
    )
    inputs = field_inputs(R, positions, train, train, linear)
    target = torch.as_tensor(R[:, train], dtype=torch.float64)
    observed = torch.isfinite(target)
    target = torch.nan_to_num(target)
    group = torch.as_tensor(groups)
    delta = float(target[observed].std())
    optimiser = torch.optim.Adam(model.parameters(), lr=params.learning_rate)
    every = max(1, params.steps // 50)
    for step in range(params.steps):
        optimiser.zero_grad()
        total = _training_loss(model, inputs, group, target, observed, params, delta)
        total.backward()
        optimiser.step()
        if step % every == 0 or step == params.steps - 1:
            progress.report(
                (step + 1) / params.steps, f"step {step + 1}", loss=float(total.detach())
            )
    model.clip_quantile = params.clip_quantile
    return model, float(total.detach())


def predict_field(model, R, positions, groups, train, columns, linear=None) -> np.ndarray:
    """The trained field's prediction (N, len(columns)) of ``columns`` (arrays as in
    :func:`train_response_field`; ``linear`` (N, len(columns)) if the field was trained with
    one)."""
    R = winsorised(R, train, model.clip_quantile)
    inputs = field_inputs(R, positions, train, columns, linear)
    with torch.no_grad():
        return model.predict(inputs, torch.as_tensor(groups)).numpy()


@dataclass
class ResponseFieldFit:
    """A trained :class:`ResponseField` with the data it reads (see :func:`fit_response_field`).

    Attributes
    ----------
    model : ResponseField
    names : list
        The neurons, rows and columns of ``responses`` in this order.
    positions : ndarray (N, 3)
        Somata (z, y, x), µm.
    responses : ndarray (N, N)
        The measured responses [responder, stimulated] as given (not winsorised).
    groups : ndarray of int (N,)
        Responder group of each neuron.
    train : ndarray of int
        The training columns (indices into ``names``).
    params : ResponseFieldParams
    final_loss : float
    uses_linear : bool
        Trained with a connectome-linear component (then :meth:`predict` needs one).
    """

    model: ResponseField
    names: list
    positions: np.ndarray
    responses: np.ndarray
    groups: np.ndarray
    train: np.ndarray
    params: ResponseFieldParams
    final_loss: float
    uses_linear: bool = False
    _index: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {name: k for k, name in enumerate(self.names)}

    @property
    def training_stimulated(self) -> list:
        """Names of the stimulated neurons the field was trained on."""
        return [self.names[k] for k in self.train]

    @property
    def kernel_widths_um(self) -> pd.DataFrame:
        """Trained sd (µm) of each basis kernel along z, y, x."""
        widths = self.model.log_width.exp().detach().numpy()
        return pd.DataFrame(widths, columns=["z", "y", "x"]).rename_axis("basis")

    @property
    def mixing_weights(self) -> pd.DataFrame:
        """Mixing weights per responder group: one column per basis kernel, ``reciprocal`` and
        (if used) ``connectome_linear``."""
        columns = [f"basis_{b}" for b in range(len(self.model.log_prior))] + ["reciprocal"]
        columns += ["connectome_linear"] if self.uses_linear else []
        return pd.DataFrame(self.model.weights().detach().numpy(), columns=columns)

    def predict(self, stimulated, linear=None) -> pd.DataFrame:
        """Predicted responses of every neuron to stimulating each of ``stimulated``.

        Parameters
        ----------
        stimulated : name or sequence of names
            Neurons of :attr:`names` (with a position). A training neuron gets its
            leave-one-out prediction (its own column is not read).
        linear : array-like (N, len(stimulated)) or DataFrame, optional
            Connectome-linear prediction of these columns; required if the field was
            trained with one (scaled to unit sd over the columns predicted together).

        Returns
        -------
        DataFrame
            [responder, stimulated], indexed by :attr:`names`; the stimulated neuron's own
            entry is NaN.
        """
        if isinstance(stimulated, str) or np.ndim(stimulated) == 0:
            stimulated = [stimulated]
        missing = [s for s in stimulated if s not in self._index]
        if missing:
            raise ValueError(f"stimulated neuron(s) {missing} are not among the fit's neurons.")
        columns = np.array([self._index[s] for s in stimulated], dtype=int)
        if not np.isfinite(self.positions[columns]).all():
            raise ValueError("every stimulated neuron to predict needs a finite position.")
        linear = self._linear_block(linear, list(stimulated))
        values = predict_field(
            self.model, self.responses, self.positions, self.groups, self.train, columns, linear
        )
        values[columns, np.arange(len(columns))] = np.nan
        return pd.DataFrame(values, index=pd.Index(self.names), columns=list(stimulated))

    def _linear_block(self, linear, stimulated: list) -> np.ndarray | None:
        if not self.uses_linear:
            if linear is not None:
                raise ValueError("this field was trained without linear=; predict without it.")
            return None
        if linear is None:
            raise ValueError("this field was trained with linear=; pass linear= to predict.")
        if isinstance(linear, pd.DataFrame):
            linear = linear.reindex(index=self.names, columns=stimulated)
        linear = np.asarray(linear, dtype=float)
        if linear.shape != (len(self.names), len(stimulated)):
            raise ValueError(
                f"linear must be (N, len(stimulated)) = {(len(self.names), len(stimulated))}; "
                f"got {linear.shape}."
            )
        return np.nan_to_num(linear)


def _positions_table(positions, count: int | None) -> tuple[list, np.ndarray]:
    """Names and (N, 3) positions from a DataFrame (``z, y, x``; names from an ``id`` column
    or the index) or an (N, 3) array (names 0 … N − 1)."""
    if isinstance(positions, pd.DataFrame):
        missing = {"z", "y", "x"} - set(positions.columns)
        if missing:
            raise ValueError(f"positions needs columns z, y, x (µm); missing {sorted(missing)}.")
        names = (positions["id"] if "id" in positions else positions.index.to_series()).tolist()
        values = positions[["z", "y", "x"]].to_numpy(dtype=float)
    else:
        values = np.asarray(positions, dtype=float)
        if values.ndim != 2 or values.shape[1] != 3:
            raise ValueError(f"positions must be (N, 3) (z, y, x in µm); got {values.shape}.")
        names = list(range(len(values)))
    if len(set(names)) != len(names):
        raise ValueError("positions has duplicate neuron names.")
    if count is not None and len(names) != count:
        raise ValueError(
            f"responses is {count} × {count} but positions has {len(names)} neurons; an array "
            "of responses needs one position per row / column, in the same order."
        )
    return names, values


def _square(matrix, names: list, what: str) -> np.ndarray:
    """``matrix`` [responder, stimulated] as an (N, N) float array over ``names``."""
    if isinstance(matrix, pd.DataFrame):
        unknown = sorted(map(str, (set(matrix.index) | set(matrix.columns)) - set(names)))
        if unknown:
            raise ValueError(f"{what} names neurons without a position: {unknown[:10]}.")
        return matrix.reindex(index=names, columns=names).to_numpy(dtype=float)
    values = np.asarray(matrix, dtype=float)
    if values.shape != (len(names), len(names)):
        raise ValueError(
            f"{what} must be (N, N) [responder, stimulated] with N = {len(names)} neurons; "
            f"got {values.shape}."
        )
    return values


def _training_columns(R, positions, exclude: list, names: list, params) -> np.ndarray:
    if not np.isfinite(R).any():
        raise ValueError("responses has no observed (finite) entry.")
    index = {name: k for k, name in enumerate(names)}
    unknown = [e for e in exclude if e not in index]
    if unknown:
        raise ValueError(f"exclude names neurons not in positions: {unknown}.")
    counts = np.isfinite(R).sum(axis=0)
    usable = (counts >= params.min_responders) & np.isfinite(positions).all(axis=1)
    usable[[index[e] for e in exclude]] = False
    train = np.flatnonzero(usable)
    if len(train) < params.min_stimulated:
        raise ValueError(
            f"only {len(train)} stimulated column(s) have ≥ min_responders = "
            f"{params.min_responders} observed responders and a position; the fit needs at "
            f"least min_stimulated = {params.min_stimulated}."
        )
    return train


def _group_codes(groups, names: list) -> np.ndarray:
    if groups is None:
        return np.zeros(len(names), dtype=int)
    if isinstance(groups, pd.Series):
        groups = groups.reindex(names)
    labels = np.asarray(groups)
    if labels.shape != (len(names),):
        raise ValueError(f"groups must give one label per neuron ({len(names)}).")
    return np.unique(labels.astype(str), return_inverse=True)[1]


def fit_response_field(
    responses,
    positions,
    *,
    linear=None,
    groups=None,
    exclude=(),
    params: ResponseFieldParams | None = None,
    callback: ProgressCallback | None = None,
    **overrides: Any,
) -> ResponseFieldFit:
    """Learn how stimulating a neuron moves the others from the neurons that were stimulated.

    Parameters
    ----------
    responses : DataFrame or ndarray (N, N)
        Measured responses [responder, stimulated], NaN where a pair was not observed. A
        DataFrame is indexed by responder name with stimulated names as columns (any subset of
        the neurons of ``positions``); an array's row and column k are neuron k of
        ``positions``.
    positions : DataFrame or ndarray (N, 3)
        Somata (z, y, x) in µm: a DataFrame with columns ``z, y, x`` and names in ``id`` or
        the index, or an array.
    linear : DataFrame or ndarray (N, N), optional
        A connectome-linear prediction of every column, cross-fitted on the training columns
        (each predicted by a fit that did not read it); None: no linear component.
    groups : array-like (N,) or Series, optional
        Responder groups (e.g. neuron class), each with its own mixing weights; default one.
    exclude : sequence of names
        Stimulated neurons kept out of training (e.g. the one to predict).
    params : ResponseFieldParams, optional
        Training options; ``**overrides`` replace single fields (``steps=100``;
        ``clip_quantile=None`` turns the winsorising off).
    callback : callable, optional
        Progress (:mod:`napari_mesoscale.progress`); returning False raises ``Cancelled``.

    Returns
    -------
    ResponseFieldFit
        ``predict(stimulated)`` for neurons never stimulated (or left out).

    Raises
    ------
    ValueError
        Mismatched shapes or names, no observed entry, fewer than ``min_stimulated``
        usable stimulated columns, or a parameter out of range (named).
    """
    params = (params or ResponseFieldParams()).replace(**overrides).validate()
    if not params.basis_widths_um or min(params.basis_widths_um) <= 0:
        raise ValueError("basis_widths_um must list at least one width > 0 µm.")
    progress = Progress.wrap(callback)
    count = None
    if not isinstance(responses, pd.DataFrame):
        if np.ndim(responses) != 2:
            raise ValueError(
                f"responses must be 2-D [responder, stimulated]; got {np.shape(responses)}."
            )
        count = np.shape(responses)[0]
    names, coordinates = _positions_table(positions, count)
    R = _square(responses, names, "responses")
    train = _training_columns(R, coordinates, list(exclude), names, params)
    group = _group_codes(groups, names)
    linear_train = None
    if linear is not None:
        linear_train = np.nan_to_num(_square(linear, names, "linear")[:, train])
    progress.report(0.0, f"{len(train)} stimulated columns, {int(np.isfinite(R).sum())} pairs")
    model, loss = train_response_field(
        R, coordinates, group, train, linear_train, params, progress.stage(0.0, 1.0, "train")
    )
    return ResponseFieldFit(
        model, names, coordinates, R, group, train, params, loss, uses_linear=linear is not None
    )
