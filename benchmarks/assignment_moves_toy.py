"""Where does a trained assignment lower the toy brain's held-out error when the motifs are
kept? A diagnosis (dev seeds only; it decides nothing).

For each toy-brain seed, ``model.py``'s default fit (assignment trained after
``freeze_assignment_epochs``) and the same fit with ``activity_assignment`` set to
``--kept`` (default ``"motifs"``: every neuron keeps its initial filter), side by side,
same seed. Per neuron: its filter in the initialisation and in each fit, its field in each
fit, and its held-out one-step squared error (test block). The JSON says how many neurons
the trained fit moved to another filter or field, and how the error gap between the two
fits splits over true motif families, true instances and the moved / unmoved neurons.

Usage::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/assignment_moves_toy.py --seeds 6 \
        --out benchmarks/results/assignment_moves_toy_dev.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
EPOCHS = 30  # model.py's


def _fit(brain, seed: int, **options):
    from napari_mesoscale.model import fit_mesoscale

    return fit_mesoscale(
        brain.activity, brain.positions, connectome=brain.adjacency, stimulus=brain.stimulus,
        epochs=EPOCHS, seed=seed, device="cpu", **options,
    )


def _per_neuron_error(fit, brain) -> np.ndarray:
    x = brain.activity
    t0, t1 = fit.blocks["test"]
    pred = fit.predict(x, stimulus=brain.stimulus)
    return np.nanmean((pred[t0 + 1 : t1] - x[t0 + 1 : t1]) ** 2, axis=0)


MARGINS = (0.5, 0.8)  # a move needs the other filter's error below margin x the own one's


def gated_moves(fit, brain) -> dict:
    """For a fit with kept motifs: every neuron's one-step error with its own filter and with
    the best other filter (each at its best candidate field, hard assignment, normalised
    units) on the training, validation and test blocks; which neurons a move gated on the
    training *and* validation blocks (other < margin x own on both) would move, and the test
    error the fit would have with them moved (no retraining)."""
    import torch

    from napari_mesoscale.model.prepare import prepare_data
    from napari_mesoscale.model.result import _CpuTensors, _pair_errors

    data = prepare_data(brain.activity, brain.positions, brain.stimulus, fit.config)
    t = _CpuTensors.of(data)
    own = torch.as_tensor(fit.motif_labels)
    rows = torch.arange(len(own))
    err = {}
    for block in ("train", "val", "test"):
        per_filter = _pair_errors(fit.net, t.z, t.m, t.u, *data.blocks[block]).min(dim=1).values
        mine = per_filter[rows, own].clone()
        per_filter[rows, own] = float("inf")
        err[block] = (mine.numpy(), per_filter.min(dim=1).values.numpy(),
                      per_filter.argmin(dim=1).numpy())
    out: dict = {"test_error_kept": float(err["test"][0].mean())}
    for margin in MARGINS:
        moved = np.ones(len(own), dtype=bool)
        for block in ("train", "val"):
            mine, other, _ = err[block]
            moved &= other < margin * mine
        test_mine, test_other, _ = err["test"]
        after = np.where(moved, test_other, test_mine)
        out[f"margin_{margin}"] = {
            "moved": np.flatnonzero(moved).tolist(),
            "moved_to": err["train"][2][moved].tolist(),
            "families_moved": [brain.motif_names[brain.motif[i]] for i in np.flatnonzero(moved)],
            "test_error_after": float(after.mean()),
            "ratio_after_kept": float(after.mean() / test_mine.mean()),
        }
    return out


def _split(gap: np.ndarray, labels: np.ndarray, names=None) -> dict:
    """Sum of the per-neuron error gap over each label, largest first."""
    out = {}
    for value in np.unique(labels):
        key = names[value] if names is not None else str(int(value))
        out[key] = {"gap": float(gap[labels == value].sum()), "n": int((labels == value).sum())}
    return dict(sorted(out.items(), key=lambda kv: -abs(kv[1]["gap"])))


def diagnose(seed: int, kept: str) -> dict:
    import torch

    from napari_mesoscale.synth import make_toy_brain

    torch.set_num_threads(1)
    brain = make_toy_brain(render=None, em=False, seed=seed)
    t0 = time.perf_counter()
    trained = _fit(brain, seed)
    held = _fit(brain, seed, activity_assignment=kept, input_lags="auto")
    err_t, err_k = _per_neuron_error(trained, brain), _per_neuron_error(held, brain)
    gap = err_k - err_t  # > 0: the kept fit is worse on that neuron
    init = trained.init_groups
    filter_moved = trained.motif_labels != init
    field_differs = trained.field_labels != held.field_labels
    total = float(gap.sum())
    top = np.argsort(-gap)[:20]
    return {
        "seed": seed,
        "kept": kept,
        "test_mse": {"trained": float(err_t.mean()), "kept": float(err_k.mean())},
        "ratio_kept_trained": float(err_k.mean() / err_t.mean()),
        "motif_ari_vs_init": {
            "trained": float(_ari(trained.motif_labels, init)),
            "kept": float(_ari(held.motif_labels, init)),
        },
        "n_neurons": int(brain.n_neurons),
        "trained_moved_filter": int(filter_moved.sum()),
        "field_differs": int(field_differs.sum()),
        "gap_total": total,
        "gap_on_filter_movers": float(gap[filter_moved].sum()),
        "gap_on_field_differs": float(gap[field_differs & ~filter_moved].sum()),
        "gap_on_unmoved": float(gap[~filter_moved & ~field_differs].sum()),
        "gap_by_family": _split(gap, brain.motif, brain.motif_names),
        "gap_by_instance": dict(list(_split(gap, brain.instance).items())[:8]),
        "top_neurons": [
            {
                "neuron": int(i),
                "gap": float(gap[i]),
                "family": brain.motif_names[brain.motif[i]],
                "instance": int(brain.instance[i]),
                "filter_init": int(init[i]),
                "filter_trained": int(trained.motif_labels[i]),
                "field_trained": int(trained.field_labels[i]),
                "field_kept": int(held.field_labels[i]),
            }
            for i in top
        ],
        "gated_moves_of_kept_fit": gated_moves(held, brain),
        "seconds": time.perf_counter() - t0,
    }


def _ari(a, b) -> float:
    from sklearn.metrics import adjusted_rand_score

    return adjusted_rand_score(a, b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[6])
    parser.add_argument("--kept", default="motifs", choices=("motifs", "initial"))
    parser.add_argument("--out", type=Path,
                        default=HERE / "results" / "assignment_moves_toy_dev.json")
    args = parser.parse_args()
    from _results import run_record, write_json

    t0, cpu0, load = time.perf_counter(), time.process_time(), os.getloadavg()
    rows = [diagnose(seed, args.kept) for seed in args.seeds]
    for row in rows:
        print({k: row[k] for k in ("seed", "ratio_kept_trained", "trained_moved_filter",
                                   "field_differs", "gap_total", "gap_on_filter_movers",
                                   "gap_on_field_differs", "gap_on_unmoved")}, flush=True)
    write_json(args.out, {"seeds": rows, "run": run_record(t0, cpu0, load)})


if __name__ == "__main__":
    main()
