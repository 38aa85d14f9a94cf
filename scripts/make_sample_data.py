"""Regenerate ``sample_data/`` byte for byte from a seed.

    python scripts/make_sample_data.py [--seed 0] [--output sample_data]

The sample is a small toy brain (napari_mesoscale.synth.make_toy_brain): a calcium movie
(OME-TIFF with voxel size and frame rate), an EM-like volume with its true somata, the
neuron and synapse tables with ground truth (motif, instance, sign), the true somata at the
calcium voxel size, and the true activity and stimulus. Every file is written
deterministically (fixed OME UUIDs, no timestamps) so that a rerun is byte-identical.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from napari_mesoscale.io import atomic_path, write_table, write_tiff
from napari_mesoscale.synth import make_toy_brain

SAMPLE_PARAMETERS = {
    "n_neurons": 100,
    "n_frames": 200,
    "shape": (20, 48, 48),
    "voxel_size": (3.0, 1.5, 1.5),
    "frame_rate": 5.0,
    "em_voxel_size": (1.5, 0.75, 0.75),
}


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


def make_sample_data(output: Path, seed: int = 0) -> dict[str, str]:
    """Write the sample files into ``output``; returns each file's SHA-256."""
    brain = make_toy_brain(**SAMPLE_PARAMETERS, render="eager", em=True, seed=seed)
    output.mkdir(parents=True, exist_ok=True)
    provenance = {"generator": "napari_mesoscale.synth.make_toy_brain", "seed": seed,
                  **{k: list(v) if isinstance(v, tuple) else v
                     for k, v in SAMPLE_PARAMETERS.items()}}
    uuid = f"00000000-0000-4000-8000-{seed:012d}"
    write_tiff(output / "toy_calcium.ome.tif", brain.movie, voxel_size=brain.voxel_size,
               axes="TZYX", frame_rate=brain.frame_rate, metadata=provenance, uuid=uuid)
    write_tiff(output / "toy_em.ome.tif", brain.em, voxel_size=brain.em_voxel_size,
               metadata=provenance, uuid=uuid)
    write_tiff(output / "toy_em_somata.ome.tif", brain.em_labels.astype(np.uint16),
               voxel_size=brain.em_voxel_size, metadata=provenance, uuid=uuid)
    write_tiff(output / "toy_somata.ome.tif", brain.soma_labels.astype(np.uint16),
               voxel_size=brain.voxel_size, metadata=provenance, uuid=uuid)
    write_table(brain.neurons.round(4), output / "toy_neurons.csv")
    write_table(brain.synapses.round(4), output / "toy_synapses.csv")
    _save_npy(output / "toy_activity.npy", brain.activity.astype(np.float32))
    _save_npy(output / "toy_stimulus.npy", brain.stimulus.astype(np.float32))
    hashes = {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(output.iterdir())
        if path.name.startswith("toy_")
    }
    return hashes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path,
                        default=Path(__file__).resolve().parents[1] / "sample_data")
    args = parser.parse_args()
    hashes = make_sample_data(args.output, args.seed)
    sizes = {name: (args.output / name).stat().st_size for name in hashes}
    print(json.dumps({"sha256": hashes, "bytes": sizes, "total_bytes": sum(sizes.values())},
                     indent=2))


if __name__ == "__main__":
    main()
