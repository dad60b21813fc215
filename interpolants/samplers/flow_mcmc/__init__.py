r"""MCMC assisted by a learned transport, and importance sampling through it ("flow-mcmc", "is").

Walkers x^1..x^M start at ``init``, the rough location of the target's modes (not their
weights), and alternate ``local_steps`` MALA moves with one independent Metropolis-Hastings
move through a transport T that pushes a base rho_b forward to q = T#rho_b:

    x' = T(x_b),  x_b ~ rho_b,   accepted with   min{1, rho*(x') q(x) / (rho*(x) q(x'))}.

The local moves equilibrate the walkers within a mode; the global moves carry them between
modes and so fix the modes' weights. While the chain runs (the training phase), T is fitted
to recent walker positions: by maximum likelihood of a RealNVP coupling flow
(``transport="coupling"``, exact density, the cheap default) or by the interpolant loss of a
velocity field b_t with x_t = (1 - t) x_b + t x, x_b ~ rho_b (``transport="interpolant"``: a
continuous flow, q from the ODE likelihood log q(x) = log rho_b(X_0) - int_0^1 div b dt).
By default the training data are not the walkers but
stratified "anchor" walkers, the same number in every initial mode, which never leave it (see
:func:`train_transport`): trained on the walkers, the flow forgets a light mode once the global
moves have emptied it; optionally (``defensive``) q is mixed with one Gaussian per initial mode.
Training stops when the global acceptance reaches a plateau; then T is frozen and the
production chain, a fixed mixture of two kernels that each leave rho* invariant (MALA with
the step size and preconditioner frozen after warm-up, and the independent MH move), is a
valid Markov chain. With the continuous flow the density of the proposal is the ODE's,
integrated with ``ode_steps`` RK4 steps: its discretisation error (O(h^4)) is the only
departure from exactness; with the coupling flow there is none.

Importance sampling (:func:`run_is`) draws x_i = T(x_b,i) from the trained transport and
weights w_i = rho*(x_i) / q(x_i): log Z_hat = log mean w, ESS = (sum w)^2 / (n sum w^2).

References:
    M. Gabrie, G. M. Rotskoff, E. Vanden-Eijnden, Adaptive Monte Carlo augmented with
    normalizing flows, PNAS 119 (2022), arXiv:2105.12603.
    M. Gabrie, G. M. Rotskoff, E. Vanden-Eijnden, Efficient Bayesian sampling using
    normalizing flows to assist Markov chain Monte Carlo methods (2021), arXiv:2107.08001.
    M. S. Albergo, E. Vanden-Eijnden, Building normalizing flows with stochastic
    interpolants (2023), arXiv:2209.15571 (the interpolant loss of the continuous flow).
"""

from __future__ import annotations

from .config import FlowMCMCConfig
from .moves import global_move, independent_mh_log_ratio, mode_switches, mode_weights
from .runner import run_flow_mcmc, run_is, train_transport
from .training import DEFAULT_CHAINS, TrainedTransport
from .transport import (
    TRANSPORTS,
    CouplingTransport,
    DefensiveMixture,
    InterpolantTransport,
    Transport,
)

__all__ = [
    "DEFAULT_CHAINS",
    "TRANSPORTS",
    "CouplingTransport",
    "DefensiveMixture",
    "FlowMCMCConfig",
    "InterpolantTransport",
    "TrainedTransport",
    "Transport",
    "global_move",
    "independent_mh_log_ratio",
    "mode_switches",
    "mode_weights",
    "run_flow_mcmc",
    "run_is",
    "train_transport",
]
