"""Population filters: the mesoscopic escape-rate model as a basis-filter type.

The configurable networks of :mod:`napari_mesoscale.model.network` can express any motif; a
*population filter* expresses one: a population of integrate-and-fire neurons that all see
the same input, as in the mesoscopic model of René, Longtin & Macke 2020
(:mod:`napari_mesoscale.reproductions.populations`). It is meant for population-level
domains: a domain whose neurons are exchangeable members of one population, whose activity
is the population's firing fraction seen through each neuron's own trace.

One step of filter ``b`` for a neuron in its domain::

    h     = theta_b + sum_f J_bf * f                  (input potential, population features f)
    p     = 1 - exp(-exp(h))                          (expected firing fraction in one frame)
    x_t+1 = leak_b * x_t + amplitude_b * p + c_b      (the neuron's trace)

``p`` is the escape-rate probability of the mesoscopic model: a neuron with hazard
``lambda = c exp((u - theta) / Delta_u)`` fires in a bin of length ``dt`` with probability
``1 - exp(-lambda dt)``; the constants ``c``, ``theta``, ``Delta_u`` and ``dt`` fold into the
affine potential ``h``. The population features are the domain's mean activity (its
population activity ``A``), the synaptic drive, the stimulus and the neuron's own state;
positions inside the domain are not inputs (members of a population are exchangeable).

This is a one-step (Markov) reduction: the full mesoscopic model keeps a refractory history
of the population over ``K`` bins, which the one-step mesoscale model has no room for. The
history's effect (refractoriness, adaptation) enters through the learned couplings to the
domain's current activity and to the neuron's own trace (``leak``); the calcium decay of a
trace is the ``leak`` term itself.
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: Upper bound of the potential: exp(exp(6)) overflows nothing and p is already 1 - 1e-175.
_H_MAX = 6.0


def escape_probability(h: torch.Tensor) -> torch.Tensor:
    """Probability ``1 - exp(-exp(h))`` that a neuron with log-hazard ``h`` fires in one bin."""
    return -torch.expm1(-torch.exp(h.clamp(max=_H_MAX)))


class PopulationBank(nn.Module):
    """B population filters evaluated side by side (same calling convention as BasisBank).

    Parameters
    ----------
    n_filters : int
        Number of population filters.
    n_features : int
        Input features per evaluation F.
    feature_mask : sequence of bool, length F
        Which features enter the potential (positions inside a domain should not).
    self_index : int
        Index of the neuron's own state among the features (the ``leak`` input).
    generator : torch.Generator, optional
        Source of the random initialisation (determinism).
    """

    kind = "population"

    def __init__(
        self,
        n_filters: int,
        n_features: int,
        feature_mask: list[bool] | tuple[bool, ...] | None = None,
        self_index: int = 0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if n_filters < 1:
            raise ValueError("a PopulationBank needs at least one filter")
        if feature_mask is None:
            feature_mask = [True] * n_features
        if len(feature_mask) != n_features:
            raise ValueError(
                f"feature_mask has {len(feature_mask)} entries for {n_features} features"
            )
        if not 0 <= self_index < n_features:
            raise ValueError(
                f"self_index {self_index} is not a feature index (0..{n_features - 1})"
            )
        self.n_filters, self.n_features, self.self_index = n_filters, n_features, self_index
        self.register_buffer("feature_mask", torch.tensor(feature_mask, dtype=torch.float32))
        b, f = n_filters, n_features
        scale = 0.1 / math.sqrt(f)
        self.coupling = nn.Parameter(torch.randn(b, f, generator=generator) * scale)
        self.threshold = nn.Parameter(torch.full((b,), math.log(-math.log(0.7))))  # p = 0.3
        self.leak = nn.Parameter(torch.full((b,), 0.5))
        self.amplitude = nn.Parameter(torch.ones(b))
        self.offset = nn.Parameter(torch.zeros(b))

    def potential(self, features: torch.Tensor) -> torch.Tensor:
        """Input potential h (..., B) of every filter from its slice of features (..., B, F)."""
        weights = self.coupling * self.feature_mask
        return (features * weights).sum(-1) + self.threshold

    def firing_fraction(self, features: torch.Tensor) -> torch.Tensor:
        """Expected fraction of the population firing in the next frame (..., B)."""
        return escape_probability(self.potential(features))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Next state of every evaluated neuron: (..., B, F) -> (..., B)."""
        own = features[..., self.self_index]
        return self.leak * own + self.amplitude * self.firing_fraction(features) + self.offset

    def complexity(self) -> torch.Tensor:
        """Fixed complexity 1 per filter: one saturating nonlinearity, like one open layer."""
        return torch.ones(self.n_filters, device=self.offset.device)

    def describe(self) -> list[dict]:
        """Learned parameters of every filter (for reports and the per-filter table)."""
        with torch.no_grad():
            return [
                {
                    "filter": b,
                    "type": self.kind,
                    "complexity": 1.0,
                    "layers": [
                        {
                            "activation": "escape_rate",
                            "leak": float(self.leak[b]),
                            "amplitude": float(self.amplitude[b]),
                            "threshold": float(self.threshold[b]),
                        }
                    ],
                }
                for b in range(self.n_filters)
            ]


class MixedBank(nn.Module):
    """Configurable filters followed by population filters, one bank to the mesoscale model.

    Filters ``0 .. n_configurable - 1`` are :class:`~napari_mesoscale.model.network.BasisBank`
    networks, the last ``population.n_filters`` are population filters.
    """

    def __init__(self, configurable: nn.Module | None, population: PopulationBank) -> None:
        super().__init__()
        self.configurable = configurable
        self.population = population
        self.n_configurable = 0 if configurable is None else configurable.n_filters
        self.n_filters = self.n_configurable + population.n_filters

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(..., B, F) -> (..., B): each filter on its own slice."""
        m = self.n_configurable
        pop = self.population(features[..., m:, :])
        if self.configurable is None:
            return pop
        return torch.cat([self.configurable(features[..., :m, :]), pop], dim=-1)

    def complexity(self) -> torch.Tensor:
        parts = [self.population.complexity()]
        if self.configurable is not None:
            parts.insert(0, self.configurable.complexity())
        return torch.cat(parts)

    def describe(self) -> list[dict]:
        first = [] if self.configurable is None else self.configurable.describe()
        rest = self.population.describe()
        for d in rest:
            d["filter"] += self.n_configurable
        return first + rest
