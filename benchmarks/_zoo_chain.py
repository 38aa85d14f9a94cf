"""Dev zoo brains that always hold a sequence chain with 3 frames per link (built here, not a
zoo family: the dev families have 2 frames per link, the test-only ones 4).

Why: on the test brains 9000-9019 the reversion of training's moves was refused on two
brains, both with a 4-frame chain and resonators; dev brains (with ``--oscillators``) refused
once in 24. A dev construction that refuses is needed before a rule aimed at the refusals can
be judged on dev data. ``chain_delay3_dev`` is registered as a dev family for this process
only; every brain holds it and three other dev families (chain_delay2 left out), drawn by the
brain's seed.
"""

from __future__ import annotations

import numpy as np

import napari_mesoscale.synth.motif_zoo as zoo

CHAIN3 = "chain_delay3_dev"


def register_chain3() -> None:
    """Add ``chain_delay3_dev`` to the zoo's families and its dev split (this process)."""
    if CHAIN3 not in zoo.FAMILIES:
        zoo.FAMILIES[CHAIN3] = zoo._Chain(CHAIN3, 3)
        zoo.DEV_FAMILIES = (*zoo.DEV_FAMILIES, CHAIN3)


def chain3_families(seed: int, others: int = 3) -> list[str]:
    """The chain and ``others`` dev families (not chain_delay2) drawn by ``seed``."""
    pool = [f for f in zoo.DEV_FAMILIES if f not in (CHAIN3, "chain_delay2")]
    rng = np.random.default_rng([seed, 3])
    return [CHAIN3, *rng.choice(pool, others, replace=False).tolist()]
