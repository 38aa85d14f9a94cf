"""Hyper-parameters of the mesoscale model and of its training (one dataclass, JSON-able)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from napari_mesoscale.model.network import ACTIVATIONS


@dataclass
class ModelConfig:
    """Every knob of :func:`napari_mesoscale.model.fit_mesoscale` (all have defaults).

    Architecture
    ------------
    n_filters : number of basis filters B (candidate motifs).
    rf_diameter : receptive-field diameter in µm, an upper bound on a domain's extent; ``None`` =
        5 x the median distance to the 8th-nearest neuron.
    stride : grid stride in µm; ``None`` = rf_diameter / 2.
    hidden, depth, activations : shape of every configurable network.
    population_filters : how many of the ``n_filters`` filters (the last ones) are population
        filters — the mesoscopic escape-rate model of seed 003 reduced to one step
        (:mod:`napari_mesoscale.model.population_filter`) — for population-level domains whose
        neurons are exchangeable members of one population. 0 = all configurable.
    gather_radius : radius (µm) of the local gather used without a connectome; ``None`` =
        rf_diameter / 2.
    max_neighbors : at most this many gather neighbours per neuron (O(N * max_neighbors)).
    edge_init : initial drive weights: ``"ridge"`` (per-neuron ridge regression on the training
        block; default) or ``"connectome"`` (the connectome kernels of seed 004: each neuron's
        adjacency column, signed synapse counts, L1-normalised,
        :func:`napari_mesoscale.model.connectome_filters.connectome_kernels`; needs
        ``connectome=``).
    freeze_edges : keep the drive weights at their initial values (not trained; they are then
        not counted in ``n_params``).
    init_radius, init_neighbors : neighbourhood used to initialise the assignment (features
        smoothing, communities); ``None`` = rf_diameter / 4, nearest 24.
    normalise : ``"global"`` (one mean and scale for the whole recording, so that a motif is
        the same function for every neuron; default) or ``"neuron"`` (z-score every neuron).

    Training
    --------
    epochs, batch_frames, lr, lr_assignment : Adam over windows of the training block.
    rollout : window length of truncated back-propagation through time (1 = one-step only).
    rollout_frames : frames of each batch that also run the free-running rollout.
    split : fractions of the recording used for training, validation and test (contiguous).
    patience : early stopping on the validation loss, counted once annealing has ended.
    precision : ``"auto"`` (bfloat16 mixed precision on CUDA, float32 elsewhere), ``"bf16"``
        (bfloat16 autocast on any device, CPU included) or ``"fp32"``.

    Assignment
    ----------
    init : ``"dynamics"`` (k-means of per-neuron dynamics features and a field score from the
        correlated neighbourhood) or ``"random"``.
    init_strength, location_strength : scale of the initial filter and field logits.
    smooth_features : smooth the dynamics features over correlated neighbours before k-means.
    group_init : group neurons into communities of the neighbour graph weighted by lagged
        activity correlation (Louvain, within one k-means group), give each community the
        majority motif and one common field (unique per motif).
    shared_field_logits : add one logit per (field, filter) shared by the neurons of a field.
    freeze_assignment_epochs : epochs at the start in which only filters and interfaces learn.
    tau_start, tau_end, anneal_fraction : softmax temperature, annealed geometrically over
        ``anneal_fraction`` of the epochs.
    hard_fraction : final fraction of the epochs trained with straight-through one-hot
        assignments (each neuron in exactly one pair).
    routing : ``"all"`` evaluates every candidate (field, filter) pair of a neuron in every
        step (cost N * Lm * B); ``"best_slot"`` evaluates, per filter, only the neuron's
        currently best field (cost N * B; the field choice then comes from the
        initialisation, shared field logits and the entropy term).
    final_reassign : after training, move every neuron to the pair with the lowest one-step
        error on the training block (hard alternating step).

    Loss weights (the five terms of DESIGN.md section 4, plus usage balance and rollout)
    -----------------------------------------------------------------------------------
    lambda_prediction : assignment-weighted prediction error of x(t+1).
    lambda_local : expected error of the individual pairs, sum_q pi_q (out_q - x)^2 (the local,
        competitive term that makes filters specialise).
    lambda_rollout : k-step free-running error.
    lambda_entropy : mean assignment entropy.
    lambda_sparsity : group sparsity of filter usage.
    lambda_complexity : expected complexity of the configurable networks.
    lambda_interface : distance of the local interfaces from identity.
    lambda_balance : KL of filter usage from uniform, weighted by how high tau still is.
    """

    n_filters: int = 4
    rf_diameter: float | None = None
    stride: float | None = None
    hidden: int = 8
    depth: int = 2
    activations: tuple[str, ...] = ACTIVATIONS
    population_filters: int = 0
    gather_radius: float | None = None
    max_neighbors: int = 32
    edge_init: str = "ridge"
    freeze_edges: bool = False
    init_radius: float | None = None
    init_neighbors: int = 24
    normalise: str = "global"

    epochs: int = 60
    batch_frames: int = 32
    lr: float = 0.01
    lr_assignment: float = 0.05
    rollout: int = 3
    rollout_frames: int = 8
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    patience: int = 10
    precision: str = "auto"

    init: str = "dynamics"
    init_strength: float = 3.0
    location_strength: float = 3.0
    smooth_features: bool = True
    group_init: bool = True
    shared_field_logits: bool = False
    freeze_assignment_epochs: int = 5
    tau_start: float = 1.0
    tau_end: float = 0.05
    anneal_fraction: float = 0.6
    hard_fraction: float = 0.2
    final_reassign: bool = False
    routing: str = "best_slot"

    lambda_prediction: float = 1.0
    lambda_local: float = 1.0
    lambda_rollout: float = 0.2
    lambda_entropy: float = 0.01
    lambda_sparsity: float = 0.0
    lambda_complexity: float = 0.01
    lambda_interface: float = 0.1
    lambda_balance: float = 0.1

    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["activations"] = list(self.activations)
        d["split"] = list(self.split)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if "activations" in kw:
            kw["activations"] = tuple(kw["activations"])
        if "split" in kw:
            kw["split"] = tuple(kw["split"])
        return cls(**kw)

    def replace(self, **changes) -> ModelConfig:
        names = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(
                f"unknown model option(s) {unknown}; valid options: {sorted(names - {'extra'})}"
            )
        d = self.to_dict()
        d.update(changes)
        return ModelConfig.from_dict(d)
