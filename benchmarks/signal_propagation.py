"""Predict the worm's responses to stimulating neurons that no model saw stimulated.

Data: the signal-propagation atlas of Randi et al. 2023 (``napari_mesoscale.datasets.celegans``;
needs the ``worm`` data packages). Target R[i, j] = mean ΔF/F of responder i when neuron j is
optogenetically stimulated; unobserved pairs are missing (masked in every loss and score) and
the stimulated neuron's own entry is never scored. Stimulated neurons with at least
``--min-responders`` observed responders are split into k folds; each model is trained on the
others' responses and predicts every observed responder of the held-out ones.

Models, on the same folds:

* ``mesoscale`` — :func:`napari_mesoscale.fit_mesoscale` with ``connectome=`` (chemical +
  gap-junction adjacency, both directions for gap junctions) fitted on the training neurons'
  trials (``celegans.stimulation_trials``; ``SELECTED_PROTOCOL``: rest, the stimulated neuron
  alone at the pulse, then the observed responders at their measured ΔF/F; unobserved
  responders NaN = masked in the loss). A held-out neuron is then stimulated *in silico*: the
  fitted model runs freely from rest through :meth:`MesoscaleFit.predict` (``steps=1``), the
  stimulated neuron clamped at the pulse after every step; the prediction is read where the
  training traces hold the measurement. ``--first-protocol`` runs the first run's protocol.
* ``connectome linear`` — steady state of x = W x + e_j with W (post ← pre) nonzero only on
  the connectome's edges (the same edges as the mesoscale drive, ``Protocol.drive_edges``),
  fitted (Adam, masked squared loss, L2) to the training columns:
  prediction (I − W)⁻¹[i, j].
* ``anatomy`` — propagation through the connectome's own weights, no fitted weights (as Randi
  et al. 2023 compare anatomy with function): (I − αÂ)⁻¹[i, j], Â the synapse-count adjacency
  over its spectral radius, α ∈ (0, 1) chosen on the training neurons.
* ``responder mean`` — each responder's mean response over the training neurons.
* ``mesoscale (atlas drive)`` — the mesoscale model as above with the atlas itself in place of
  the anatomy: the drive's edges and frozen kernels are the training columns' measured
  responses (j ← i with weight R[i, j], plus the reverse edge, so a held-out neuron drives
  the neurons whose stimulation it responded to; its own column is never read).
* ``mesoscale residual`` — connectome linear plus a mesoscale correction: the linear model's
  cross-fitted residuals on the training columns (3 inner folds) become the trials'
  responses, the mesoscale model's in-silico response to a held-out neuron is the
  correction, scaled by a shrinkage chosen on those inner folds (0 = the linear model).

* ``receptive-field readout`` — connectome linear plus two readouts of the training columns
  that need no trained network: ``field`` pools the training columns with a Gaussian
  receptive field over the stimulated somata (sd chosen on inner folds among
  ``FIELD_WIDTHS_UM``: neurons a few µm apart respond alike), ``reciprocal`` predicts R[i, j]
  by R[j, i] (how the held-out neuron responded when i was stimulated); non-negative weights
  fitted on 5 inner folds of the training neurons (cross-fitted linear predictions there).
  ``receptive-field pooling`` and ``reciprocal responses`` are each readout alone.
  ``receptive-field readout, scale chosen`` also chooses on the inner folds whether each
  component is scaled within the fold it is applied to (``READOUT_SCALES``).
* ``mesoscale (readout drive)`` — the mesoscale model (``fit_mesoscale``) whose frozen drive
  is that readout (``readout_drive``: cross-fitted columns for the training neurons, the
  held-out prediction for the test neurons), trained on the training stimulations with the
  frame before the response masked but for the pulse; its prediction is the evoked response
  (the pulse run minus the rest run; ``READOUT_DRIVE_PROTOCOL``). ``mesoscale (evoked)`` is
  the same protocol with the connectome as drive.
* ``mesoscale (readout residual, seed ensemble)`` — the readout plus a correction by that
  network, which starts at no correction (``output_init="zero"``) and is trained on the
  readout's cross-fitted residuals (``READOUT_RESIDUAL_PROTOCOL``); the row's prediction is
  the mean of the seeds' predictions (declared before the outer run).

* ``learned receptive field`` — the receptive field itself learned by gradient (seventh pass,
  :class:`LearnedField`, the package's :class:`~napari_mesoscale.model.ResponseField`): the
  training columns pooled with shared basis kernels of the 3D offset between stimulated somata
  (anisotropic Gaussians, their widths trained, each a mean over the responder's observed
  entries shrunk by a trained prior weight), mixed with the reciprocal responses and
  connectome-linear (unit sd per fold); every weight trained jointly by
  leave-one-stimulated-out on the training columns (each training column predicted from the
  others; linear cross-fitted on the inner split the seed picks). ``…, per class`` mixes per
  responder class.

``--seeds S`` fits every mesoscale model S times per fold (seeds k, k + 10, …; seed k is the
first run's; for the readout models the seed is the inner split); a fold's r is the mean
over seeds, the seeds' spread and the r of their mean prediction (``seed_ensemble``) are kept
beside it.

Score: Pearson r over all held-out (responder, stimulated) pairs of a fold (and, apart, over
the pairs with a significant response, q < 0.05); mean over folds with
a bootstrap 95 % interval over folds. Wild type and unc-31 (dense-core-vesicle release, hence
most extrasynaptic signalling, reduced; Randi et al. find anatomy predicts it better).

The paper's own comparison (``paper_metric_in_sample``): no folds, Pearson r over every
observed pair between an anatomy-derived response and the atlas's ΔF/F (and 1 − q), per
strain, with unc-31 − wt resampled over stimulated neurons (Randi et al. 2023 use a
biophysical simulation on the connectome for the anatomy-derived response; here it is the
anatomy model's propagation and the one-hop synapse counts).

Domains on real data: the motifs of every mesoscale fit (wild type) — fraction of left/right
homologous pairs (AVAL/AVAR …) sharing a motif and the ARI of motifs vs neuron class
(sensory/inter/motor), each against a shuffled-label baseline and a spatial control (the
nearest neuron that is not the homologue; k-means clusters of the soma positions).

    OMP_NUM_THREADS=1 python benchmarks/signal_propagation.py               # CPU, a few minutes
    python benchmarks/signal_propagation.py --device cuda --epochs 30      # accelerator
    python benchmarks/signal_propagation.py --no-mesoscale                 # baselines only
    python benchmarks/signal_propagation.py --strains wt --seeds 3 \
        --models "connectome linear" mesoscale "mesoscale (atlas drive)" "mesoscale residual"
    # the strains side by side, then joined (margins and contrasts recomputed):
    python benchmarks/signal_propagation.py --strains wt --out wt.json &
    python benchmarks/signal_propagation.py --strains unc31 --out unc31.json
    python benchmarks/signal_propagation.py --merge wt.json unc31.json
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from _results import write_json
from napari_mesoscale.datasets import celegans
from napari_mesoscale.model import fit_mesoscale
from napari_mesoscale.model.response_field import (
    ResponseField,
    ResponseFieldParams,
    field_inputs,
    predict_field,
    reciprocal_responses,
    train_response_field,
    winsorised,
)

RESULTS = Path(__file__).parent / "results" / "signal_propagation.json"
CLASSES = ("sensory", "inter", "motor")
SIGNIFICANT_Q = 0.05


def response_matrix(names: list[str], strain: str, column: str = "dff") -> np.ndarray:
    """R[i, j]: mean ΔF/F (or q) of responder i to stimulated j; NaN unobserved and on the
    diagonal."""
    index = {n: k for k, n in enumerate(names)}
    table = celegans.atlas(strain)
    table = table[np.isfinite(table["dff"])]
    matrix = np.full((len(names), len(names)), np.nan)
    matrix[table["responder"].map(index), table["stimulated"].map(index)] = table[column]
    np.fill_diagonal(matrix, np.nan)
    return matrix


def anatomy_adjacency(names: list[str], source: str) -> np.ndarray:
    """A[post, pre]: chemical synapse counts plus gap junctions in both directions."""
    index = {n: k for k, n in enumerate(names)}
    adjacency = np.zeros((len(names), len(names)))
    table = celegans.connectome(source)
    pre, post = table["pre"].map(index).to_numpy(), table["post"].map(index).to_numpy()
    np.add.at(adjacency, (post, pre), table["synapses"].to_numpy())
    gap = (table["type"] == "electrical").to_numpy()
    np.add.at(adjacency, (pre[gap], post[gap]), table["synapses"].to_numpy()[gap])
    np.fill_diagonal(adjacency, 0.0)
    return adjacency


def drive_adjacency(A: np.ndarray, drive_edges: str) -> np.ndarray:
    """The connectome the fitted models (mesoscale, connectome linear) see, [post, pre]."""
    if drive_edges == "as_wired":
        return A
    if drive_edges == "both_directions":
        return A + A.T
    raise ValueError(f"drive_edges must be 'as_wired' or 'both_directions'; got {drive_edges!r}")


def pearson(prediction: np.ndarray, target: np.ndarray) -> float:
    ok = np.isfinite(prediction) & np.isfinite(target)
    if ok.sum() < 3 or np.std(prediction[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(prediction[ok], target[ok])[0, 1])


def predict_responder_mean(R: np.ndarray, train: np.ndarray, test: np.ndarray) -> np.ndarray:
    mean = np.nanmean(R[:, train], axis=1)
    return np.repeat(np.nan_to_num(mean)[:, None], len(test), axis=1)


def predict_anatomy(A: np.ndarray, R: np.ndarray, train: np.ndarray, test: np.ndarray):
    normalised = A / max(np.max(np.abs(np.linalg.eigvals(A))), 1e-12)
    identity = np.eye(len(A))
    best = (-np.inf, 0.5)
    for alpha in (0.1, 0.3, 0.5, 0.7, 0.9, 0.97):
        propagation = np.linalg.inv(identity - alpha * normalised)
        r = pearson(propagation[:, train], R[:, train])
        best = max(best, (r, alpha))
    propagation = np.linalg.inv(identity - best[1] * normalised)
    return propagation[:, test], {"alpha": best[1]}


def predict_connectome_linear(
    A: np.ndarray, R: np.ndarray, train: np.ndarray, test: np.ndarray, steps: int = 300
):
    post, pre = np.nonzero(A)
    n = len(A)
    target = torch.tensor(R[:, train])
    observed = torch.isfinite(target)
    target = torch.nan_to_num(target)
    weights = torch.zeros(len(post), dtype=torch.float64, requires_grad=True)
    gain = torch.ones(1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.Adam([weights, gain], lr=0.01)
    identity = torch.eye(n, dtype=torch.float64)
    post_t, pre_t = torch.tensor(post), torch.tensor(pre)
    train_t = torch.tensor(train)

    def propagation() -> torch.Tensor:
        W = torch.zeros(n, n, dtype=torch.float64).index_put((post_t, pre_t), weights)
        return gain * torch.linalg.inv(identity - W)

    for _ in range(steps):
        optimiser.zero_grad()
        M = propagation()[:, train_t]
        loss = ((M - target)[observed] ** 2).mean() + 1e-3 * (weights**2).sum()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        return propagation()[:, torch.tensor(test)].numpy(), {"final_loss": float(loss)}


@dataclass(frozen=True)
class Protocol:
    """How the atlas becomes training trials and how a held-out neuron is driven in silico."""

    frames_per_trial: int = 8
    rise_frames: float = 1.0
    response_lag_frames: int = 0
    mask_rest: bool = False
    pulse: float = 1.0  # activity the stimulated neuron is held at
    stimulus: bool = True  # give the fit the stimulus channel (a learned per-neuron drive)
    read_from: int = 4  # the prediction is the mean of frames read_from … frames_per_trial - 1
    fit_options: tuple[tuple[str, Any], ...] = ()
    #: "as_wired": chemical pre → post plus gap junctions both ways; "both_directions": every
    #: edge also reversed (responses travel against the chemical direction too: on the
    #: training columns of every fold, one hop both ways correlates better with the atlas)
    drive_edges: str = "as_wired"
    #: every neuron but the stimulated one NaN (the training mean) in the frames between the
    #: pulse and the response, in training and in silico: the pulse is then the only input
    #: that moves the drive (no offset from the other neurons' rest, whose z is not 0)
    mask_pulse_frames: bool = False
    #: the prediction is the *evoked* response: the in-silico run with the pulse minus the same
    #: run with the stimulated neuron at rest (ΔF/F 0), as the atlas's ΔF/F is relative to the
    #: pre-stimulus baseline; it removes each responder's own offset (its fitted bias, which
    #: was 75–80 % of the variance of the raw prediction on an inner fold)
    evoked: bool = False

    def options(self) -> dict[str, Any]:
        return dict(self.fit_options)


#: The protocol of the first benchmark run (responders rise with the pulse, 8 frames).
FIRST_PROTOCOL = Protocol()
#: The protocol used now, chosen on an inner split of one outer fold's training neurons (see
#: docs/celegans.md): the responders move one frame after the pulse, so the frame before
#: holds the stimulated neuron alone; 3 frames (rest, pulse, response), the rest frame masked
#: for the trial's observed neurons (no reset to predict), the pulse at 0.3 (in the range of
#: the responses, not 1), no stimulus channel (its per-neuron weight is a responder mean
#: fitted in-sample), drive weights frozen at the connectome kernels, all of the trials
#: but a validation tail in training, and small batches (4 windows per Adam step).
SELECTED_PROTOCOL = Protocol(
    frames_per_trial=3,
    rise_frames=0.01,
    response_lag_frames=1,
    mask_rest=True,
    pulse=0.3,
    stimulus=False,
    read_from=2,
    fit_options=(
        ("edge_init", "connectome"),
        ("freeze_edges", True),
        ("split", (0.85, 0.15, 0.0)),
        ("batch_frames", 4),
    ),
)


def mesoscale_fit(
    names, positions, A, strain, train_names, device, epochs, seed, protocol, responses=None
):
    """Fit the mesoscale model on the training neurons' trials; ``responses`` (N, N), if
    given, replaces the atlas's ΔF/F in the trials (same observed pairs, same time course)."""
    activity, stimulus, _ = celegans.stimulation_trials(
        names,
        strain,
        stimulated=train_names,
        frames_per_trial=protocol.frames_per_trial,
        rise_frames=protocol.rise_frames,
        response_lag_frames=protocol.response_lag_frames,
        mask_rest=protocol.mask_rest,
        pulse=protocol.pulse,
    )
    if responses is not None:
        activity = replace_responses(activity, responses, names, train_names, protocol)
    if protocol.mask_pulse_frames:
        activity = mask_pulse_frames(activity, names, train_names, protocol)
    adjacency = sp.csr_matrix(drive_adjacency(A, protocol.drive_edges).T)  # pre → post
    return fit_mesoscale(
        activity,
        positions,
        connectome=adjacency,
        stimulus=stimulus if protocol.stimulus else None,
        epochs=epochs,
        device=device,
        seed=seed,
        **protocol.options(),
    )


def replace_responses(activity, responses, names, train_names, protocol) -> np.ndarray:
    """The trials with every observed responder's plateau taken from ``responses`` instead of
    the atlas (the rise, the masks and the clamped stimulated neuron unchanged)."""
    frames = protocol.frames_per_trial
    since = np.arange(frames) - protocol.response_lag_frames
    rise = np.where(since > 0, 1.0 - np.exp(-since / protocol.rise_frames), 0.0)
    index = {n: k for k, n in enumerate(names)}
    activity = activity.copy()
    for trial, name in enumerate(train_names):
        j = index[name]
        block = activity[trial * frames : (trial + 1) * frames]
        observed = np.isfinite(responses[:, j])
        observed[j] = False
        moving = since > 0
        block[np.ix_(moving, observed)] = rise[moving, None] * responses[observed, j][None, :]
    return activity


def mask_pulse_frames(activity, names, train_names, protocol) -> np.ndarray:
    """The trials with every neuron but the stimulated one NaN in the frames between the
    pulse's onset and the responders' first move (``Protocol.mask_pulse_frames``)."""
    frames, lag = protocol.frames_per_trial, protocol.response_lag_frames
    index = {n: k for k, n in enumerate(names)}
    activity = activity.copy()
    for trial, name in enumerate(train_names):
        block = activity[trial * frames + 1 : trial * frames + 1 + lag]
        pulse = block[:, index[name]].copy()
        block[:] = np.nan
        block[:, index[name]] = pulse
    return activity


def predict_mesoscale(fit, n: int, test: np.ndarray, protocol: Protocol) -> np.ndarray:
    """In-silico stimulation of every test neuron (``stimulate``); with ``protocol.evoked``
    minus the same run with the stimulated neuron at rest."""
    response = stimulate(fit, n, test, protocol)
    if protocol.evoked:
        response = response - stimulate(fit, n, test, replace(protocol, pulse=0.0))
    return response


def stimulate(fit, n: int, test: np.ndarray, protocol: Protocol) -> np.ndarray:
    """Free-running in-silico stimulation of every test neuron at once, clamped each step.

    The same time course as a training trial: frame 0 at rest with the stimulus off, then the
    stimulus on and the stimulated neuron held at 1 after every step; the prediction is the
    mean of the frames ``protocol.read_from`` onwards (where the training traces sit at the
    measured response)."""
    frames = protocol.frames_per_trial
    trace = np.zeros((frames, len(test), n))
    rows = np.arange(len(test))
    if protocol.mask_rest:  # as in training: the rest frame enters as the training mean
        trace[0] = np.nan
    for t in range(1, frames):
        state = trace[t - 1].copy()
        drive = np.full((len(test) + 1, 1), 1.0 if t > 1 else 0.0)
        stacked = np.vstack([state, np.zeros((1, n))])
        trace[t] = fit.predict(stacked, stimulus=drive if protocol.stimulus else None)[1:]
        if protocol.mask_pulse_frames and t <= protocol.response_lag_frames:
            trace[t] = np.nan  # as in training: only the pulse in the frames before the response
        trace[t, rows, test] = protocol.pulse
    return trace[protocol.read_from :].mean(axis=0).T  # (N, len(test))


def shared_motif_fraction(labels: np.ndarray, pairs: np.ndarray) -> float:
    return float(np.mean(labels[pairs[:, 0]] == labels[pairs[:, 1]]))


def nearest_other_pairs(positions: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Each left neuron with its nearest neuron other than its homologue (spatial control)."""
    distances = np.linalg.norm(positions[pairs[:, 0], None] - positions[None], axis=-1)
    distances[np.arange(len(pairs)), pairs[:, 0]] = np.inf
    distances[np.arange(len(pairs)), pairs[:, 1]] = np.inf
    return np.column_stack([pairs[:, 0], distances.argmin(axis=1)])


def domain_checks(labels: np.ndarray, neurons, rng: np.random.Generator) -> dict[str, Any]:
    names = neurons["id"].tolist()
    index = {n: k for k, n in enumerate(names)}
    pairs = np.array(
        [
            (index[n], index[h])
            for n, h in zip(names, neurons["homologue"], strict=True)
            if h and n.endswith("L")
        ]
    )
    positions = neurons[["z", "y", "x"]].to_numpy()
    classes = neurons["neuron_class"].to_numpy()
    keep = np.isin(classes, CLASSES)
    fraction = shared_motif_fraction(labels, pairs)
    ari = adjusted_rand_score(classes[keep], labels[keep])
    shuffled_fraction, shuffled_ari = [], []
    for _ in range(200):
        permuted = rng.permutation(labels)
        shuffled_fraction.append(shared_motif_fraction(permuted, pairs))
        shuffled_ari.append(adjusted_rand_score(classes[keep], permuted[keep]))
    # spatial controls: L/R partners sit a few µm apart and classes are regional (motor
    # neurons in the ventral cord), so position alone could explain part of both figures
    spatial = KMeans(n_clusters=int(labels.max()) + 1, n_init=4, random_state=0)
    position_clusters = spatial.fit_predict(positions)
    return {
        "homologous_pairs": len(pairs),
        "homologous_same_motif": fraction,
        "homologous_same_motif_shuffled": float(np.mean(shuffled_fraction)),
        "homologous_same_motif_shuffled_p95": float(np.percentile(shuffled_fraction, 95)),
        "nearest_non_homologue_same_motif": shared_motif_fraction(
            labels, nearest_other_pairs(positions, pairs)
        ),
        "ari_motif_vs_class": float(ari),
        "ari_shuffled_mean": float(np.mean(shuffled_ari)),
        "ari_shuffled_p95": float(np.percentile(shuffled_ari, 95)),
        "ari_position_clusters_vs_class": float(
            adjusted_rand_score(classes[keep], position_clusters[keep])
        ),
        "motif_sizes": np.bincount(labels).tolist(),
    }


def bootstrap(values: list[float], rng: np.random.Generator, n: int = 2000) -> list[float]:
    values = np.asarray([v for v in values if np.isfinite(v)])
    if values.size == 0:
        return [float("nan"), float("nan")]
    means = rng.choice(values, size=(n, values.size)).mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def margins(block: dict[str, Any], rng: np.random.Generator, model: str = "mesoscale") -> dict:
    """Paired per-fold differences r(model) - r(peer) (same folds), bootstrap 95 % over folds."""
    rows = block["models"]
    if model not in rows:
        return {}
    mine = np.asarray(rows[model]["pearson_r_per_fold"])
    out = {}
    for peer, row in rows.items():
        if peer == model:
            continue
        diff = mine - np.asarray(row["pearson_r_per_fold"])
        out[peer] = {
            "per_fold": diff.tolist(),
            "mean": float(np.nanmean(diff)),
            "ci95_bootstrap_over_folds": bootstrap(diff.tolist(), rng),
        }
    return out


def strain_contrast(results: dict[str, Any], rng: np.random.Generator, model: str) -> dict:
    """r(unc31) - r(wt) of one model; the folds differ between strains, so the two fold means
    are resampled independently."""
    strains = results["strains"]
    if not {"wt", "unc31"} <= set(strains):
        return {}
    if not all(model in strains[s]["models"] for s in ("wt", "unc31")):
        return {}  # a model run on one strain only
    wt = np.asarray(strains["wt"]["models"][model]["pearson_r_per_fold"])
    unc = np.asarray(strains["unc31"]["models"][model]["pearson_r_per_fold"])
    draws = rng.choice(unc, (2000, unc.size)).mean(1) - rng.choice(wt, (2000, wt.size)).mean(1)
    return {
        "unc31_minus_wt": float(unc.mean() - wt.mean()),
        "ci95_bootstrap_over_folds": [
            float(np.percentile(draws, 2.5)),
            float(np.percentile(draws, 97.5)),
        ],
    }


def atlas_adjacency(R: np.ndarray, train: np.ndarray) -> np.ndarray:
    """The atlas itself as the drive's connectome, [post, pre], from the training columns only:
    R[i, j] for every observed pair with j a training neuron, plus the reverse edge (j ← i
    with weight R[i, j]), so that a held-out neuron drives the neurons whose stimulation it
    responded to (its own column is never read)."""
    functional = np.zeros_like(R)
    functional[:, train] = np.nan_to_num(R[:, train])
    both = functional + functional.T
    np.fill_diagonal(both, 0.0)
    return both


def cross_fitted_linear(A, R, train, folds: int = 3, seed: int = 0) -> np.ndarray:
    """Connectome-linear predictions of the training columns, each from a fit that did not
    see that column (inner folds over the training neurons); NaN elsewhere."""
    predicted = np.full_like(R, np.nan)
    inner = np.array_split(np.random.default_rng(seed).permutation(train), folds)
    for held in inner:
        held = np.sort(held)
        predicted[:, held], _ = predict_connectome_linear(A, R, np.setdiff1d(train, held), held)
    return predicted, inner


RESIDUAL_SHRINKAGE = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)


def predict_residual(setting, names, positions, A, R, strain, train, test, linear, seeds):
    """Connectome-linear plus a mesoscale correction fitted to its out-of-fold residuals.

    The linear model's residuals on the training columns (cross-fitted, so they are the
    errors it makes on neurons it did not see) become the trials' responses; the mesoscale
    model's in-silico response to a held-out neuron is the correction, shrunk by a factor
    chosen on inner folds of the training neurons (0 = the linear model itself)."""
    drive = drive_adjacency(A, setting.protocol.drive_edges)
    crossfit, inner = cross_fitted_linear(drive, R, train)
    residual = R - crossfit

    def correction(fitted_on: np.ndarray, predicted: np.ndarray, seed: int) -> np.ndarray:
        """The mesoscale model fitted to the residuals of ``fitted_on``, run on ``predicted``."""
        fit = mesoscale_fit(
            names,
            positions,
            A,
            strain,
            [names[j] for j in fitted_on],
            setting.device,
            setting.epochs,
            seed=seed,
            protocol=setting.protocol,
            responses=residual,
        )
        return predict_mesoscale(fit, len(names), predicted, setting.protocol)

    correction_inner = np.full_like(R, np.nan)
    for m, held in enumerate(inner):  # the shrinkage, on inner folds only
        held = np.sort(held)
        correction_inner[:, held] = correction(np.setdiff1d(train, held), held, 1000 + m)
    scores = [
        pearson(crossfit[:, train] + s * correction_inner[:, train], R[:, train])
        for s in RESIDUAL_SHRINKAGE
    ]
    shrinkage = RESIDUAL_SHRINKAGE[int(np.nanargmax(scores))]
    info = {
        "shrinkage": shrinkage,
        "inner_r_per_shrinkage": dict(
            zip(map(str, RESIDUAL_SHRINKAGE), map(float, scores), strict=True)
        ),
    }
    if shrinkage == 0.0:  # the linear model itself, whatever a correction would say
        return [linear] * len(seeds), info
    predictions = [linear + shrinkage * correction(train, test, seed) for seed in seeds]
    return predictions, info


#: Widths (sd, µm) of the Gaussian receptive field over stimulated somata, chosen on inner folds.
FIELD_WIDTHS_UM = (5.0, 10.0, 15.0, 20.0)


def field_pooled(R, positions, train, test, width_um: float) -> np.ndarray:
    """Each held-out column as the training columns averaged with Gaussian weights on the
    distance between the stimulated somata (a soft receptive field of sd ``width_um``), over
    each responder's observed entries; 0 where no nearby training column observed it."""
    distance = np.linalg.norm(positions[test][:, None] - positions[train][None], axis=-1)
    weights = np.exp(-0.5 * (distance / width_um) ** 2)
    observed = np.isfinite(R[:, train])
    total = np.where(observed, R[:, train], 0.0) @ weights.T
    weight = observed.astype(float) @ weights.T
    return np.where(weight > 1e-9, total / np.maximum(weight, 1e-9), 0.0)


#: The components each readout model combines (non-negative weights fitted on inner folds).
READOUT_MODELS = {
    "receptive-field readout": ("connectome linear", "field", "reciprocal"),
    "receptive-field pooling": ("field",),
    "reciprocal responses": ("reciprocal",),
}


def readout_components(R, positions, train, test, linear, width_um) -> dict[str, np.ndarray]:
    return {
        "connectome linear": linear,
        "field": field_pooled(R, positions, train, test, width_um),
        "reciprocal": reciprocal_responses(R, train, test),
    }


#: How the readout's components are scaled before their weights apply (chosen on inner folds):
#: "as fitted" — one scale per component, from the inner folds, also applied to the outer
#: fold; "per fold" — every component divided by its sd within the fold it is applied to
#: (all responders, all of the fold's stimulated neurons: no response is read), so that a
#: component whose spread differs between the inner fits and the outer fit (the linear
#: model's: its outer predictions spread ~1.7× more on wild type fold 0) enters with the
#: share its weight was fitted for.
READOUT_SCALES = ("as fitted", "per fold")


def scaled_components(parts: dict, keys, scale: str) -> dict:
    if scale == "as fitted":
        return parts
    return {k: parts[k] / (np.std(parts[k]) + 1e-12) for k in keys}


def readout_weights(parts: list[dict], targets: list[np.ndarray], keys) -> np.ndarray:
    """Non-negative least squares of the pooled targets on the standardised components;
    returns weights already divided by each component's sd."""
    from scipy.optimize import nnls

    X = np.vstack([np.stack([p[k].ravel() for k in keys], 1) for p in parts])
    y = np.concatenate([t.ravel() for t in targets])
    ok = np.isfinite(y)
    scale = X[ok].std(axis=0) + 1e-12
    weights, _ = nnls(X[ok] / scale, y[ok] - y[ok].mean())
    return weights / scale if weights.any() else 1.0 / scale


def combine(parts: dict, keys, weights: np.ndarray) -> np.ndarray:
    return np.tensordot(np.stack([parts[k] for k in keys], -1), weights, axes=1)


def readout_inner_r(parts, targets, keys) -> float:
    """Mean r over inner folds, each scored with weights fitted on the other inner folds."""
    rs = []
    for m in range(len(parts)):
        rest = [k for k in range(len(parts)) if k != m]
        w = readout_weights([parts[k] for k in rest], [targets[k] for k in rest], keys)
        rs.append(pearson(combine(parts[m], keys, w), targets[m]))
    return float(np.nanmean(rs))


def inner_linear_fits(A, R, train, seed, folds, cache) -> tuple[list, list]:
    """The inner split of the training neurons (by ``seed``) and the connectome-linear fit of
    each inner fold, shared by every readout model and the readout drive."""
    if seed not in cache:
        inner = [
            np.sort(h)
            for h in np.array_split(np.random.default_rng(seed).permutation(train), folds)
        ]
        fits = [predict_connectome_linear(A, R, np.setdiff1d(train, h), h)[0] for h in inner]
        cache[seed] = (inner, fits)
    return cache[seed]


def fit_readout(model, A, R, positions, train, test, linear, seed, scales, folds=5, cache=None):
    """Choose a readout's field width and component scaling on inner folds of the training
    neurons (split by ``seed``), fit its weights there; returns the held-out prediction, the
    cross-fitted prediction of every training column (each from components that did not read
    it) and what was chosen. No held-out column is read."""
    keys = READOUT_MODELS[model]
    inner, fits = inner_linear_fits(A, R, train, seed, folds, {} if cache is None else cache)
    targets = [R[:, h] for h in inner]
    widths = FIELD_WIDTHS_UM if "field" in keys else FIELD_WIDTHS_UM[:1]
    scores = {}
    for width in widths:
        raw = [
            readout_components(R, positions, np.setdiff1d(train, h), h, lin, width)
            for h, lin in zip(inner, fits, strict=True)
        ]
        for scale in scales:
            parts = [scaled_components(p, keys, scale) for p in raw]
            scores[width, scale] = (readout_inner_r(parts, targets, keys), parts)
    width, scale = max(scores, key=lambda c: scores[c][0])
    parts = scores[width, scale][1]
    weights = readout_weights(parts, targets, keys)
    outer = readout_components(R, positions, train, test, linear, width)
    prediction = combine(scaled_components(outer, keys, scale), keys, weights)
    crossfit = np.full_like(R, np.nan)
    for h, p in zip(inner, parts, strict=True):
        crossfit[:, h] = combine(p, keys, weights)
    info = {
        "field_width_um": width,
        "scale": scale,
        "inner_r": {f"{w} um, {s}": v[0] for (w, s), v in scores.items()},
        "weights": dict(zip(keys, weights.round(4).tolist(), strict=True)),
    }
    return prediction, crossfit, info


def predict_readout(model, A, R, positions, train, test, linear, seed, folds=5, cache=None):
    """A readout model (``READOUT_MODELS``): the field width (and, for the models named
    "…, scale chosen", the components' scaling, ``READOUT_SCALES``) and the components'
    weights chosen on inner folds of the training neurons, then applied to the held-out
    columns."""
    base = model.removesuffix(SCALE_CHOSEN)
    scales = READOUT_SCALES if model.endswith(SCALE_CHOSEN) else READOUT_SCALES[:1]
    prediction, _, info = fit_readout(
        base, A, R, positions, train, test, linear, seed, scales, folds, cache
    )
    return prediction, info


#: Suffix of the readout models whose component scaling is chosen on inner folds.
SCALE_CHOSEN = ", scale chosen"
READOUT_MODELS[f"receptive-field readout{SCALE_CHOSEN}"] = READOUT_MODELS["receptive-field readout"]


def readout_drive(readout_fit, train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """The mesoscale model's drive, [post, pre]: column j = the receptive-field readout's
    prediction of the responses to j — cross-fitted for a training neuron (from components
    that never read its column), the held-out prediction for a test neuron — scaled to unit
    sd over the training columns; every other column 0."""
    prediction, crossfit, _ = readout_fit
    drive = np.zeros_like(crossfit)
    drive[:, train] = crossfit[:, train]
    drive[:, test] = prediction
    drive /= np.std(crossfit[:, train]) + 1e-12
    np.fill_diagonal(drive, 0.0)
    return drive


#: The mesoscale model whose drive is the receptive-field readout (``readout_drive``): the same
#: trials as ``SELECTED_PROTOCOL``, the drive frozen at the readout's columns without any
#: rescaling per neuron, the frames before the response masked but for the pulse.
READOUT_DRIVE_PROTOCOL = replace(
    SELECTED_PROTOCOL,
    fit_options=(*SELECTED_PROTOCOL.fit_options, ("kernel_normalisation", "none")),
    mask_pulse_frames=True,
    evoked=True,
)
#: The same trials and evoked read-out with the connectome as the drive (its default L1
#: kernels): what the readout drive adds over the anatomy in the same network and protocol.
EVOKED_PROTOCOL = replace(SELECTED_PROTOCOL, mask_pulse_frames=True, evoked=True)

#: The residual variant of the readout-driven network: the same drive, trials and evoked
#: read-out, but the trials hold the readout's residuals (measured minus cross-fitted readout)
#: and the filters' output layer starts at 0, so the network starts at no correction; the
#: prediction is the readout plus the network's evoked correction.
READOUT_RESIDUAL_PROTOCOL = replace(
    READOUT_DRIVE_PROTOCOL,
    fit_options=(*READOUT_DRIVE_PROTOCOL.fit_options, ("output_init", "zero")),
)
#: Declared before any outer run: this row's prediction is the mean of its seeds' predictions.
READOUT_RESIDUAL = "mesoscale (readout residual, seed ensemble)"

MESOSCALE_MODELS = (
    "mesoscale",
    "mesoscale (atlas drive)",
    "mesoscale residual",
    "mesoscale (readout drive)",
    "mesoscale (evoked)",
    READOUT_RESIDUAL,
)
BASELINES = ("responder mean", "anatomy", "connectome linear")
#: Variants of the learned receptive field (design on inner folds of outer fold 0): how the
#: components are mixed — one set of weights for all responders ("global") or per responder
#: class (``celegans.neurons()["neuron_class"]``) — and the training options of
#: :func:`fit_learned_field` (``clip_quantile``: responses winsorised, inputs and targets;
#: ``non_negative``: mixing weights ≥ 0 as the hand-set readout's).
LEARNED_FIELDS: dict[str, dict[str, Any]] = {
    "learned receptive field": {"grouping": "global"},
    "learned receptive field, per class": {"grouping": "class"},
    "learned receptive field, winsorised": {"grouping": "global", "clip_quantile": 0.995},
    "learned receptive field, winsorised 0.99": {"grouping": "global", "clip_quantile": 0.99},
    "learned receptive field, winsorised, non-negative": {
        "grouping": "global",
        "clip_quantile": 0.995,
        "non_negative": True,
    },
}
#: Control rows (choose nothing): the hand-set readout (its field width, component scaling and
#: weights chosen on inner folds exactly as ``"receptive-field readout, scale chosen"``) fed the
#: winsorised responses the learned row is fed (``winsorised(R, train, quantile)``: the field and
#: reciprocal components and the inner targets; connectome-linear from the raw responses, as for
#: the learned row); scored on the raw responses. Says how much of the learned row's gain over
#: the readout is the clipping rather than the learning.
WINSORISED_READOUTS: dict[str, tuple[str, float]] = {
    "receptive-field readout, winsorised 0.99": (f"receptive-field readout{SCALE_CHOSEN}", 0.99),
}
READOUTS = (*READOUT_MODELS, *LEARNED_FIELDS, *WINSORISED_READOUTS)


def predict_fold(model, setting, names, positions, A, R, strain, train, test, cache):
    """Predictions of one model on one fold: a list, one per seed for the mesoscale models."""
    seeds = [cache["fold"] + 10 * s for s in range(setting.seeds)]  # seed 0: first run's
    if model == "responder mean":
        return [predict_responder_mean(R, train, test)], {}
    if model == "anatomy":
        prediction, info = predict_anatomy(A, R, train, test)
        return [prediction], info
    if model == "connectome linear":  # the same edges as the mesoscale drive
        if "linear" not in cache:
            drive = drive_adjacency(A, setting.protocol.drive_edges)
            cache["linear"] = predict_connectome_linear(drive, R, train, test)
        return [cache["linear"][0]], cache["linear"][1]
    if model in READOUT_MODELS:
        linear, _ = predict_fold(
            "connectome linear", setting, names, positions, A, R, strain, train, test, cache
        )
        drive = drive_adjacency(A, setting.protocol.drive_edges)
        runs = [
            predict_readout(
                model,
                drive,
                R,
                positions,
                train,
                test,
                linear[0],
                seed,
                cache=cache.setdefault("inner_linear", {}),
            )
            for seed in seeds
        ]
        return [p for p, _ in runs], {"per_seed": [i for _, i in runs]}
    if model in WINSORISED_READOUTS:
        return predict_winsorised_readout(model, setting, positions, A, R, train, test, cache)
    if model == "mesoscale (readout drive)":
        return predict_readout_drive(setting, names, positions, A, R, strain, train, test, cache)
    if model in LEARNED_FIELDS:
        return predict_learned_field(model, setting, names, positions, A, R, train, test, cache)
    if model == READOUT_RESIDUAL:
        return predict_readout_residual(setting, names, positions, A, R, strain, train, test, cache)
    if model == "mesoscale residual":
        linear, _ = predict_fold(
            "connectome linear", setting, names, positions, A, R, strain, train, test, cache
        )
        return predict_residual(
            setting, names, positions, A, R, strain, train, test, linear[0], seeds
        )
    drive = atlas_adjacency(R, train) if model == "mesoscale (atlas drive)" else A
    protocol = EVOKED_PROTOCOL if model == "mesoscale (evoked)" else setting.protocol
    if model == "mesoscale (atlas drive)":  # already both ways; drive_edges would double it
        protocol = Protocol(**{**asdict(protocol), "drive_edges": "as_wired"})
    predictions, fits = [], []
    for seed in seeds:
        fit = mesoscale_fit(
            names,
            positions,
            drive,
            strain,
            [names[j] for j in train],
            setting.device,
            setting.epochs,
            seed=seed,
            protocol=protocol,
        )
        predictions.append(predict_mesoscale(fit, len(names), test, protocol))
        fits.append(fit)
    cache.setdefault("fits", {})[model] = fits
    return predictions, {}


def predict_winsorised_readout(model, setting, positions, A, R, train, test, cache):
    """A ``WINSORISED_READOUTS`` control, one fit per seed (the seed picks the inner split, as
    for the readout rows): the inner connectome-linear fits and the outer linear prediction
    come from the raw responses (shared with the other rows through ``cache``), the readout's
    components and inner targets from the responses winsorised at the training columns'
    quantile."""
    base, quantile = WINSORISED_READOUTS[model]
    linear, _ = predict_fold(
        "connectome linear", setting, [], positions, A, R, "", train, test, cache
    )
    drive = drive_adjacency(A, setting.protocol.drive_edges)
    clipped = winsorised(R, train, quantile)
    inner_cache = cache.setdefault("inner_linear", {})
    runs = []
    for seed in [cache["fold"] + 10 * s for s in range(setting.seeds)]:
        inner_linear_fits(drive, R, train, seed, 5, inner_cache)  # raw responses
        runs.append(
            predict_readout(
                base, drive, clipped, positions, train, test, linear[0], seed, cache=inner_cache
            )
        )
    return [p for p, _ in runs], {"per_seed": [i for _, i in runs], "clip_quantile": quantile}


def seeded_readouts(setting, names, positions, A, R, strain, train, test, cache):
    """(seed, receptive-field readout with its scale chosen) for each of the fold's seeds; the
    seed picks the readout's inner split, as for the readout rows."""
    linear, _ = predict_fold(
        "connectome linear", setting, names, positions, A, R, strain, train, test, cache
    )
    connectome = drive_adjacency(A, setting.protocol.drive_edges)
    for seed in [cache["fold"] + 10 * s for s in range(setting.seeds)]:
        yield (
            seed,
            fit_readout(
                "receptive-field readout",
                connectome,
                R,
                positions,
                train,
                test,
                linear[0],
                seed,
                READOUT_SCALES,
                cache=cache.setdefault("inner_linear", {}),
            ),
        )


def predict_readout_drive(setting, names, positions, A, R, strain, train, test, cache):
    """The mesoscale model (``fit_mesoscale``) with the receptive-field readout as its frozen
    drive, one fit per seed; the seed also picks the readout's inner split (as for the
    readout rows, so the two compare on the same inner fits)."""
    predictions, infos = [], []
    readouts = seeded_readouts(setting, names, positions, A, R, strain, train, test, cache)
    for seed, readout in readouts:
        drive = readout_drive(readout, train, test)
        fit = mesoscale_fit(
            names,
            positions,
            drive,
            strain,
            [names[j] for j in train],
            setting.device,
            setting.epochs,
            seed=seed,
            protocol=READOUT_DRIVE_PROTOCOL,
        )
        predictions.append(predict_mesoscale(fit, len(names), test, READOUT_DRIVE_PROTOCOL))
        infos.append({**readout[2], "drive_r_held_out": pearson(readout[0], R[:, test])})
        cache.setdefault("fits", {}).setdefault("mesoscale (readout drive)", []).append(fit)
    return predictions, {"per_seed": infos}


def predict_readout_residual(setting, names, positions, A, R, strain, train, test, cache):
    """Readout + the mesoscale network's correction, the mean over seeds as one prediction.

    Per seed (which also picks the readout's inner split, as for the readout rows): the
    receptive-field readout with its scale chosen; the network (``fit_mesoscale``, frozen
    readout drive, ``READOUT_RESIDUAL_PROTOCOL``) trained on the training stimulations with
    every observed response replaced by its residual from the cross-fitted readout (so the
    network never sees how much of a response the readout already explains); prediction =
    the readout's held-out prediction + the network's evoked response. The row's prediction
    is the mean of the seeds' predictions; the seeds apart are in ``per_seed``.
    """
    protocol = READOUT_RESIDUAL_PROTOCOL
    predictions, infos = [], []
    readouts = seeded_readouts(setting, names, positions, A, R, strain, train, test, cache)
    for seed, readout in readouts:
        prediction, crossfit, chosen = readout
        fit = mesoscale_fit(
            names,
            positions,
            readout_drive(readout, train, test),
            strain,
            [names[j] for j in train],
            setting.device,
            setting.epochs,
            seed=seed,
            protocol=protocol,
            responses=R - crossfit,
        )
        correction = predict_mesoscale(fit, len(names), test, protocol)
        observed = np.isfinite(R[:, test])
        predictions.append(prediction + correction)
        infos.append(
            {
                **chosen,
                "readout_r_held_out": pearson(prediction, R[:, test]),
                "r_held_out": pearson(prediction + correction, R[:, test]),
                "correction_sd_over_readout_sd": float(
                    np.std(correction[observed]) / (np.std(prediction[observed]) + 1e-12)
                ),
            }
        )
    return [np.mean(predictions, axis=0)], {"per_seed": infos}


#: The learned receptive field (seventh pass) lives in the package
#: (:mod:`napari_mesoscale.model.response_field`); ``LearnedField`` is its torch module.
LearnedField = ResponseField
learned_field_inputs = field_inputs
LEARNED_FIELD_BASIS_UM = ResponseFieldParams().basis_widths_um


def fit_learned_field(R, positions, groups, train, crossfit_linear, **options):
    """Train the package's :class:`ResponseField` by leave-one-stimulated-out on the training
    columns (``train_response_field``): each training column predicted from the others (its
    own column masked out of the pooling; connectome-linear cross-fitted on inner folds),
    masked squared (or Huber) error on the observed pairs, responses winsorised at
    ``clip_quantile`` (inputs and targets; here None unless a row sets it). ``options``:
    fields of :class:`ResponseFieldParams` (``lr``: its ``learning_rate``)."""
    if "lr" in options:
        options["learning_rate"] = options.pop("lr")
    params = ResponseFieldParams(clip_quantile=None).replace(**options)
    return train_response_field(R, positions, groups, train, crossfit_linear, params)


def predict_with_field(model, R, positions, groups, train, test, linear) -> np.ndarray:
    return predict_field(model, R, positions, groups, train, test, linear)


def responder_groups(names: list[str], grouping: str) -> np.ndarray:
    if grouping == "global":
        return np.zeros(len(names), dtype=int)
    classes = celegans.neurons().set_index("id").loc[names, "neuron_class"].to_numpy()
    return np.unique(classes, return_inverse=True)[1]


def predict_learned_field(model_name, setting, names, positions, A, R, train, test, cache):
    """The learned receptive field, one fit per seed (the seed picks the inner split whose
    connectome-linear fits give the cross-fitted linear component, as for the readouts)."""
    linear, _ = predict_fold(
        "connectome linear", setting, names, positions, A, R, "", train, test, cache
    )
    connectome = drive_adjacency(A, setting.protocol.drive_edges)
    options = dict(LEARNED_FIELDS[model_name])
    groups = responder_groups(names, options.pop("grouping"))
    predictions, infos = [], []
    for seed in [cache["fold"] + 10 * s for s in range(setting.seeds)]:
        inner, fits = inner_linear_fits(
            connectome, R, train, seed, 5, cache.setdefault("inner_linear", {})
        )
        crossfit = np.zeros((len(R), len(train)))
        for held, fit in zip(inner, fits, strict=True):
            crossfit[:, np.searchsorted(train, held)] = fit / (np.std(fit) + 1e-12)
        model, loss = fit_learned_field(R, positions, groups, train, crossfit, **options)
        predictions.append(predict_with_field(model, R, positions, groups, train, test, linear[0]))
        infos.append(
            {
                "final_loss": loss,
                "widths_um": model.log_width.exp().detach().numpy().round(2).tolist(),
                "prior_weight": model.log_prior.exp().detach().numpy().round(3).tolist(),
                "mix": model.weights().detach().numpy().round(4).tolist(),
            }
        )
    return predictions, {"per_seed": infos}


def score_row(per_seed: list[list[float]], ensemble, significant, extras, rng) -> dict:
    """One model's figures: r per fold (mean over seeds), the seeds apart, their ensemble."""
    per_fold = [float(np.mean(seed_rs)) for seed_rs in per_seed]
    row = {
        "pearson_r_per_fold": per_fold,
        "pearson_r_mean": float(np.nanmean(per_fold)),
        "pearson_r_ci95_bootstrap_over_folds": bootstrap(per_fold, rng),
        "pearson_r_significant_pairs_per_fold": significant,
        "pearson_r_significant_pairs_mean": float(np.nanmean(significant)),
        "pearson_r_significant_pairs_ci95": bootstrap(significant, rng),
        "fold_details": extras,
    }
    if max(len(seed_rs) for seed_rs in per_seed) > 1:
        row["pearson_r_per_fold_per_seed"] = per_seed
        row["seed_spread_per_fold"] = [float(np.ptp(seed_rs)) for seed_rs in per_seed]
        row["pearson_r_seed_ensemble_per_fold"] = ensemble
        row["pearson_r_seed_ensemble_mean"] = float(np.nanmean(ensemble))
    return row


def run_strain(strain: str, args, neurons, A, rng, on_fold=None) -> dict[str, Any]:
    """Every model of ``args.models`` on the folds of one strain; ``on_fold(block)`` gets the
    figures so far after each fold (a long run leaves its finished folds behind)."""
    names = neurons["id"].tolist()
    positions = neurons[["z", "y", "x"]].to_numpy()
    R = response_matrix(names, strain)
    significant = response_matrix(names, strain, "q") < SIGNIFICANT_Q
    counts = np.isfinite(R).sum(axis=0)
    stimulated = np.flatnonzero(counts >= args.min_responders)
    fold_rng = np.random.default_rng(0)  # the same split whatever ran before
    folds = np.array_split(fold_rng.permutation(stimulated), args.folds)
    models = list(args.models)
    per_seed = {m: [] for m in models}
    ensemble = {m: [] for m in models}
    scores_significant = {m: [] for m in models}
    extras: dict[str, list] = {m: [] for m in models}
    domains = []
    for k, test in enumerate(folds):
        test = np.sort(test)
        train = np.setdiff1d(stimulated, test)
        target = R[:, test]
        keep = significant[:, test]
        cache: dict[str, Any] = {"fold": k}
        for model in models:
            start, cpu = time.perf_counter(), time.process_time()
            predictions, info = predict_fold(
                model, args, names, positions, A, R, strain, train, test, cache
            )
            mean_prediction = np.mean(predictions, axis=0)
            per_seed[model].append([pearson(p, target) for p in predictions])
            ensemble[model].append(pearson(mean_prediction, target))
            scores_significant[model].append(
                float(np.mean([pearson(p[keep], target[keep]) for p in predictions]))
            )
            extras[model].append(
                {
                    **info,
                    "seconds": round(time.perf_counter() - start, 2),
                    "cpu_seconds": round(time.process_time() - cpu, 2),
                }
            )
            if model == "mesoscale" and strain == "wt":
                domains.append(domain_checks(cache["fits"][model][0].motif_labels, neurons, rng))
            rs = " ".join(f"{r:.3f}" for r in per_seed[model][-1])
            print(f"{strain} fold {k} {model}: r = {rs} {info}", flush=True)
        if on_fold is not None and k < len(folds) - 1:
            on_fold(strain_block(locals()))
    return strain_block(locals())


def strain_block(run: dict[str, Any]) -> dict[str, Any]:
    """The figures of :func:`run_strain` from its local state (the folds finished so far)."""
    R, stimulated, significant = run["R"], run["stimulated"], run["significant"]
    rng = run["rng"]
    scored = run["models"] if len(run["per_seed"][run["models"][-1]]) else []
    return {
        "stimulated_neurons": len(stimulated),
        "scored_pairs": int(np.isfinite(R[:, stimulated]).sum()),
        "significant_pairs": int(significant[:, stimulated].sum()),
        "models": {
            m: score_row(
                run["per_seed"][m],
                run["ensemble"][m],
                run["scores_significant"][m],
                run["extras"][m],
                rng,
            )
            for m in scored
        },
        "domains": run["domains"],
        "folds_done": len(run["per_seed"][run["models"][0]]),
    }


def _column_bootstrap_r(P: np.ndarray, Y: np.ndarray, rng, n: int = 500) -> np.ndarray:
    """Pearson r over all observed pairs, recomputed with the stimulated neurons resampled."""
    columns = np.flatnonzero(np.isfinite(Y).any(axis=0))
    draws = np.empty(n)
    for b in range(n):
        pick = rng.choice(columns, columns.size)
        draws[b] = pearson(P[:, pick], Y[:, pick])
    return draws


def paper_metric(A: np.ndarray, names: list[str], strains, rng, alpha: float = 0.3) -> dict:
    """Randi et al.'s comparison of anatomy with function: no folds, the correlation over every
    observed pair between an anatomy-derived response and the atlas's ΔF/F (and 1 − q), in
    each strain; unc-31 − wt with the stimulated neurons of each strain resampled."""
    normalised = A / max(np.max(np.abs(np.linalg.eigvals(A))), 1e-12)
    identity = np.eye(len(A))
    predictions = {
        f"anatomy propagation (alpha {alpha})": np.linalg.inv(identity - alpha * normalised)
        - identity,
        "one hop (synapse counts)": A,
    }
    out: dict[str, Any] = {}
    for label, P in predictions.items():
        block: dict[str, Any] = {}
        for target in ("dff", "one_minus_q"):
            draws, row = {}, {}
            for strain in strains:
                Y = response_matrix(names, strain, "dff" if target == "dff" else "q")
                Y = Y if target == "dff" else 1.0 - Y
                draws[strain] = _column_bootstrap_r(P, Y, rng)
                row[strain] = {
                    "r": pearson(P, Y),
                    "ci95_bootstrap_over_stimulated": np.percentile(draws[strain], [2.5, 97.5])
                    .round(4)
                    .tolist(),
                }
            if {"wt", "unc31"} <= set(strains):
                diff = draws["unc31"] - draws["wt"]
                row["unc31_minus_wt"] = {
                    "diff": row["unc31"]["r"] - row["wt"]["r"],
                    "ci95": np.percentile(diff, [2.5, 97.5]).round(4).tolist(),
                }
            block[target] = row
        out[label] = block
    return out


def anatomy_common_pairs(A: np.ndarray, names: list[str], rng, alpha: float = 0.3) -> dict:
    """Anatomy's in-sample r in each strain on the pairs measured in *both* strains (so the
    comparison is not one of which pairs each strain's experiments happened to measure), with
    the stimulated neurons resampled *paired* (the same draw in both strains)."""
    normalised = A / max(np.max(np.abs(np.linalg.eigvals(A))), 1e-12)
    P = np.linalg.inv(np.eye(len(A)) - alpha * normalised) - np.eye(len(A))
    out: dict[str, Any] = {"alpha": alpha}
    for target in ("dff", "one_minus_q"):
        column = "dff" if target == "dff" else "q"
        Y = {s: response_matrix(names, s, column) for s in celegans.STRAINS}
        Y = {s: y if target == "dff" else 1.0 - y for s, y in Y.items()}
        both = np.isfinite(Y["wt"]) & np.isfinite(Y["unc31"])
        Y = {s: np.where(both, y, np.nan) for s, y in Y.items()}
        columns = np.flatnonzero(both.any(axis=0))
        draws = np.empty((500, 2))
        for b in range(len(draws)):
            pick = rng.choice(columns, columns.size)
            draws[b] = [pearson(P[:, pick], Y[s][:, pick]) for s in ("wt", "unc31")]
        r = {s: pearson(P, Y[s]) for s in ("wt", "unc31")}
        out[target] = {
            "pairs": int(both.sum()),
            "stimulated_neurons": int(columns.size),
            **{
                s: {"r": r[s], "ci95": np.percentile(draws[:, k], [2.5, 97.5]).round(4).tolist()}
                for k, s in enumerate(("wt", "unc31"))
            },
            "unc31_minus_wt": {
                "diff": r["unc31"] - r["wt"],
                "ci95_paired": np.percentile(draws[:, 1] - draws[:, 0], [2.5, 97.5])
                .round(4)
                .tolist(),
            },
        }
    return out


def add_comparisons(results: dict[str, Any], rng: np.random.Generator) -> None:
    """The target's margins (mesoscale vs every peer, per strain) and wt vs unc-31 per model."""
    for block in results["strains"].values():
        block["mesoscale_margin"] = margins(block, rng)
        for model in (*MESOSCALE_MODELS[1:], *READOUTS):
            if model in block["models"]:
                block[f"{model} margin"] = margins(block, rng, model)
    models = next(iter(results["strains"].values()))["models"] if results["strains"] else {}
    results["unc31_vs_wt"] = {m: strain_contrast(results, rng, m) for m in models}


PAPER_ANATOMY_FIGURE = (
    "Randi et al. 2023 (arXiv 2208.04790, Fig. 3) correlate an anatomy-derived response "
    "(a biophysical simulation on the connectome) with the atlas's mean dF/F over every "
    "measured pair (diagonal excluded), in sample, and also with 1 - q; their analysis code "
    "(github.com/leiferlab/pumpprobe, scripts/fconnectivity/figures/compare_connectomes/"
    "funatlas_vs_anatomy.py) computes it for wild type and unc-31. The value itself is not "
    "stated in any source readable here (no network), so it is not quoted; "
    "paper_metric_in_sample is that metric with this benchmark's anatomy."
)


def merge_parts(results: dict, parts: list[Path], A, names: list[str], rng) -> None:
    """Join single-strain runs: their strains, timings and loads; comparisons recomputed."""
    import json

    loaded = [json.loads(Path(part).read_text()) for part in parts]
    for part in loaded:  # parts may hold different models of the same strain
        for strain, block in part["strains"].items():
            if strain not in results["strains"]:
                results["strains"][strain] = block
                continue
            joined = results["strains"][strain]
            joined["models"].update(block["models"])
            joined["domains"] = joined.get("domains") or block.get("domains", [])
    strains = list(results["strains"])
    results["paper_metric_in_sample"] = paper_metric(A, names, strains, rng)
    add_comparisons(results, rng)
    current = json.loads(json.dumps(results["mesoscale_protocol"]))  # tuples as lists
    for part, data in zip(parts, loaded, strict=True):
        saved = data.get("mesoscale_protocol") or {}
        differing = [k for k, v in saved.items() if current.get(k) != v]
        if differing:
            raise ValueError(f"{part} was run with another protocol ({differing})")
    for key in ("mesoscale_epochs", "device", "omp_num_threads"):
        results[key] = loaded[0].get(key)
    for data in loaded:  # what a part recorded beyond the run itself (e.g. protocol_selection)
        for key, value in data.items():
            results.setdefault(key, value)
    results["parts"] = {
        str(Path(part).name): {
            key: data.get(key)
            for key in ("seconds", "cpu_seconds", "load_average_at_end", "machine")
        }
        for part, data in zip(parts, loaded, strict=True)
    }
    results["seconds"] = max(data.get("seconds", 0.0) for data in loaded)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--min-responders", type=int, default=5)
    parser.add_argument("--source", default="white_1986", choices=sorted(celegans.CONNECTOMES))
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument(
        "--first-protocol",
        dest="protocol",
        action="store_const",
        const=FIRST_PROTOCOL,
        default=SELECTED_PROTOCOL,
        help="the trials and in-silico stimulation of the first run (8 frames, pulse 1)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--no-mesoscale",
        dest="models",
        action="store_const",
        const=list(BASELINES),
        default=[*BASELINES, "mesoscale"],
        help="the baselines only",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=[*BASELINES, "mesoscale"],
        choices=[*BASELINES, *MESOSCALE_MODELS, *READOUTS],
        help="models to run (the baselines are cheap; 'mesoscale residual' fits 3 inner "
        "models per fold besides one per seed)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="fits per fold of every mesoscale model (seeds fold, fold + 10, ...); r per fold "
        "is their mean, the seed ensemble apart",
    )
    parser.add_argument("--strains", nargs="+", default=list(celegans.STRAINS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        default=None,
        help="JSON files of runs of single strains (same settings, run side by side) to "
        "join into --out with the margins and strain contrasts recomputed; trains nothing",
    )
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    neurons = celegans.neurons()
    A = anatomy_adjacency(neurons["id"].tolist(), args.source)
    start = time.perf_counter()
    results: dict[str, Any] = {
        "benchmark": "signal_propagation",
        "data": "Randi et al. 2023 signal-propagation atlas (wormneuroatlas funatlas.h5)",
        "connectome": args.source,
        "folds": args.folds,
        "min_responders": args.min_responders,
        "mesoscale_epochs": args.epochs,
        "mesoscale_seeds_per_fold": args.seeds,
        "device": args.device,
        "mesoscale_protocol": {
            **{k: v for k, v in asdict(args.protocol).items() if k != "fit_options"},
            "fit_options": args.protocol.options(),
        },
        "paper_anatomy_figure": PAPER_ANATOMY_FIGURE,
        "strains": {},
    }
    if args.merge:
        merge_parts(results, args.merge, A, neurons["id"].tolist(), rng)
        write_json(args.out, results)
    else:
        results["paper_metric_in_sample"] = paper_metric(
            A, neurons["id"].tolist(), args.strains, rng
        )
    for strain in [] if args.merge else args.strains:

        def save(block: dict[str, Any], strain: str = strain) -> None:
            results["strains"][strain] = block
            add_comparisons(results, rng)
            results["seconds"] = round(time.perf_counter() - start, 1)
            results["cpu_seconds"] = round(time.process_time(), 1)
            results["load_average_at_end"] = os.getloadavg()
            results["machine"] = platform.platform()
            results["omp_num_threads"] = os.environ.get("OMP_NUM_THREADS")
            write_json(args.out, results)

        save(run_strain(strain, args, neurons, A, rng, on_fold=save))
    for strain, block in results["strains"].items():
        for model, row in block["models"].items():
            low, high = row["pearson_r_ci95_bootstrap_over_folds"]
            print(
                f"{strain:6s} {model:18s} r = {row['pearson_r_mean']:.3f} [{low:.3f}, {high:.3f}]"
            )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
