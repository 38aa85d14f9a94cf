"""Synthetic repeated trials with known reliability, shared by the scoring tests."""

from __future__ import annotations

import numpy as np


def population(n_stimuli: int = 200, n_neurons: int = 80, seed: int = 0):
    """True responses (stimuli, neurons) and the generator that made them."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_stimuli, n_neurons)), rng


def trials(truth: np.ndarray, sigma: float, n_trials: int, rng: np.random.Generator):
    """``n_trials`` noisy repeats of ``truth`` with noise of standard deviation ``sigma``."""
    return truth[None] + sigma * rng.standard_normal((n_trials, *truth.shape))
