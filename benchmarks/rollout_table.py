"""Merge per-variant runs of benchmarks/model.py into one table of the subcircuit rollout fix.

    python benchmarks/rollout_table.py --new NEW.json [NEW2.json ...] --old OLD.json \
        --out benchmarks/results/model_seeds_subcircuit_rollout_dev.json

``--old``: an earlier run with the ``off`` / ``wiring_features=2`` / ``subcircuit`` fits (same
code path: ``lambda_range=0`` leaves training unchanged); ``--new``: runs with the
``..._subcircuit_range`` fit (and, where present, a re-measured ``..._subcircuit`` fit, which
takes precedence). The JSON keeps every seed's fits and scores the fix against the dev
criterion: 8-step R² within 0.05 of ``wiring_features=2``, motif ARI not more than 0.01 and
R² (1- and 8-step) not more than 0.05 below the plain subcircuit fit, MSE below every baseline.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from _results import write_json

SETTINGS = {
    "off": "default_connectome",
    "wiring_features_2": "default_connectome_wiring",
    "subcircuit": "default_connectome_wiring_subcircuit",
    "subcircuit_range": "default_connectome_wiring_subcircuit_range",
}
KEYS = ("motif_ari", "domain_ari", "init_motif_ari", "r2_1", "mse_1", "r2_8", "seconds")


def _per_seed(paths: list[Path]) -> dict[int, dict]:
    seeds: dict[int, dict] = {}
    for path in paths:
        for run in json.loads(path.read_text())["per_seed"]:
            entry = seeds.setdefault(run["brain"]["seed"], {"baselines": run["baselines"]})
            entry.update(run["model"])
    return seeds


def _row(fits: dict, baselines: dict) -> dict:
    row = {}
    linear = baselines["connectome_linear"]["mse_1"]
    for setting, name in SETTINGS.items():
        if name in fits:
            fit = fits[name]
            row[setting] = {k: fit.get(k) for k in KEYS}
            row[setting]["mse_ratio_connectome_linear"] = fit["mse_1"] / linear
            row[setting]["beats_every_baseline"] = fit["beats_every_baseline"]
    fix, ref = row.get("subcircuit_range"), row.get("wiring_features_2")
    plain = row.get("subcircuit")
    if fix and ref and plain:
        row["criterion"] = {
            "r2_8_within_0.05_of_wiring_features_2": fix["r2_8"] >= ref["r2_8"] - 0.05,
            "motif_ari_loss_le_0.01_vs_subcircuit": fix["motif_ari"] >= plain["motif_ari"] - 0.01,
            "r2_loss_le_0.05_vs_subcircuit": fix["r2_1"] >= plain["r2_1"] - 0.05
            and fix["r2_8"] >= plain["r2_8"] - 0.05,
            "mse_below_every_baseline": fix["beats_every_baseline"],
        }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new", type=Path, nargs="+", required=True)
    parser.add_argument("--old", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--command", default="", help="the benchmark commands, for the record")
    args = parser.parse_args()
    old, new = _per_seed([args.old]), _per_seed(args.new)  # new runs take precedence
    table = {}
    for seed in sorted(new):
        fits = {**old.get(seed, {}), **new[seed]}
        table[str(seed)] = _row(fits, new[seed]["baselines"])
    result = {
        "old_run": args.old.name,
        "new_runs": [json.loads(p.read_text()) for p in args.new],
        "commands": args.command,
        "lambda_range": 1.0,
        "load": os.getloadavg(),
        "per_seed": table,
    }
    write_json(args.out, result)
    for seed, row in table.items():
        cells = [f"{s} ARI {r['motif_ari']:.3f} R2_8 {r['r2_8']:.3f}" for s, r in row.items()
                 if s in SETTINGS]
        print(seed, " | ".join(cells), row.get("criterion"))


if __name__ == "__main__":
    main()
