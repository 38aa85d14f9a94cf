"""Hyper-parameters of the mesoscale model and of its training: the one source of fit defaults.

:class:`ModelConfig` is a :class:`napari_mesoscale.params.Params` dataclass. ``fit_mesoscale``
takes its defaults from it, ``napari-mesoscale fit`` builds its options from it
(:meth:`ModelConfig.add_arguments`) and the napari fit widget builds its controls from it
(:meth:`ModelConfig.widget_options`), so every default below is written exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from napari_mesoscale.model.network import ACTIVATIONS
from napari_mesoscale.params import Params, param

__all__ = ["ModelConfig"]

_NOT_SET = "None = derived from the data"

#: Defaults that changed, at their former values: a saved fit whose configuration lacks one of
#: these fields was made before the field existed, hence with this value.
FORMER_DEFAULTS: dict[str, Any] = {
    "wiring_features": 0.0,
    "wiring_scope": "neuron",
    "lambda_range": 0.0,
    "range_probe_share": 1.0,
    "activity_assignment": "trained",
    "input_lags": 1,
    "revert_tolerance": 0.01,
}


@dataclass
class ModelConfig(Params):
    """Every knob of :func:`napari_mesoscale.model.fit_mesoscale` (all have defaults).

    The loss has five main terms — assignment-weighted prediction error, the local competitive
    error of every candidate pair, entropy of the assignment, group sparsity of filter usage
    and complexity of the configurable networks — plus the distance of the local interfaces
    from identity, a usage-balance term and the free-running rollout error. Population filters
    are the one-step reduction of the mesoscopic escape-rate model of René, Longtin & Macke
    (2020); ``edge_init="connectome"`` starts the drive weights from the connectome kernels of
    connectome-constrained networks (Chu et al. 2022). See ``ModelConfig.describe()`` for a
    table of every field with its unit and valid range.
    """

    # -- architecture -------------------------------------------------------------------
    n_filters: int = param(
        4,
        "number of basis filters B (candidate motifs)",
        minimum=1,
        maximum=64,
        label="basis filters",
    )
    rf_diameter: float | None = param(
        None,
        f"receptive-field diameter, an upper bound on a domain's extent ({_NOT_SET}: "
        "5 x the median distance to the 8th-nearest neuron)",
        unit="µm",
        minimum=0.0,
        gui=False,
    )
    stride: float | None = param(
        None,
        f"grid stride ({_NOT_SET}: rf_diameter x stride_fraction)",
        unit="µm",
        minimum=0.0,
        gui=False,
    )
    stride_fraction: float = param(
        0.5,
        "grid stride as a fraction of rf_diameter, used when stride is not set: a field can "
        "hold a community of radius up to (1/2 - 0.87 x stride_fraction) x rf_diameter wherever "
        "it lies",
        minimum=0.05,
        maximum=1.0,
        gui=False,
    )
    hidden: int = param(8, "hidden units of every configurable network", minimum=1, maximum=1024)
    depth: int = param(2, "layers of every configurable network", minimum=1, maximum=16)
    activations: tuple[str, ...] = param(
        ACTIVATIONS, "activation functions the configurable networks choose from", gui=False
    )
    population_filters: int = param(
        0,
        "how many of the filters (the last ones) are escape-rate population filters for "
        "domains of exchangeable neurons (René, Longtin & Macke 2020); 0 = all configurable",
        minimum=0,
        maximum=64,
        label="population filters",
    )
    input_lags: int | str = param(
        "auto",
        "frames of the neuron's own state the filters see: 1 = x[t] only; 2 = x[t] and "
        "x[t-1] (second-order units such as resonators: a one-step filter cannot see their "
        "phase); 'auto' = a linear probe on the training block decides before training "
        "(2 when x[t-1] lowers per-neuron ridge predictors' pooled held-in one-step MSE by at "
        "least 10 %, or that of at least 5 % of the neurons by half: second-order units; "
        "model/lag_probe.py; the fit's config then holds the integer and fit.lag_probe the "
        "probe's figures). The prediction "
        "target stays x[t+1]; free-running forecasts carry x[t-1]",
        choices=(1, 2, "auto"),
        gui=False,
    )
    gather_radius: float | None = param(
        None,
        f"radius of the local gather used without a connectome ({_NOT_SET}: rf_diameter / 2)",
        unit="µm",
        minimum=0.0,
        gui=False,
    )
    max_neighbors: int = param(
        32, "at most this many gather neighbours per neuron", minimum=1, gui=False
    )
    edge_init: str = param(
        "ridge",
        "initial drive weights: per-neuron ridge regression on the training block, or "
        "the connectome kernels (Chu et al. 2022; needs a connectome)",
        choices=("ridge", "connectome"),
        label="drive weights start",
    )
    kernel_normalisation: str = param(
        "l1",
        "scale of the connectome kernels the drive starts from (edge_init='connectome'): "
        "'l1': each neuron's input weights sum to 1 in magnitude (a weighted mean of its "
        "inputs); 'spectral': synapse counts over the adjacency's spectral radius (kept in "
        "proportion across neurons, so a neuron with more synapses is driven harder); "
        "'binary': 1 on every edge (the sum of the presynaptic partners, synapse counts "
        "ignored); 'none': raw synapse counts",
        choices=("l1", "spectral", "binary", "none"),
        gui=False,
    )
    freeze_edges: bool = param(
        False,
        "keep the drive weights at their initial values (not trained, not counted in n_params)",
        label="freeze drive weights",
    )
    output_init: str = param(
        "random",
        "initial output layer of the configurable basis filters: 'random', or 'zero' (every "
        "filter's output weights and offset 0, so the untrained model predicts the training "
        "mean and its evoked response to any input is 0: a model that learns only a "
        "correction to what it is given starts at no correction; not for population filters)",
        choices=("random", "zero"),
        gui=False,
    )
    linear_skip: str = param(
        "none",
        "a per-neuron linear path added to the filters' prediction: 'none', or 'ridge' — "
        "every neuron's next state gets a_i x_i[t] (+ a2_i x_i[t-1] with input_lags=2) + "
        "d_i (its linear drive, sum_k w_ki x_k) + e_i (its stimulus drive) + c_i, coefficients "
        "trainable and initialised from a linear per-neuron ridge on the training block (which "
        "also starts the drive and stimulus weights), the configurable filters' output layer "
        "starting at zero, so the untrained model is that ridge's prediction and the filters "
        "learn what it leaves; the untrained state is also the first candidate of the "
        "best-validation state, so a fit never returns a state that validates worse than its "
        "linear start. Needs edge_init='ridge' and population_filters=0",
        choices=("none", "ridge"),
        gui=False,
    )
    neuron_gains: bool = param(
        False,
        "give every neuron a trainable gain on its own-state inputs (x[t], and x[t-1] with "
        "input_lags=2) into whichever filter it uses, penalised towards 1 with the local "
        "interfaces (lambda_interface): one shared motif filter then serves neurons of the same "
        "motif whose own time constants or periods differ. Not a default: rule R13 found "
        "about 1 % lower held-out error on dev zoo brains but no cheaper reversion, and "
        "0.3 % higher median error on the toy brain",
        gui=False,
    )
    init_radius: float | None = param(
        None,
        f"neighbourhood radius of the assignment initialisation ({_NOT_SET}: rf_diameter / 4)",
        unit="µm",
        minimum=0.0,
        gui=False,
    )
    init_neighbors: int = param(
        24, "neighbours used by the assignment initialisation", minimum=1, gui=False
    )
    normalise: str = param(
        "global",
        "'global': one mean and scale for the whole recording (a motif is the same "
        "function for every neuron); 'neuron': z-score every neuron",
        choices=("global", "neuron"),
    )

    # -- training ------------------------------------------------------------------------
    epochs: int = param(60, "passes over the training block", minimum=1, maximum=100_000)
    batch_frames: int = param(32, "windows per Adam step", minimum=1, gui=False)
    micro_batch_frames: int = param(
        0,
        "windows per forward/backward pass; the passes of a batch add up to one Adam step "
        "(the same gradient, less memory). 0: automatic, the whole batch on a GPU, on the CPU "
        "passes of at most 2**21 (window, neuron, pair) evaluations",
        minimum=0,
        gui=False,
    )
    lr: float = param(0.01, "Adam learning rate of filters and interfaces", minimum=0.0, gui=False)
    lr_assignment: float = param(
        0.05, "Adam learning rate of the assignment logits", minimum=0.0, gui=False
    )
    rollout: int = param(
        3,
        "window length of truncated back-propagation through time (1 = one-step only)",
        unit="frames",
        minimum=1,
        gui=False,
    )
    rollout_frames: int = param(
        8, "windows of each batch that also run the free rollout", minimum=0, gui=False
    )
    split: tuple[float, float, float] = param(
        (0.7, 0.15, 0.15),
        "fractions of the recording for training, validation and test (contiguous blocks)",
        gui=False,
    )
    patience: int = param(
        10,
        "early stopping on the validation loss, counted once annealing has ended",
        unit="epochs",
        minimum=1,
        gui=False,
    )
    precision: str = param(
        "auto",
        "'auto': bfloat16 mixed precision on CUDA, float32 elsewhere; 'bf16' on any device; 'fp32'",
        choices=("auto", "bf16", "fp32"),
        gui=False,
    )

    observation: str = param(
        "activity",
        "what the recording is: 'activity' (fitted as given) or 'calcium' dF/F (the filters "
        "evolve a deconvolved latent activity, read out per neuron through a fitted indicator "
        "decay, gain and saturation; see napari_mesoscale.model.observation)",
        choices=("activity", "calcium"),
    )
    activity_assignment: str = param(
        "reverted",
        "with observation='activity', assignment='gradient' and the dynamics init: 'trained' "
        "lets the assignment logits learn after freeze_assignment_epochs; 'motifs' keeps "
        "every neuron's filter (its motif) at the initialisation's and lets the logits learn "
        "which of that filter's candidate fields (its domain) it joins; 'initial' keeps the "
        "logits at the initialisation for the whole fit (motifs and domains). The temperature "
        "anneals as with 'trained', so the filters train against the labels the fit ends "
        "with (measured on zoo brains: training moved 3-20 % of the neurons to another "
        "family's filter with no gain in held-out error); 'validated' trains twice, "
        "'motifs' and 'trained', and keeps the trained fit only when its validation one-step "
        "error is more than 5 % below the kept fit's (fit.assignment_choice says which and "
        "why; twice the training time); 'restored' trains as 'trained', then gives every "
        "neuron that training moved off its initial filter that filter back when its "
        "validation one-step error rises by at most restore_tolerance (undone if the fit's "
        "rises by more than 1 %; fit.assignment_choice says how many; three validation passes); "
        "'motifs_moved' trains as 'motifs', then moves each neuron to another filter's best "
        "pair where that pair's validation one-step error is more than move_margin below its "
        "own (undone if the fit's rises; two validation passes and one over every pair); "
        "'reverted' trains as 'trained', then, if any neuron moved off its initial filter, "
        "gives every such neuron that filter back and trains revert_epochs more with every "
        "filter kept, keeping that fit if its validation one-step error is at most "
        "revert_tolerance above the trained fit's (fit.assignment_choice says which); the "
        "default since it was "
        "adopted on zoo and toy dev data under a rule fixed before the data",
        choices=(
            "trained", "motifs", "initial", "validated", "restored", "motifs_moved", "reverted"
        ),
        gui=False,
    )
    restore_tolerance: float = param(
        0.05,
        "with activity_assignment='restored': a moved neuron gets its initial filter back when "
        "its validation one-step error is at most (1 + this) x its error with the trained "
        "filter",
        minimum=0.0,
        gui=False,
    )
    move_margin: float = param(
        0.25,
        "with activity_assignment='motifs_moved': a neuron moves to another filter's best "
        "pair when that pair's validation one-step error x (1 + this) is below its own pair's",
        minimum=0.0,
        gui=False,
    )
    revert_epochs: int = param(
        10,
        "with activity_assignment='reverted': epochs trained after the moves are reverted",
        unit="epochs",
        minimum=0,
        gui=False,
    )
    revert_tolerance: float = param(
        0.02,
        "with activity_assignment='reverted': the retrained fit (the initial motifs) is kept "
        "when its validation one-step error is at most (1 + this) x the trained fit's (0.02 "
        "since rule R5 on dev data; 0.01 before)",
        minimum=0.0,
        gui=False,
    )
    calcium_assignment: str = param(
        "initial",
        "with observation='calcium': 'initial' keeps the initial assignment (k-means of the "
        "deconvolved latent's dynamics features) through training, 'trained' lets the "
        "assignment logits learn as on activity (measured: training moved the motifs away "
        "from a better initialisation, even on the true activity)",
        choices=("initial", "trained"),
        gui=False,
    )

    # -- assignment ----------------------------------------------------------------------
    init: str = param(
        "dynamics",
        "assignment initialisation: k-means of per-neuron dynamics features and a "
        "field score from the correlated neighbourhood, or random",
        choices=("dynamics", "random"),
        gui=False,
    )
    init_frames: int = param(
        2048,
        "frames (from the start of the training block) the dynamics initialisation reads: "
        "its ridge fits and correlations cost time in proportion",
        unit="frames",
        minimum=16,
        gui=False,
    )
    init_strength: float = param(3.0, "scale of the initial filter logits", minimum=0.0, gui=False)
    location_strength: float = param(
        3.0, "scale of the initial field logits", minimum=0.0, gui=False
    )
    smooth_features: bool = param(
        True, "smooth the dynamics features over correlated neighbours before k-means", gui=False
    )
    smooth_passes: int = param(
        1,
        "passes of that smoothing (2: neighbours of neighbours count too; run_pipeline's choice "
        "for noisy calcium features)",
        minimum=1,
        maximum=16,
        gui=False,
    )
    connectome_smoothing: float = param(
        0.0,
        "weight of each connectome partner (either direction) in one more smoothing pass of "
        "the dynamics features before k-means; 0: off (run_pipeline's choice 0.3: a motif "
        "instance is wired within, so its members' noisy short-recording features pool)",
        minimum=0.0,
        maximum=10.0,
        gui=False,
    )
    wiring_features: float = param(
        2.0,
        "weight of each neuron's connectome wiring signature (clustering, sign balance of "
        "inputs and outputs, synapse-weighted reciprocity; see model/initialise.py "
        "wiring_features) appended to the standardised dynamics features before k-means; "
        "pooled with them over correlated neighbours. 0: off (the default before 2026-11-29); "
        "needs a connectome (ignored "
        "without one). A motif is a circuit as well as a dynamics: an instance whose "
        "activity hides its motif still has its motif's wiring",
        minimum=0.0,
        maximum=10.0,
        gui=False,
    )
    wiring_partner_weight: float = param(
        0.3,
        "with wiring_features > 0: weight of each connectome partner (either direction) in "
        "one pooling pass of the wiring signature before it joins the dynamics features "
        "(0: no such pass)",
        minimum=0.0,
        maximum=10.0,
        gui=False,
    )
    wiring_scope: str = param(
        "subcircuit",
        "with wiring_features > 0: 'neuron' (the default before 2026-11-29; run_pipeline's "
        "choice: on detected cells' calcium the community relabel loses motifs) — the wiring "
        "signature only joins each neuron's "
        "features before k-means; 'community' — then every community of correlated neighbours "
        "is re-clustered as a whole by its members' mean features and the wiring signature of "
        "its own sub-circuit (sign balance, reciprocity, opposite-sign loops, edges on directed "
        "cycles, density; weight wiring_features), and all its neurons take its motif; "
        "'subcircuit' — the same after splitting every community into the parts of its own "
        "connectome sub-circuit that are real circuits (Louvain of the symmetrised "
        "within-community synapses; subcircuit_min_size, subcircuit_density_ratio)",
        choices=("neuron", "community", "subcircuit"),
        gui=False,
    )
    init_motif_count: str = param(
        "n_filters",
        "how many motifs the dynamics initialisation looks for: 'n_filters': exactly "
        "n_filters; 'silhouette': the number from the data, at most n_filters — the "
        "communities are clustered for every count from 2 and the smallest count whose "
        "size-weighted silhouette is within init_count_parsimony of the best is kept, "
        "counting only those where every motif holds init_count_min_share of the neurons "
        "(filters beyond the count start unused; on fresh dev zoo brains more exact counts "
        "and a higher motif ARI than the discovery's profile_cut, but well below the count "
        "given: rule R14 failed, not a default); 'consensus': the median of that count, "
        "Calinski-Harabasz's and Hartigan's on the same clusterings (fewer under-counts than "
        "'silhouette' on fresh dev brains, median motif ARI still below 0.9: rule R15 "
        "failed, not a default)",
        choices=("n_filters", "silhouette", "consensus"),
        gui=False,
    )
    init_count_min_share: float = param(
        0.08,
        "with init_motif_count='silhouette' or 'consensus': the smallest share of the "
        "neurons a motif may hold",
        minimum=0.0,
        maximum=0.5,
        gui=False,
    )
    init_count_parsimony: float = param(
        0.02,
        "with init_motif_count='silhouette' or 'consensus': a smaller count is kept when "
        "its silhouette is within this of the best count's",
        minimum=0.0,
        gui=False,
    )
    subcircuit_min_size: int = param(
        3,
        "with wiring_scope='subcircuit': fewest members of a community's part for it to count "
        "as a circuit of its own (smaller parts join the real part they are most wired to)",
        unit="neurons",
        minimum=1,
        maximum=10_000,
        gui=False,
    )
    subcircuit_density_ratio: float = param(
        4.0,
        "with wiring_scope='subcircuit': two parts of a community's sub-circuit stay one "
        "circuit when their within edge densities (|weight| per pair) are less than this many "
        "times the density between them",
        minimum=0.0,
        maximum=1e6,
        gui=False,
    )
    subcircuit_move_ratio: float = param(
        2.0,
        "with wiring_scope='subcircuit': before the split, a neuron moves to the community it "
        "has most reciprocated synapse weight (loops) with when that is at least this many "
        "times its reciprocated weight to its own (0: no move)",
        minimum=0.0,
        maximum=1e6,
        gui=False,
    )
    subcircuit_move_share: float = param(
        0.5,
        "with wiring_scope='subcircuit': a move also needs that reciprocated weight to be at "
        "least this share of the median neuron's total reciprocated weight",
        minimum=0.0,
        maximum=1e6,
        gui=False,
    )
    subcircuit_resolution: float = param(
        1.0,
        "with wiring_scope='subcircuit': Louvain resolution of the split of each community's "
        "sub-circuit (higher: smaller parts)",
        minimum=0.01,
        maximum=100.0,
        gui=False,
    )
    init_centres: str = param(
        "all",
        "neurons whose dynamics features place the initial motif centres (k-means): 'all'; "
        "'connected' — with a connectome, only those with a connectome edge (sources matched "
        "to no connectome neuron join the nearest centre and no community; run_pipeline's "
        "choice)",
        choices=("connected", "all"),
        gui=False,
    )
    group_init: bool = param(
        True,
        "group neurons into communities of the lagged-correlation neighbour graph and "
        "give each community one motif and one field",
        gui=False,
    )
    shared_field_logits: bool = param(
        False, "one extra logit per (field, filter) shared by the neurons of a field", gui=False
    )
    freeze_assignment_epochs: int = param(
        5,
        "epochs at the start in which only filters and interfaces learn",
        unit="epochs",
        minimum=0,
        gui=False,
    )
    tau_start: float = param(
        1.0, "initial softmax temperature of the assignment", minimum=0.0, gui=False
    )
    tau_end: float = param(
        0.05, "final softmax temperature (geometric annealing)", minimum=0.0, gui=False
    )
    anneal_fraction: float = param(
        0.6,
        "fraction of the epochs over which tau is annealed",
        minimum=0.0,
        maximum=1.0,
        gui=False,
    )
    hard_fraction: float = param(
        0.2,
        "final fraction of the epochs trained with straight-through one-hot assignments",
        minimum=0.0,
        maximum=1.0,
        gui=False,
    )
    final_reassign: bool = param(
        False,
        "after training, move every neuron to the pair with the lowest one-step training error",
        gui=False,
    )
    assignment: str = param(
        "gradient",
        "'gradient': the assignment logits learn by gradient descent; 'alternating': every "
        "reassign_every epochs each community moves to the filter that predicts its members "
        "best on held-in frames (hard EM, with idle filters re-seeded by splits; measured "
        "worse than 'gradient' from the dynamics start, better from a random one); 'em': "
        "before training, prediction loss finds the motifs (cross-prediction of linearised "
        "per-community filters, linkage and k-means++ starts, hard EM, see model/reassign.py), "
        "then the assignment is kept while the filters train",
        choices=("gradient", "alternating", "em"),
        gui=False,
    )
    discover_grouping: str = param(
        "profile",
        "how the discovery ('em') groups communities before its EM: 'profile': complete "
        "linkage of the correlation between communities' cross-prediction profiles (how well "
        "every candidate filter predicts them and how well their filter predicts every "
        "candidate), refined by EM; 'loss': average linkage of the symmetrised "
        "cross-prediction loss and k-means++ starts, the lowest held-in loss wins (measured "
        "worse on the dev zoo families: wrong groupings reach a lower pooled loss)",
        choices=("profile", "loss"),
        gui=False,
    )
    discover_motif_count: str = param(
        "n_filters",
        "how many motifs the discovery ('em') looks for: 'n_filters': exactly n_filters; "
        "'profile_cut': the groups left when the complete-linkage tree of the communities' "
        "cross-prediction profiles is cut at discover_cut_distance, at most n_filters "
        "(chosen on dev zoo brains, benchmarks/motif_count.py); 'merge_test': the profile cut, "
        "then groups merge while a pooled filter predicts both on held-out frames within "
        "discover_merge_tolerance of their own filters; 'merge_t': the same merging with "
        "the neurons' paired t statistic below discover_merge_t; 'affine_cut': the profile "
        "cut on cross-prediction after a per-neuron affine refit (discover_affine_cut_distance"
        "); 'loss_cut': complete linkage of the symmetric cross-prediction loss scaled by its "
        "90th percentile, cut at discover_loss_cut; 'wiring_cut': the profile cut with the "
        "connectome's wiring as a second view (communities whose own sub-circuits are wired "
        "differently stay apart, wired groups with one wiring merge up to "
        "discover_wiring_merge_distance; the profile cut without a connectome)",
        choices=(
            "n_filters", "profile_cut", "merge_test", "merge_t", "affine_cut", "loss_cut",
            "wiring_cut",
        ),
        gui=False,
    )
    discover_cut_distance: float = param(
        0.1,
        "profile correlation distance (1 - correlation) above which the discovery keeps two "
        "groups of communities apart ('em' with discover_motif_count='profile_cut')",
        minimum=0.0,
        maximum=2.0,
        gui=False,
    )
    discover_wiring_merge_distance: float = param(
        0.5,
        "profile correlation distance below which two groups of communities with the same "
        "sub-circuit wiring merge ('em' with discover_motif_count='wiring_cut')",
        minimum=0.0,
        maximum=2.0,
        gui=False,
    )
    discover_wiring_tolerance: float = param(
        5.0,
        "standard errors of a wiring signature feature beyond which two communities (or two "
        "groups) count as wired differently ('em' with discover_motif_count='wiring_cut')",
        minimum=0.0,
        maximum=1000.0,
        gui=False,
    )
    discover_wiring_veto_tolerance: float = param(
        5.0,
        "standard errors of a signature feature beyond which two communities' profiles may "
        "not join ('em' with discover_motif_count='wiring_cut'; 1000: only communities with "
        "and without synapses inside are kept apart)",
        minimum=0.0,
        maximum=1000.0,
        gui=False,
    )
    discover_affine_cut_distance: float = param(
        0.1,
        "profile correlation distance at which the discovery cuts the tree of the "
        "communities' cross-prediction profiles after a per-neuron affine refit ('em' with "
        "discover_motif_count='affine_cut')",
        minimum=0.0,
        maximum=2.0,
        gui=False,
    )
    discover_loss_cut: float = param(
        0.1,
        "fraction of the brain's 90th-percentile symmetric cross-prediction loss below which "
        "the discovery merges groups of communities (complete linkage; 'em' with "
        "discover_motif_count='loss_cut')",
        minimum=0.0,
        maximum=10.0,
        gui=False,
    )
    discover_merge_tolerance: float = param(
        0.01,
        "largest increase of the held-out log error (0.01 = 1 %) at which the discovery "
        "merges two groups ('em' with discover_motif_count='merge_test')",
        minimum=0.0,
        maximum=1.0,
        gui=False,
    )
    discover_merge_t: float = param(
        5.0,
        "paired t statistic of the neurons' held-out log-error increase below which the "
        "discovery merges two groups ('em' with discover_motif_count='merge_t')",
        minimum=0.0,
        maximum=1000.0,
        gui=False,
    )
    discover_restarts: int = param(
        8,
        "k-means++ starts of the discovery EM besides the linkage one; the lowest held-in "
        "loss wins ('em' with discover_grouping='loss')",
        minimum=0,
        gui=False,
    )
    discover_iterations: int = param(
        10, "E/M alternations of every discovery start ('em')", minimum=1, gui=False
    )
    discover_initial_start: bool = param(
        False,
        "the discovery ('em') also runs its EM from the em path's dynamics start (the "
        "communities' most common initial filter; not the default fit's initialisation, "
        "which also reads the wiring); the start ending with the "
        "lowest held-in loss wins (init='dynamics'; from a random init it is one more random "
        "start); measured on 20 dev brains: the lower loss kept the better grouping on 12, "
        "on 10 with per-neuron heterogeneity, so not a default",
        gui=False,
    )
    stimulus_features: str = param(
        "channels",
        "the initialisation's stimulus features of a neuron: 'channels', one per stimulus "
        "channel; 'sorted', the same values sorted, largest first (how strongly it follows "
        "its strongest input, not which channel: instances of one motif that follow "
        "different channels look alike); rule R11 on dev data: better on dev zoo brains "
        "(median motif ARI 0.973 -> 0.990), worse on toy dev seeds (one 1.00 -> 0.91), so "
        "not a default; 'both': the per-channel values and the sorted ones (rule R12: fewer "
        "dev brains at motif ARI >= 0.9, toy dev seeds slightly lower; not a default)",
        choices=("channels", "sorted", "both"),
        gui=False,
    )
    motif_choice: str = param(
        "initialisation",
        "which motifs the fit starts from: 'initialisation' (the dynamics initialisation, or "
        "what assignment and init say); 'split_half': the initialisation and the discovery "
        "(assignment='em' from a random start) each run untrained on both halves of the "
        "training block, and the fit starts from the discovery when its halves agree "
        "better (ARI) than the initialisation's (model/split_half_choice.py); it failed its "
        "rule (R7) on three of four dev sets, so not a default",
        choices=("initialisation", "split_half"),
        gui=False,
    )
    reassign_every: int = param(
        1, "epochs between reassignments (alternating)", unit="epochs", minimum=1, gui=False
    )
    reassign_frames: int = param(
        512,
        "training frames scored at each reassignment (alternating)",
        unit="frames",
        minimum=2,
        gui=False,
    )
    reassign_margin: float = param(
        0.05,
        "a community moves to another filter only when that lowers its members' one-step "
        "error by this mean log-ratio (about this fraction)",
        minimum=0.0,
        gui=False,
    )
    prune_threshold: float = param(
        0.0,
        "at the last reassignment, merge a filter into the runners-up of its units when that "
        "raises the held-in loss by less than this fraction (0 = keep n_filters)",
        minimum=0.0,
        maximum=1.0,
        gui=False,
    )
    routing: str = param(
        "best_slot",
        "'all': evaluate every candidate (field, filter) pair (cost N*Lm*B); "
        "'best_slot': per filter only the neuron's best field (cost N*B)",
        choices=("all", "best_slot"),
        gui=False,
    )

    # -- loss weights ----------------------------------------------------------------------
    lambda_prediction: float = param(
        1.0, "weight of the assignment-weighted one-step error", minimum=0.0, gui=False
    )
    lambda_local: float = param(
        1.0,
        "weight of the expected error of the individual pairs (makes filters specialise)",
        minimum=0.0,
        gui=False,
    )
    lambda_rollout: float = param(
        0.2, "weight of the k-step free-running error", minimum=0.0, gui=False
    )
    lambda_range: float = param(
        1.0,
        "weight of the out-of-range penalty: the windows that run the rollout also predict from "
        "their states pushed range_probe_scale times further from each neuron's training-range "
        "midpoint, and predictions outside the training range (widened by range_margin) are "
        "penalised (squared excess), so that no filter amplifies activity beyond what was "
        "recorded and a free-running rollout stays bounded; 0 = off (the default before "
        "2026-11-29)",
        minimum=0.0,
        gui=False,
    )
    range_probe_scale: float = param(
        1.5,
        "with lambda_range > 0: how much further from the midpoint of each neuron's training "
        "range the probe states lie (1 = the recorded states)",
        minimum=1.0,
        maximum=10.0,
        gui=False,
    )
    range_probe_share: float = param(
        1.0,
        "with lambda_range > 0: share of the rollout windows of each step that run the range "
        "probe (a random draw per step, deterministic for the seed, at least one window), its "
        "penalty scaled so that its expectation is unchanged; 1 = every rollout window",
        minimum=0.01,
        maximum=1.0,
        gui=False,
    )
    range_margin: float = param(
        0.1,
        "with lambda_range > 0: allowed excess of a prediction beyond the neuron's training "
        "range, as a fraction of that range",
        minimum=0.0,
        maximum=10.0,
        gui=False,
    )
    lambda_entropy: float = param(
        0.01, "weight of the mean assignment entropy", minimum=0.0, gui=False
    )
    lambda_sparsity: float = param(
        0.0, "weight of the group sparsity of filter usage", minimum=0.0, gui=False
    )
    lambda_complexity: float = param(
        0.01, "weight of the expected network complexity", minimum=0.0, gui=False
    )
    lambda_interface: float = param(
        0.1, "weight of the interfaces' distance from identity", minimum=0.0, gui=False
    )
    lambda_balance: float = param(
        0.1,
        "weight of the KL of filter usage from uniform (scaled by how high tau still is)",
        minimum=0.0,
        gui=False,
    )

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes``; an unknown name is a ``ValueError`` listing the valid ones."""
        try:
            return super().replace(**changes)
        except ValueError as error:
            raise ValueError(str(error).replace("unknown ModelConfig", "unknown model")) from None

    def check(self, *, has_connectome: bool) -> Self:
        """Validate ranges and the cross-field rules; ``ValueError`` naming the parameter."""
        for name, spec in self.specs().items():
            value = getattr(self, name)
            if spec.choices is not None and value not in spec.choices:
                raise ValueError(
                    f"{name} must be one of {list(spec.choices)}; got {value!r} ({spec.help})"
                )
        self.validate()
        if self.population_filters > self.n_filters:
            raise ValueError(
                f"population_filters={self.population_filters} must lie between 0 and "
                f"n_filters={self.n_filters}: it says how many of the filters are population "
                "filters."
            )
        if self.output_init == "zero" and self.population_filters:
            raise ValueError(
                "output_init='zero' zeroes the configurable filters' output layer; population "
                f"filters have none (population_filters={self.population_filters}): set "
                "population_filters=0 or output_init='random'."
            )
        if self.linear_skip != "none" and (self.population_filters or self.edge_init != "ridge"):
            raise ValueError(
                f"linear_skip={self.linear_skip!r} starts the model at a per-neuron ridge with "
                "the configurable filters' output at zero; it needs population_filters=0 (got "
                f"{self.population_filters}) and edge_init='ridge' (got {self.edge_init!r})."
            )
        if self.motif_choice == "split_half" and (
            self.assignment != "gradient" or self.init != "dynamics"
            or self.observation != "activity"
        ):
            raise ValueError(
                "motif_choice='split_half' chooses between the default start and "
                "assignment='em' from a random start on activity; leave assignment='gradient' "
                f"(got {self.assignment!r}), init='dynamics' (got {self.init!r}) and "
                f"observation='activity' (got {self.observation!r})."
            )
        if self.init_motif_count != "n_filters" and (
            self.init != "dynamics" or not self.group_init
        ):
            raise ValueError(
                f"init_motif_count={self.init_motif_count!r} reads the number of motifs from "
                "the dynamics initialisation's communities; it needs init='dynamics' (got "
                f"{self.init!r}) and group_init=True (got {self.group_init!r}). From a random "
                "start, assignment='em' with discover_motif_count='profile_cut' counts instead."
            )
        if self.edge_init == "connectome" and not has_connectome:
            raise ValueError(
                "edge_init='connectome' needs connectome= (the drive weights start from its "
                "kernels); pass a connectome or use edge_init='ridge'."
            )
        return self
