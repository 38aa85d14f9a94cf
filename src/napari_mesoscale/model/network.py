"""Configurable basis networks: B small networks evaluated side by side, vectorised over filters.

Each basis filter g_b is a pure function of its input features (no state of its own,
so the same motif is the same function wherever it is used):

    h_0 = W_in[b]^T f + c_in[b]                                  (affine, width H)
    h_l = s_bl * (m_bl * act_bl(W_l[b]^T h_{l-1} + c_l[b])) + (1 - s_bl) * h_{l-1}
    g_b(f) = w_out[b] . h_D + c_out[b]

``s_bl = sigmoid(gate)`` switches layer l between a computation and pass-through,
``m_bl = sigmoid(unit gates)`` switches individual units off (width in steps of one unit) and
``act_bl`` is a softmax mixture of a menu of activations neuroscientists know: half-wave
rectification, logistic, tanh and divisive normalisation. With every gate closed a filter is
affine in its inputs — the simplest motif. The expected complexity (``complexity()``) counts
open layers, open units and the cost of the chosen activation and is penalised in the loss, so
that one filter cannot cheaply express several motifs.
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: The activation menu, in the order of the mixture logits.
ACTIVATIONS: tuple[str, ...] = ("relu", "logistic", "tanh", "divnorm")
_ACTIVATION_COST = {"relu": 1.0, "logistic": 1.0, "tanh": 1.0, "divnorm": 1.5}


def _divisive_normalisation(a: torch.Tensor) -> torch.Tensor:
    """Rectified units divided by their pooled (mean) rectified activity: r_u / (1 + mean r)."""
    r = torch.relu(a)
    return r / (1.0 + r.mean(dim=-1, keepdim=True))


def _apply_activation(name: str, a: torch.Tensor) -> torch.Tensor:
    if name == "relu":
        return torch.relu(a)
    if name == "logistic":
        return torch.sigmoid(a) - 0.5
    if name == "tanh":
        return torch.tanh(a)
    if name == "divnorm":
        return _divisive_normalisation(a)
    raise ValueError(f"unknown activation {name!r}; choose from {ACTIVATIONS}")


class BasisBank(nn.Module):
    """B configurable networks sharing one shape, evaluated in one batched pass.

    Parameters
    ----------
    n_filters : int
        Number of basis filters B.
    n_features : int
        Input features per evaluation F.
    hidden : int
        Width H of the hidden state.
    depth : int
        Number of gated layers D (each may become pass-through).
    activations : tuple of str
        Subset of :data:`ACTIVATIONS` offered to every layer.
    generator : torch.Generator, optional
        Source of the random initialisation (determinism).
    """

    def __init__(
        self,
        n_filters: int,
        n_features: int,
        hidden: int = 8,
        depth: int = 2,
        activations: tuple[str, ...] = ACTIVATIONS,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        for name in activations:
            if name not in ACTIVATIONS:
                raise ValueError(f"unknown activation {name!r}; choose from {ACTIVATIONS}")
        if n_filters < 1 or hidden < 1 or depth < 0:
            raise ValueError("n_filters and hidden must be >= 1 and depth >= 0")
        self.n_filters, self.n_features, self.hidden, self.depth = (
            n_filters,
            n_features,
            hidden,
            depth,
        )
        self.activations = tuple(activations)
        b, f, h, d, a = n_filters, n_features, hidden, depth, len(self.activations)

        def rnd(*shape: int, scale: float) -> torch.Tensor:
            return torch.randn(*shape, generator=generator) * scale

        self.w_in = nn.Parameter(rnd(b, f, h, scale=1.0 / math.sqrt(f)))
        self.c_in = nn.Parameter(torch.zeros(b, h))
        self.w_layers = nn.Parameter(rnd(b, max(d, 1), h, h, scale=1.0 / math.sqrt(h)))
        self.c_layers = nn.Parameter(rnd(b, max(d, 1), h, scale=0.1))
        self.gate_logits = nn.Parameter(torch.zeros(b, max(d, 1)))
        self.unit_logits = nn.Parameter(torch.full((b, max(d, 1), h), 2.0))
        self.act_logits = nn.Parameter(rnd(b, max(d, 1), a, scale=0.01))
        self.w_out = nn.Parameter(rnd(b, h, scale=1.0 / math.sqrt(h)))
        self.c_out = nn.Parameter(torch.zeros(b))
        self.register_buffer(
            "act_cost", torch.tensor([_ACTIVATION_COST[n] for n in self.activations])
        )

    def gates(self) -> dict[str, torch.Tensor]:
        """Current layer gates (B, D), unit gates (B, D, H) and activation mixtures (B, D, A)."""
        return {
            "layer": torch.sigmoid(self.gate_logits),
            "unit": torch.sigmoid(self.unit_logits),
            "activation": torch.softmax(self.act_logits, dim=-1),
        }

    def complexity(self) -> torch.Tensor:
        """Expected complexity of every filter, shape (B,): open layers x open units x cost."""
        if self.depth == 0:
            return torch.zeros(self.n_filters, device=self.c_out.device)
        g = self.gates()
        per_layer = g["layer"] * g["unit"].mean(-1) * (g["activation"] * self.act_cost).sum(-1)
        return per_layer[:, : self.depth].sum(-1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Evaluate every filter on its own slice of features.

        Parameters
        ----------
        features : Tensor, shape (..., B, F)
            Input features; the second-to-last axis selects the filter.

        Returns
        -------
        Tensor, shape (..., B)
        """
        h = torch.einsum("...bf,bfh->...bh", features, self.w_in) + self.c_in
        if self.depth:
            g = self.gates()
            names = self.activations
            for layer in range(self.depth):
                a = torch.einsum("...bh,bhk->...bk", h, self.w_layers[:, layer])
                a = a + self.c_layers[:, layer]
                mix = g["activation"][:, layer]  # (B, A)
                act = None
                r = None
                for k, name in enumerate(names):
                    wk = mix[:, k, None]
                    if name in ("relu", "divnorm") and r is None:
                        r = torch.relu(a)
                    if name == "relu":
                        term = wk * r
                    elif name == "divnorm":
                        term = wk * r / (1.0 + r.mean(dim=-1, keepdim=True))
                    elif name == "logistic":
                        term = wk * (torch.sigmoid(a) - 0.5)
                    else:
                        term = wk * torch.tanh(a)
                    act = term if act is None else act + term
                s = g["layer"][:, layer, None]
                h = (s * g["unit"][:, layer]) * act + (1.0 - s) * h
        return (h * self.w_out).sum(-1) + self.c_out

    def describe(self) -> list[dict]:
        """The learned configuration of every filter (for reports and the per-filter table)."""
        out = []
        with torch.no_grad():
            g = self.gates()
            for b in range(self.n_filters):
                layers = []
                for layer in range(self.depth):
                    mix = g["activation"][b, layer]
                    layers.append(
                        {
                            "gate": float(g["layer"][b, layer]),
                            "open_units": float(g["unit"][b, layer].sum()),
                            "activation": self.activations[int(mix.argmax())],
                            "activation_weight": float(mix.max()),
                        }
                    )
                out.append(
                    {
                        "filter": b,
                        "type": "configurable",
                        "complexity": float(self.complexity()[b]),
                        "layers": layers,
                    }
                )
        return out
