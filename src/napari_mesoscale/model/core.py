"""The mesoscale network: candidates, basis filters, local interfaces, assignment, drive, context.

Everything is vectorised over neurons, candidate locations and filters: a step is a handful of
batched tensor operations (gathers, ``index_add_`` scatters and einsums), never a Python loop
over neurons, locations or filters. A neuron's next state is the assignment-weighted
output of the basis filters of its candidate (field, filter) pairs, fed its own state, its
synaptic drive, the stimulus and the context of its domain through a local interface.

Shapes used below: ``T`` frames in a batch, ``N`` neurons, ``Lm`` candidate fields per neuron
(padded), ``B`` filters, ``L`` fields in the grid, ``E`` drive edges (pre -> post), ``S``
stimulus channels, ``F`` input features per (neuron, location, filter) evaluation.
"""

from __future__ import annotations

import torch
from torch import nn

from napari_mesoscale.model.network import ACTIVATIONS, BasisBank
from napari_mesoscale.model.population_filter import MixedBank, PopulationBank


def _rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` along the first axis, shaped ``index.shape + table.shape[1:]``.

    Why not ``table[index]``: its backward (``index_put_`` with accumulation) sums repeated
    indices in a thread-dependent order on the CPU, so two runs with the same seed and several
    threads differed in the last bits; ``index_select``'s backward (``index_add_``) does not.
    """
    flat = table.index_select(0, index.reshape(-1))
    return flat.reshape(*index.shape, *table.shape[1:])


#: Names of the per-evaluation input features, in order. The stimulus enters through a learned
#: per-neuron projection ("stimulus_drive" = G_i . u_t, like a synaptic weight per channel),
#: shared by all filters so that it gives no filter an advantage.
FEATURES: tuple[str, ...] = (
    "self",
    "drive",
    "drive_rectified",
    "drive_squared",
    "stimulus_drive",
    "context",
    "context_rectified",
    "rel_z",
    "rel_y",
    "rel_x",
)

#: The inputs that carry a neuron's own past, scaled by its gain with ``neuron_gains``.
OWN_STATE: tuple[str, ...] = ("self", "self_prev")

#: Features added by ``input_lags=2``: the neuron's own previous state x[t-1], appended after
#: :data:`FEATURES` (a second-order unit's phase is invisible in x[t] alone).
LAG_FEATURES: tuple[str, ...] = ("self_prev",)

#: Features a population filter sees: not the position inside the domain (members of a
#: population are exchangeable) and not the squared drive.
POPULATION_FEATURES: tuple[str, ...] = (
    "self",
    "drive",
    "drive_rectified",
    "stimulus_drive",
    "context",
    "context_rectified",
    "self_prev",
)


def skip_names(input_lags: int = 1, n_stimulus: int = 0) -> tuple[str, ...]:
    """Columns of the per-neuron linear path (``linear_skip``), in the order of
    ``MesoscaleNet.skip_weight``: own state, previous state (``input_lags=2``), linear drive
    (sum_k w_ki x_k), stimulus drive (with a stimulus) and a constant."""
    names = ("self",) + (("self_prev",) if input_lags == 2 else ()) + ("drive",)
    return names + (("stimulus_drive",) if n_stimulus else ()) + ("bias",)


def feature_names(input_lags: int = 1) -> tuple[str, ...]:
    """Names of the filters' input features with ``input_lags`` frames of the own state."""
    if input_lags not in (1, 2):
        raise ValueError(f"input_lags must be 1 or 2; got {input_lags!r}")
    return FEATURES + (LAG_FEATURES if input_lags == 2 else ())


def previous_frames(z: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Frames ``start - 1 .. stop - 1`` of ``z`` (the x[t-1] of frames start..stop), (T, N).

    The first frame of a recording has no predecessor: it stands in for its own (a neuron at
    rest before the recording), so every frame that has a target can be predicted.
    """
    if start > 0:
        return z[start - 1 : stop - 1]
    return torch.cat([z[:1], z[: max(stop - 1, 0)]], dim=0)[: stop - start]


#: Evaluated (frame, neuron, pair) triples per pass when scoring without gradients: the
#: transients of :meth:`MesoscaleNet.evaluate` take about 300 bytes each, so a pass holds
#: well under 1 GiB (training's step holds several GiB at zebrafish scale). Scoring used
#: 2**24 and doubled a fit's peak memory (20k neurons: 5 GiB training, 10 GiB scoring). At
#: 2**21 a pass's transients (about 254 MiB at 5,000 neurons) were sometimes held twice by the
#: allocator (packaging grew memory by 190-508 MiB from run to run); 2**20 halves that.
SCORING_PAIR_FRAMES = 2**20


def frames_per_pass(n_neurons: int, pairs_per_neuron: int, most: int = 64) -> int:
    """Frames per no-grad pass so that one pass evaluates at most :data:`SCORING_PAIR_FRAMES`
    (frame, neuron, pair) triples (at least one frame, at most ``most``)."""
    per_frame = max(1, int(n_neurons) * int(pairs_per_neuron))
    return max(1, min(int(most), SCORING_PAIR_FRAMES // per_frame))


def both_finite(mask: torch.Tensor, start: int, stop: int, dtype: torch.dtype) -> torch.Tensor:
    """Where frames ``start..stop`` and the next ones are both finite, as ``dtype`` (T, N).

    ``mask`` is the recording's finite mask (bool, or 0/1 floats); only this slice is
    converted, so the whole mask never needs a float copy.
    """
    return (mask[start + 1 : stop + 1] * mask[start:stop]).to(dtype)


def _route(a: torch.Tensor, tau: float, mode: str) -> torch.Tensor:
    """Softmax / one-hot / straight-through over the last axis of logits ``a`` (-inf allowed)."""
    soft = torch.softmax(a / tau, dim=-1)
    if mode == "soft":
        return soft
    hard = torch.zeros_like(soft).scatter_(-1, a.argmax(-1, keepdim=True), 1.0)
    if mode == "hard":
        return hard
    if mode == "straight_through":
        return hard + soft - soft.detach()
    raise ValueError(f"unknown assignment mode {mode!r}")


def _filter_bank(
    n_filters: int,
    population_filters: int,
    hidden: int,
    depth: int,
    activations: tuple[str, ...],
    generator: torch.Generator | None,
    names: tuple[str, ...] = FEATURES,
) -> nn.Module:
    """A BasisBank, or configurable and population filters side by side (a MixedBank)."""
    if not 0 <= population_filters <= n_filters:
        raise ValueError(
            f"population_filters={population_filters} must lie between 0 and "
            f"n_filters={n_filters} (it counts how many of the filters are population filters)."
        )
    f = len(names)
    m = n_filters - population_filters
    configurable = BasisBank(m, f, hidden, depth, activations, generator=generator) if m else None
    if not population_filters:
        return configurable
    mask = [name in POPULATION_FEATURES for name in names]
    population = PopulationBank(population_filters, f, mask, names.index("self"), generator)
    return MixedBank(configurable, population)


class MesoscaleNet(nn.Module):
    """Parameters and forward pass of the mesoscale model.

    Parameters
    ----------
    candidates : LongTensor (N, Lm)
        Candidate field of each neuron, padded with -1.
    relpos : Tensor (N, Lm, 3)
        Relative position (p_i - mu_j) / d of each neuron in each candidate field.
    n_fields : int
        Number of fields L in the grid.
    edges : LongTensor (2, E)
        Drive edges, row 0 presynaptic, row 1 postsynaptic (connectome or local gather).
    n_filters, n_stimulus, hidden, depth, activations
        Shape of the basis bank.
    population_filters : int
        How many of the ``n_filters`` filters (the last ones) are population filters
        (:class:`~napari_mesoscale.model.population_filter.PopulationBank`) instead of
        configurable networks.
    logits_init : Tensor (N, Lm, B), optional
        Initial assignment logits (padding entries are ignored).
    edge_weight_init : Tensor (E,), optional
        Initial drive weights.
    shared_field_logits : bool
        Add a logit per (field, filter) shared by every neuron of the field (spatially
        coherent domains).
    input_lags : int
        1: the filters see the neuron's state x[t]; 2: also x[t-1] (feature ``self_prev``,
        :func:`feature_names`); :meth:`evaluate` then needs ``z_prev``.
    linear_skip : bool
        Add a per-neuron linear path to every pair's output (:meth:`linear_path`): one
        trainable coefficient per neuron and column of :func:`skip_names`.
    skip_init : Tensor (N, P), optional
        Initial coefficients of the linear path (default zeros).
    neuron_gains : bool
        Give every neuron a trainable gain on its own-state inputs (``self``, and
        ``self_prev`` with ``input_lags=2``), shared by all its pairs (:meth:`own_state_gain`):
        the filters stay shared functions while each neuron scales its own past into them.
    generator : torch.Generator, optional
        Source of randomness for the initialisation.
    """

    def __init__(
        self,
        candidates: torch.Tensor,
        relpos: torch.Tensor,
        n_fields: int,
        edges: torch.Tensor,
        *,
        n_filters: int = 4,
        n_stimulus: int = 0,
        hidden: int = 8,
        depth: int = 2,
        activations: tuple[str, ...] = ACTIVATIONS,
        logits_init: torch.Tensor | None = None,
        edge_weight_init: torch.Tensor | None = None,
        stim_weight_init: torch.Tensor | None = None,
        shared_field_logits: bool = False,
        population_filters: int = 0,
        input_lags: int = 1,
        linear_skip: bool = False,
        skip_init: torch.Tensor | None = None,
        neuron_gains: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        n, lm = candidates.shape
        b = n_filters
        self.n_neurons, self.n_fields, self.n_filters, self.n_stimulus = n, n_fields, b, n_stimulus
        self.feature_names = feature_names(input_lags)
        self.input_lags = int(input_lags)
        self.n_features = len(self.feature_names)
        mask = candidates >= 0
        self.register_buffer("cmask", mask)
        self.register_buffer("cand", candidates.clamp(min=0).long())
        self.register_buffer("relpos", relpos.float())
        self.register_buffer("pre", edges[0].long())
        self.register_buffer("post", edges[1].long())

        if logits_init is None:
            logits_init = 0.01 * torch.randn(n, lm, b, generator=generator)
        self.logits = nn.Parameter(logits_init.float().clone())
        self.shared_field_logits = bool(shared_field_logits)
        if self.shared_field_logits:
            self.field_logits = nn.Parameter(torch.zeros(n_fields, b))
        else:
            self.register_buffer("field_logits", torch.zeros(n_fields, b))
        if n_stimulus:
            init = torch.zeros(n, n_stimulus) if stim_weight_init is None else stim_weight_init
            self.stim_weight = nn.Parameter(init.float().clone())
        else:
            self.register_buffer("stim_weight", torch.zeros(n, 1))
        self.neuron_bias = nn.Parameter(torch.zeros(n))
        e = edges.shape[1]
        if edge_weight_init is None:
            edge_weight_init = torch.zeros(e)
        self.edge_weight = nn.Parameter(edge_weight_init.float().clone())
        f = self.n_features
        self.pre_gain = nn.Parameter(torch.zeros(n_fields, b, f))  # gain = 1 + pre_gain
        self.pre_offset = nn.Parameter(torch.zeros(n_fields, b, f))
        self.post_gain = nn.Parameter(torch.zeros(n_fields, b))
        self.post_offset = nn.Parameter(torch.zeros(n_fields, b))
        self.bank = _filter_bank(
            b, population_filters, hidden, depth, activations, generator, self.feature_names
        )
        self.linear_skip = bool(linear_skip)
        self.skip_names = skip_names(self.input_lags, n_stimulus) if linear_skip else ()
        if self.linear_skip:  # no parameter without it: older fits' state dicts still load
            shape = (n, len(self.skip_names))
            init = torch.zeros(shape) if skip_init is None else skip_init
            if tuple(init.shape) != shape:
                raise ValueError(f"skip_init has shape {tuple(init.shape)}; expected {shape}")
            self.skip_weight = nn.Parameter(init.float().clone())
        self.neuron_gains = bool(neuron_gains)
        if self.neuron_gains:  # no parameter without it: older fits' state dicts still load
            own = [i for i, name in enumerate(self.feature_names) if name in OWN_STATE]
            # the columns' index, made once: own_state_gain runs in every forward pass
            self.register_buffer("own_columns", torch.tensor(own), persistent=False)
            self.neuron_gain = nn.Parameter(torch.zeros(n, len(own)))  # gain = 1 + this

    def own_state_gain(self) -> torch.Tensor:
        """(N, F) factor on every input feature of a neuron's pairs (``neuron_gains``):
        ``1 + neuron_gain`` on its own-state columns (:data:`OWN_STATE`), 1 elsewhere."""
        g = self.neuron_gain
        ones = torch.ones(self.n_neurons, self.n_features, dtype=g.dtype, device=g.device)
        return ones.index_add(1, self.own_columns, g)

    # ------------------------------------------------------------------ assignment
    def assignment_logits(self) -> torch.Tensor:
        """Masked logits (N, Lm, B); padding slots are -inf."""
        a = self.logits + _rows(self.field_logits, self.cand)
        return a.masked_fill(~self.cmask[:, :, None], float("-inf"))

    def assignment(self, tau: float = 1.0, mode: str = "soft") -> torch.Tensor:
        """Assignment weights pi (N, Lm, B) over all candidate pairs, summing to one per neuron.

        ``mode`` is ``"soft"`` (softmax at temperature ``tau``), ``"hard"`` (one-hot argmax) or
        ``"straight_through"`` (one-hot forward, softmax gradient backward).
        """
        a = self.assignment_logits()
        n = a.shape[0]
        return _route(a.reshape(n, -1), tau, mode).reshape(a.shape)

    def routed(
        self, tau: float = 1.0, mode: str = "soft", routing: str = "all"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pairs to evaluate and their weights.

        ``routing="all"`` evaluates every candidate pair: slots (N, Lm, B), pi (N, Lm, B).
        ``routing="best_slot"`` evaluates, for every filter, only the neuron's best field for
        that filter (slots (N, 1, B)); the softmax runs over these B pairs. ``mode="hard"``
        with best-slot routing puts all weight on the single chosen pair.
        """
        a = self.assignment_logits()
        n, lm, b = a.shape
        if routing == "all":
            slots = torch.arange(lm, device=a.device)[None, :, None].expand(n, lm, b)
            return slots, _route(a.reshape(n, -1), tau, mode).reshape(a.shape)
        if routing != "best_slot":
            raise ValueError(f"routing must be 'all' or 'best_slot'; got {routing!r}")
        slots = a.detach().argmax(dim=1, keepdim=True)  # (N, 1, B)
        best = a.gather(1, slots)  # (N, 1, B)
        return slots, _route(best.reshape(n, b), tau, mode).reshape(n, 1, b)

    def choice(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Hard choice per neuron: slot (N,), field (N,), filter (N,)."""
        with torch.no_grad():
            a = self.assignment_logits()
            n, lm, b = a.shape
            flat = a.reshape(n, -1).argmax(-1)
            slot, filt = flat // b, flat % b
            field = self.cand[torch.arange(n, device=a.device), slot]
        return slot, field, filt

    # ------------------------------------------------------------------ forward
    def drive(self, z: torch.Tensor) -> torch.Tensor:
        """Synaptic (or local gather) drive on existing edges only: (T, N, 3).

        Channels: sum_k w_ki x_k, sum_k w_ki relu(x_k), sum_k w_ki x_k^2 — one learned weight
        per existing edge, shared by the three presynaptic nonlinearities.
        """
        zp = z.index_select(1, self.pre)
        w = self.edge_weight
        phi = torch.stack([zp, torch.relu(zp), zp * zp], dim=-1) * w[None, :, None]
        return torch.zeros(*z.shape, 3, dtype=phi.dtype, device=z.device).index_add_(
            1, self.post, phi
        )

    def context(self, z: torch.Tensor, pi: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Assignment-weighted mean of (z, relu z) over each domain, gathered back (T,N,K,B,2)."""
        t = z.shape[0]
        lb = self.n_fields * self.n_filters
        flat_q = q.reshape(-1)
        den = torch.zeros(lb, dtype=z.dtype, device=z.device).index_add_(
            0, flat_q, pi.reshape(-1).to(z.dtype)
        )
        phi = torch.stack([z, torch.relu(z)], dim=-1)  # (T, N, 2)
        contrib = phi[:, :, None, None, :] * pi[None, :, :, :, None]  # (T, N, K, B, 2)
        num = torch.zeros(t, lb, 2, dtype=contrib.dtype, device=z.device)
        num.index_add_(1, flat_q, contrib.reshape(t, -1, 2))
        ctx = num / (den[None, :, None] + 1e-6)
        return ctx.index_select(1, flat_q).reshape(t, *q.shape, 2)  # (T, N, K, B, 2)

    def evaluate(
        self,
        z: torch.Tensor,
        u: torch.Tensor | None,
        pi: torch.Tensor,
        slots: torch.Tensor,
        z_prev: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Outputs of the evaluated candidate pairs and the assignment-weighted prediction.

        Parameters
        ----------
        z : Tensor (T, N)
            Normalised state at t.
        u : Tensor (T, S) or None
            Stimulus at t.
        pi : Tensor (N, K, B)
            Weights of the evaluated pairs (from :meth:`routed`).
        slots : LongTensor (N, K, B)
            Candidate slot of every evaluated pair (filter = last axis).
        z_prev : Tensor (T, N), optional
            Normalised state at t-1; required with ``input_lags=2`` (ignored otherwise).

        Returns
        -------
        out : Tensor (T, N, K, B)
            Prediction of z at t+1 by every evaluated pair.
        pred : Tensor (T, N)
            Assignment-weighted prediction.
        """
        t, n = z.shape
        k, b = slots.shape[1], self.n_filters
        bidx = torch.arange(b, device=z.device)[None, None, :]
        cand = self.cand.gather(1, slots.reshape(n, -1)).reshape(n, k, b)
        relpos = self.relpos[torch.arange(n, device=z.device)[:, None, None], slots]
        q = cand * b + bidx
        drive = self.drive(z)
        if self.n_stimulus:
            if u is None:
                raise ValueError("this model was fitted with a stimulus; pass stimulus=")
            s_drive = u @ self.stim_weight.T  # (T, N)
        else:
            s_drive = torch.zeros_like(z)
        ctx = self.context(z, pi, q)
        prev = self.lagged(z, z_prev) if self.input_lags == 2 else None
        neuron = torch.cat([z[..., None], drive, s_drive[..., None]], dim=-1)  # (T, N, 5)
        parts = [
            neuron[:, :, None, None, :].expand(t, n, k, b, 5),
            ctx,
            relpos[None].expand(t, n, k, b, 3),
        ]
        if prev is not None:
            parts.append(prev[:, :, None, None, None].expand(t, n, k, b, 1))
        f = torch.cat(parts, dim=-1)  # (T, N, K, B, F)
        nf = self.n_features
        gain = 1.0 + _rows(self.pre_gain.reshape(-1, nf), q)  # (N, K, B, F)
        if self.neuron_gains:
            gain = gain * self.own_state_gain().to(gain.dtype)[:, None, None, :]
        off = _rows(self.pre_offset.reshape(-1, nf), q)
        out = self.bank(f * gain + off)  # (T, N, K, B)
        post_gain, post_offset = self.post_gain.reshape(-1), self.post_offset.reshape(-1)
        out = out * (1.0 + _rows(post_gain, q)) + _rows(post_offset, q)
        out = out + self.neuron_bias[:, None, None]
        if self.linear_skip:  # the same for every pair of a neuron: O(N) per frame
            out = out + self.linear_path(z, drive[..., 0], s_drive, prev)[:, :, None, None]
        pred = (out * pi).sum(dim=(-1, -2))
        return out, pred

    def linear_path(
        self,
        z: torch.Tensor,
        drive: torch.Tensor,
        s_drive: torch.Tensor,
        z_prev: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The per-neuron linear path (T, N) of ``linear_skip`` (zeros without it).

        a_i z_i[t] (+ a2_i z_i[t-1]) + d_i drive_i[t] + e_i s_i[t] + c_i, with ``drive`` (T, N)
        the linear drive channel sum_k w_ki z_k[t] and ``s_drive`` (T, N) the stimulus drive
        G_i . u[t] (the inputs the filters see too); coefficients in ``skip_weight``, columns
        :func:`skip_names`.
        """
        if not self.linear_skip:
            return torch.zeros_like(z)
        w = self.skip_weight
        cols = [z] + ([self.lagged(z, z_prev)] if self.input_lags == 2 else []) + [drive]
        if self.n_stimulus:
            cols.append(s_drive)
        out = w[:, -1].expand_as(z)
        for j, col in enumerate(cols):
            out = out + w[:, j] * col
        return out

    def lagged(self, z: torch.Tensor, z_prev: torch.Tensor | None) -> torch.Tensor:
        """``z_prev`` checked against ``z`` (the x[t-1] the filters of ``input_lags=2`` need)."""
        if z_prev is None:
            raise ValueError(
                "this model was fitted with input_lags=2: pass z_prev= (the state one frame "
                "before z, see core.previous_frames)"
            )
        if z_prev.shape != z.shape:
            raise ValueError(f"z_prev has shape {tuple(z_prev.shape)}, z {tuple(z.shape)}")
        return z_prev.to(z.dtype)

    def predict_hard(
        self, z: torch.Tensor, u: torch.Tensor | None, z_prev: torch.Tensor | None = None
    ) -> torch.Tensor:
        """One-step prediction with each neuron in its single chosen pair: (T, N).

        ``z_prev`` (T, N): the state one frame before ``z``, needed with ``input_lags=2``.
        """
        slot, _, filt = self.choice()
        n, b = z.shape[1], self.n_filters
        slots = slot[:, None, None].expand(n, 1, b)
        pi = torch.zeros(n, 1, b, dtype=z.dtype, device=z.device)
        pi[torch.arange(n, device=z.device), 0, filt] = 1.0
        _, pred = self.evaluate(z, u, pi, slots, z_prev)
        return pred

    # ------------------------------------------------------------------ penalties
    def interface_penalty(self) -> torch.Tensor:
        """Mean squared distance of the local interfaces (and, with ``neuron_gains``, of the
        neurons' own-state gains) from identity."""
        penalty = (
            self.pre_gain.pow(2).mean()
            + self.pre_offset.pow(2).mean()
            + self.post_gain.pow(2).mean()
            + self.post_offset.pow(2).mean()
        )
        if self.neuron_gains:
            penalty = penalty + self.neuron_gain.pow(2).mean()
        return penalty

    def n_trainable(self) -> int:
        """Number of trainable scalars (padding logits excluded)."""
        total = sum(p.numel() for p in self.parameters() if p.requires_grad)
        pad = int((~self.cmask).sum()) * self.n_filters
        return int(total - pad)
