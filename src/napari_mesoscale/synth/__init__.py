r"""Ground-truth toy brains: motifs, wiring, dynamics, calcium movie and EM volume.

``make_toy_brain(...)`` returns a :class:`ToyBrain` holding everything that is true about a
small synthetic piece of tissue; every accuracy claim of napari-mesoscale is first checked
against it.

Layout
------
N neurons are split into M motif *instances* of ``instance_size`` = (min, max) members (sizes
drawn uniformly, summing exactly to N); instances get the motif types round robin in random
order. Instance centres are spread by best-candidate sampling; each instance's somata are
drawn inside a ball of radius ``0.5 d (n / 0.3)^{1/3}`` (≈ 19 µm for 30 neurons of 8 µm) and
accepted from the centre outwards so that no two somata anywhere are closer than the largest
soma diameter. Every soma lies at least 1 µm inside the volume. Neuron ids and instance ids
are randomly permuted (they carry no structure).

Wiring (pre → post)
-------------------
* oscillator: excitatory E (60 %) and inhibitory I cells; E→I, I→E and E→E with probability
  0.7 (every cell gets at least one input of the other class);
* integrator: excitatory, recurrent with probability 0.4;
* wta: inhibitory cells, mutual inhibition with probability 0.8;
* chain: excitatory, member k → member k+1 only (members ordered along an axis in space);
* between instances: directed pairs closer than 50 µm connect with probability
  ``p0 exp(-d² / 2 (20 µm)²)`` (mean out-degree 1.5), weak weights.

A connected pair has ``1 + Poisson(2)`` synapses (``1 + Poisson(0.5)`` between instances);
``adjacency[i, j] = sign(i) · n_synapses(i → j)``; the synapse table has one row per synapse,
placed just outside the post-synaptic soma facing the presynaptic one, with
``weight = weights[i, j] / n_synapses`` so that weights add up per pair.

Dynamics (one step per frame; a Markov map)
-------------------------------------------
With state x_t ∈ R^N, stimulus u_t ∈ R^6 (two sparse pulse trains, the cosine and sine of a
jumping direction, two flickers; see ``STIMULUS_NAMES``), rest levels r_i and the presynaptic
output φ_j(x) = x_j − r_j (x_j² for wta cells, the energy of divisive normalisation), the
synaptic drives are

    h⁺ = W₊ᵀ φ(x_t),  h⁻ = |W₋|ᵀ φ(x_t),  h = h⁺ − h⁻,  s_i = G_i · u_t + b_i,

with W = ``weights`` split into its positive (excitatory) and negative parts. Then

* oscillator: F_i = r + A tanh((a (x_i − r) + h_i) / A) with θ = 2π f_osc / frame_rate,
  ρ = exp(0.2226 θ) (1.15 at 0.5 Hz and 5 Hz), A = 0.3, r = 0.4, self term a = min(ρ cos θ,
  0.9); E←E weights sum to b = 2(ρ cos θ − a), E←I to −c and I←E to +c (each normalised per
  presynaptic class) with c = √(ρ² − (a + b) a), so that the E-I mean field [[a + b, −c],
  [c, a]] rotates by θ per frame with gain ρ: a limit cycle at ``osc_frequency`` while each
  cell's own deviation from its population decays (a < 1);
* integrator: F_i = r + λ (x_i − r) + h_i + g u_pulse(t), r = 0.05, recurrent weights summing
  to κ, λ + κ = exp(−1 / (5 s · frame_rate)) (0.96 at 5 Hz; λ = 5/6 of it), g = 0.2, pulses
  at 0.25 Hz;
* wta: e_i = [s_i + a_w x_i + h⁺_i]₊ with s_i = 0.6 cos(φ_t − ψ_i) (preferred directions ψ_i
  spread evenly around the circle in each instance; φ_t jumps at 1.5 Hz),
  F_i = (1 − γ) x_i + γ e_i² / (σ_w² + e_i² + h⁻_i), a_w = 0.5, γ = 0.5, σ_w = 0.25;
* chain: F_i = sigmoid(β (h_i + s_i)), β = 8, threshold 0.5 for members (weight 1 from the
  previous member), the head driven by a flicker channel (threshold 0.8): each member repeats
  its predecessor one frame later;

and x_{t+1} = max(0, F(x_t, u_t) + σ ε_t), ε_t ~ N(0, I), σ = ``noise_std`` (default 0.03).
``ToyBrain.one_step()`` gives the exact conditional mean E[x_{t+1} | x_t, u_t], the noise floor
of any one-step predictor. All constants are in ``ToyBrain.params["dynamics"]``.

Spikes, calcium, movie, EM
--------------------------
spikes ~ Poisson(max_rate · x / frame_rate); calcium (clean dF/F) = spikes ∗ k with k a
difference of exponentials (``tau_rise``, ``tau_decay``) sampled at mid-frame and peaking at
0.1 dF/F per spike. Movie frame t: camera offset 100 + shot noise around
λ = k_ph · drift_t · (background + Σ_i P_i b_i (1 + c_{i,t})) where P_i is the soma's sphere
blurred by an anisotropic Gaussian PSF (σ = 1.5 µm in z, 0.5 µm in y, x), b_i ∈ [0.6, 1.4] its
resting brightness, the background a smooth field in [0.1, 0.3] and k_ph = snr² (1 + mean
background); the noise is N(λ, λ) (the Gaussian form of Poisson noise, far faster to draw),
seeded per frame, so any chunk of frames renders identically alone or in the whole movie.
``drift=True`` multiplies λ by a slow bleach and wander (``ToyBrain.drift_trace``). The EM-like
volume has textured neuropil with thin dark membrane-like lines, bright somata with a dark
plasma membrane, a darker nucleus with a dark envelope, dark puncta at every synapse, a slight
blur and noise.
"""

from .dynamics import STIMULUS_NAMES, ToyBrainCancelled, spikes_to_calcium
from .render import MovieRenderer, smooth_field, soma_profiles
from .toy_brain import MOTIF_NAMES, ToyBrain, ToyBrainParams, make_toy_brain

__all__ = [
    "MOTIF_NAMES",
    "STIMULUS_NAMES",
    "MovieRenderer",
    "ToyBrain",
    "ToyBrainCancelled",
    "ToyBrainParams",
    "make_toy_brain",
    "smooth_field",
    "soma_profiles",
    "spikes_to_calcium",
]
