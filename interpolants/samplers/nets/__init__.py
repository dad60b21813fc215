r"""NETS: the non-equilibrium transport sampler (Albergo & Vanden-Eijnden, arXiv:2410.02711).

Path. U_t = (1 - beta_t) U_0 + beta_t U_1 interpolates the potentials of the base
p_0 = exp(-U_0) (normalised) and of the target rho* = exp(-U_1) (unnormalised), with a
schedule beta_t, 0 <= t <= 1 (:func:`schedule`); rho_t = exp(-U_t + F_t), F_t = -log Z_t.

Walkers. From x ~ p_0, with the work A_0 = 0,

    dX = (b_t(X) - eps_t grad U_t(X)) dt + sqrt(2 eps_t) dW,
    dA = (div b_t - grad U_t . b_t - dU_t/dt)(X) dt,                          (NETS eq. 9)

then E[exp(A_1) f(X_1)] / E[exp(A_1)] = E_rho*[f] and E[exp(A_1)] = Z_1 / Z_0 = Z for any
drift b: log Z_hat = log mean exp(A_1). With b = 0 this is Jarzynski's equality, i.e.
annealed importance sampling; with the b of the continuity equation
dt rho_t + div(b_t rho_t) = 0 every walker carries the same work A_1 = log Z.

Time stepping (t_k -> t_{k+1}, h = t_{k+1} - t_k). The three terms of the SDE are split:

1. annealing, x fixed: A += -(U_{t_{k+1}} - U_{t_k})(x) (the AIS increment of Neal);
2. transport by the Heun step T of dx/dt = b_t(x) from t_k to t_{k+1}:
   A += log pi_{k+1}(T x) - log pi_{k+1}(x) + log |det grad T(x)|, pi = exp(-U);
3. Langevin at t_{k+1}: MALA with step size sqrt(2 eps h), which leaves pi_{k+1} invariant
   and so changes no weight (``eps="adapt"``, ``mass_matrix="diag"``: the self-tuned,
   preconditioned MALA moves of run_ais instead, equally invariant).

Steps 1 and 3 are exact importance-sampling and invariant moves, step 2 too when the log
determinant is exact (``log_det="exact"``, by default up to d = 50: full Jacobians by d
VJPs, k for ``net="blocks"``; |det| of the Heun map): the estimator is then unbiased at any
number of steps, as long as T is invertible (h |grad b| < 1). Where T folds (det grad T <= 0
at some walkers) the weights of those walkers are set to 0, but the fold's image still has
two preimages with det > 0, so E exp(A_1) exceeds Z by about the target mass of that image:
non-invertible steps bias log Z upwards and call for more steps. (many_well with the block
drift, K = 100: 475-721 such walker-steps of 200,000 per seed and log Z errors of mean +0.05
over 5 seeds; K = 200: none, errors +0.02 to +0.07; K = 400: none, -0.01 and 0.00;
benchmarks/RESULTS_nets.md.) ``log_det="hutchinson"`` (d
times cheaper; the default above d = 50, where the exact Jacobians of phi4's L = 8 lattice
network took about 100 s per step for 2000 walkers on our CPU; pass "exact" on a GPU) takes
the trapezoid h/2 (div b(x) + div b(x~)) with Hutchinson probes instead: an O(h) error and,
since exp of a noisy log-determinant is not its mean, a bias of the weights that grows with
d. Training uses the Hutchinson divergence above ``exact_max_dim`` (there it only makes the
loss's gradient noisy).
As h -> 0 the increments of 1 and 2 sum to the dA above.
Cost: two target evaluations per step (one at T x, one for the MALA proposal), one when
b = 0 or eps = 0.

Resampling (optional, ``resample_threshold``). The walkers form R populations; one whose
ESS/N drops below the threshold after a transport step is resampled and its mean weight
carried, as in SMC (Del Moral, Doucet & Jasra, arXiv:cond-mat/0212648): Z_hat stays
unbiased, and walkers follow mode weights that neither b nor the MALA moves carry.

The sampling run (default, ``steps=None``). The same three steps on SMC's ladder instead of
a uniform grid (:func:`~..ais.run_smc` with the Heun map as its transport): a pilot finds
temperatures 0 < beta_1 < ... < 1 by adaptive tempering (conditional ESS 0.99 of the annealing
increment) with MALA moves retuned per level; then R = 10 populations follow that fixed design
at the times t_k = beta^{-1}(beta_k) of the drift, with resampling, the bias check of
bidirectional Monte Carlo and SMC's heavier reruns. A good drift keeps ESS/N near 1 between
resamplings (an exact one: no resampling at all); a poor one costs ESS, never the
estimator's unbiasedness, and the retuned moves (5 per level) still equilibrate each level,
which the one Langevin move per step of a 100-step grid does not on narrow posteriors
(benchmarks/RESULTS.md, issue 19). ``steps=K`` keeps the paper's uniform grid.

Learning b and F (off-policy, no back-propagation through the walkers). The PINN objective
of NETS (eq. 21) over detached walkers (t, x) of short simulations on random time grids:

    L(b, F) = E |div b_t(x) - grad U_t(x) . b_t(x) - dU_t/dt(x) + dF_t/dt|^2,

which vanishes exactly for a solution of the continuity equation with F_t = -log Z_t (scaled
by the mean running variance of dU_t/dt, or per time bin with ``time_weighted``). Residuals
beyond ``training.RESIDUAL_CAP`` = 1e4 of those sds are left out (a walker deep in a
funnel's neck, with gradients ~1e18, would otherwise overflow the loss); ``history`` counts
them. Any drift leaves the estimator unbiased, so this shapes the proposal only. The
action-matching objective (NETS section 3.3; Neklyudov et al., arXiv:2210.06662) with
b = grad phi is the second option:

    L(phi) = E_{rho_0}[phi_0] - E_{rho_1}[phi_1]
             + int_0^1 E_{rho_t}[|grad phi_t|^2 / 2 + dphi_t/dt] dt,

the expectations over rho_t taken with the walkers' self-normalised weights exp(A_t).

References:
    M. S. Albergo, E. Vanden-Eijnden, Nets: a non-equilibrium transport sampler (2024),
    arXiv:2410.02711.
    C. Jarzynski, PRL 78 (1997) 2690, arXiv:cond-mat/9610209.
    R. M. Neal, Annealed importance sampling (2001), arXiv:physics/9803008.
    K. Neklyudov et al., Action matching (2023), arXiv:2210.06662.
"""

from __future__ import annotations

from .config import NETSConfig
from .model import (
    BINS,
    OBJECTIVES,
    SCHEDULES,
    NETSModel,
    build_drift,
    jarzynski_rate,
    pinn_residual,
    schedule,
    schedule_time,
)
from .runner import run_nets
from .sampling import NETSPath, Trajectory, refine_grid, simulate, time_grid
from .training import adapt_eps, train_drift

__all__ = [
    "BINS",
    "OBJECTIVES",
    "SCHEDULES",
    "NETSConfig",
    "NETSModel",
    "NETSPath",
    "Trajectory",
    "adapt_eps",
    "build_drift",
    "jarzynski_rate",
    "pinn_residual",
    "refine_grid",
    "run_nets",
    "schedule",
    "schedule_time",
    "simulate",
    "time_grid",
    "train_drift",
]
