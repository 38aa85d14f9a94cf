"""Recovery of motifs and domains against ground truth (adjusted Rand index)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["recovery_scores"]


def recovery_scores(
    fit_or_motifs: Any,
    true_motif: Any,
    true_instance: Any,
    *,
    domain_labels: Any = None,
) -> dict[str, float]:
    """Adjusted Rand index of motif labels vs true motif types and of domains vs instances.

    Parameters
    ----------
    fit_or_motifs : MesoscaleFit or array (N,)
        A fit (its ``motif_labels`` and ``domain_labels`` are used) or motif labels.
    true_motif, true_instance : array (N,)
        Ground truth, e.g. ``brain.motif`` and ``brain.instance`` of a toy brain.
    domain_labels : array (N,), optional
        Needed when ``fit_or_motifs`` is an array.

    Returns
    -------
    dict with ``motif_ari``, ``domain_ari``, ``n_motifs``, ``n_domains``, ``n_true_motifs``,
    ``n_true_instances``.
    """
    from sklearn.metrics import adjusted_rand_score

    if hasattr(fit_or_motifs, "motif_labels"):
        motifs = np.asarray(fit_or_motifs.motif_labels)
        domains = np.asarray(fit_or_motifs.domain_labels)
    else:
        motifs = np.asarray(fit_or_motifs)
        if domain_labels is None:
            raise ValueError("pass domain_labels= when giving motif labels as an array")
        domains = np.asarray(domain_labels)
    tm, ti = np.asarray(true_motif), np.asarray(true_instance)
    n = motifs.shape[0]
    for name, arr in (("domain_labels", domains), ("true_motif", tm), ("true_instance", ti)):
        if arr.shape != (n,):
            raise ValueError(f"{name} has shape {arr.shape}; expected ({n},) like the motifs")
    return {
        "motif_ari": float(adjusted_rand_score(tm, motifs)),
        "domain_ari": float(adjusted_rand_score(ti, domains)),
        "n_motifs": int(np.unique(motifs).size),
        "n_domains": int(np.unique(domains).size),
        "n_true_motifs": int(np.unique(tm).size),
        "n_true_instances": int(np.unique(ti).size),
    }
