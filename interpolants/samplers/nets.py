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

Learning b and F (off-policy, no back-propagation through the walkers). The PINN objective
of NETS (eq. 21) over detached walkers (t, x) of short simulations on random time grids:

    L(b, F) = E |div b_t(x) - grad U_t(x) . b_t(x) - dU_t/dt(x) + dF_t/dt|^2,

which vanishes exactly for a solution of the continuity equation with F_t = -log Z_t (scaled
by the mean running variance of dU_t/dt, or per time bin with ``time_weighted``). The
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

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ..distributions import DiagonalNormal
from ..nn import FreeEnergyRate, Sparsity, build_drift, same_drift
from ..run_folder import CHECKPOINT, RunFolder, TrainingInterrupted, deferred_interrupt
from .adaptation import find_reasonable_step_size
from .ais import ADAPT_RATE, AnnealedDensity, _gather, _metric, _resolve_base, systematic_resample
from .diagnostics import ess_of_weights, log_mean_exp, log_Z_from_weights
from .hmc import CountedDensity, State, check_int, make_generator, progress_bar, select
from .mala import mala
from .result import SampleResult

__all__ = [
    "SCHEDULES",
    "NETSModel",
    "jarzynski_rate",
    "pinn_residual",
    "run_nets",
    "schedule",
    "simulate",
]

SCHEDULES = ("linear", "power", "geometric", "reverse_power")
OBJECTIVES = ("pinn", "action")
DIVERGENCES = ("auto", "exact", "hutchinson")
TARGET_ACCEPT = 0.574  # MALA (Roberts & Rosenthal 1998)
BINS = 64  # time bins of the tuned eps_t and of the loss weights
EPS_SWEEP = (0.0, 0.1, 0.3, 1.0, 3.0)
LOG_DETS = ("auto", "exact", "hutchinson")
LOG_DET_EXACT_MAX_DIM = 50  # "auto": exact up to here (a d = 50 MLP: ~1 s per step, 2000 walkers)
JACOBIAN_ENTRIES = 2**24  # per chunk of walkers in the exact log-determinant (128 MiB float64)


# --- the math ------------------------------------------------------------------------------


def schedule(t: Tensor, kind: str = "power", power: float = 3.0) -> tuple[Tensor, Tensor]:
    r"""beta_t and d beta_t / dt of U_t = (1 - beta_t) U_0 + beta_t U_1, beta_0 = 0, beta_1 = 1.

    linear: beta = t; power: beta = t^p; geometric: beta = (e^{p t} - 1) / (e^p - 1), whose
    precision (1 - beta) / s_0^2 + beta / s_1^2 grows like e^{p t} when e^p ~ s_0^2 / s_1^2.
    A broad base (s_0 >> s_1) makes the linear path stiff near t = 0 (the walkers contract at
    a rate ~ s_0^2 / s_1^2 there); t^p spreads that over a time ~ (s_1 / s_0)^{2 / p}.

    reverse_power: beta = 1 - (1 - t)^p, the mirror image, slow near t = 1, for targets whose
    tails are broader than the base's: there pi_beta keeps a cut-off at the scale where
    (1 - beta) / s_0^2 ~ 1 / s_1^2, which moves to the tails only as beta -> 1 (Neal's funnel:
    at x_0 ~ log(1 / (1 - beta))); 1 - beta = (1 - t)^p opens it at a pace ~ p / (1 - t)
    instead of the ~ 1 / (1 - t) of t^p, whose last step of a uniform grid jumps from
    x_0 ~ log(1 / (p h)) to the whole tail.
    """
    if kind == "linear":
        return t, torch.ones_like(t)
    if kind == "power":
        return t.pow(power), power * t.pow(power - 1)
    if kind == "geometric":
        e = math.expm1(power)
        return torch.expm1(power * t) / e, power * torch.exp(power * t) / e
    if kind == "reverse_power":
        return -torch.expm1(power * torch.log1p(-t)), power * (1 - t).pow(power - 1)
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {kind!r}")


def jarzynski_rate(div_b: Tensor, grad_log_pi: Tensor, b: Tensor, dlog_pi_dt: Tensor) -> Tensor:
    r"""dA/dt = div b_t - grad U_t . b_t - dU_t/dt with log pi_t = -U_t (arXiv:2410.02711, eq. 9).

    Shapes: div_b (n,), grad_log_pi and b (n, d), dlog_pi_dt (n,)."""
    return div_b + (grad_log_pi * b).flatten(1).sum(1) + dlog_pi_dt


def pinn_residual(
    div_b: Tensor, grad_log_pi: Tensor, b: Tensor, dlog_pi_dt: Tensor, dF_dt: Tensor
) -> Tensor:
    r"""div b_t - grad U_t . b_t - dU_t/dt + dF_t/dt, zero everywhere exactly when b_t solves
    the continuity equation for rho_t = exp(-U_t + F_t) (arXiv:2410.02711, eq. 21)."""
    return jarzynski_rate(div_b, grad_log_pi, b, dlog_pi_dt) + dF_dt


def heun_jacobian(j1: Tensor, j2: Tensor, h: float) -> Tensor:
    r"""grad T for the Heun map T x = x + h/2 (b_0(x) + b_1(x + h b_0(x))):
    I + h/2 (J_1 + J_2 (I + h J_1)), J_1 = grad b_0(x), J_2 = grad b_1(x~); (n, d, d)."""
    eye = torch.eye(j1.shape[-1], dtype=j1.dtype, device=j1.device)
    return eye + 0.5 * h * (j1 + j2 @ (eye + h * j1))


# --- drift and free energy -----------------------------------------------------------------


class NETSModel(nn.Module):
    r"""The learned parts of NETS: the drift b_t(x), the free-energy rate dF_t/dt, and the
    tables of the MALA diffusion eps_t and of the loss weights over ``BINS`` bins of t.

    ``config`` holds the path (schedule, power) the model was trained for; sampling uses it.
    """

    def __init__(self, drift: nn.Module, config: dict[str, Any], eps0: float = 1.0):
        super().__init__()
        self.drift, self.free_energy, self.config = drift, FreeEnergyRate(), dict(config)
        self.register_buffer("log_eps", torch.full((BINS,), math.log(eps0), dtype=torch.float64))
        self.register_buffer("loss_var", torch.ones(BINS, dtype=torch.float64))

    def jacobian_sparsity(self) -> Sparsity | None:
        """The drift's colouring and Jacobian pattern (block or lattice drifts), else None."""
        sparsity = getattr(self.drift, "jacobian_sparsity", None)
        if sparsity is None or self.config.get("objective") == "action":
            return None
        return sparsity()

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        if self.config.get("objective") == "action":
            return _grad_phi(self.drift, t, x, create_graph=torch.is_grad_enabled())
        return self.drift(t, x)

    def eps(self, t: float) -> float:
        """The tuned diffusion eps_t (MALA step size sqrt(2 eps_t h) at acceptance ~0.574)."""
        return float(self.log_eps[int(_bin(torch.tensor([t])))].exp())

    def log_Z_from_F(self, points: int = 1001) -> float:
        """-int_0^1 dF_t/dt dt (trapezoid rule): the free energy's log Z estimate."""
        t = torch.linspace(0, 1, points, device=self.free_energy.c.device)
        with torch.no_grad():
            return -float(torch.trapezoid(self.free_energy(t).double(), t.double()))


def _grad_phi(phi: nn.Module, t: Tensor, x: Tensor, create_graph: bool) -> Tensor:
    """b = grad_x phi_t(x) for a scalar potential network (action matching)."""
    with torch.enable_grad():
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        out = phi(t, x)
        (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return g if create_graph else g.detach()


class _Potential(nn.Module):
    """phi_t(x) = sum_i x_i f_i(t, x) / s_i: a scalar from a vector network (action matching)."""

    def __init__(self, net: nn.Module, scale: Tensor):
        super().__init__()
        self.net = net
        self.register_buffer("s", scale)

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        return (self.net(t, x) * x / self.s.to(x.dtype)).flatten(1).sum(1)


def _bin(t: Tensor) -> Tensor:
    return (t * BINS).long().clamp(0, BINS - 1)


# --- divergence, Jacobians and the Heun transport ------------------------------------------


def _jacobian(model: nn.Module, t: Tensor, x: Tensor, create_graph: bool = False):
    """b_t(x) (n, d) and its Jacobian J[n, i, j] = d b_i / d x_j by batched VJPs: d of them,
    or one per colour when the drift declares a sparse Jacobian (``model.jacobian_sparsity``,
    e.g. block diagonal, or local on a lattice): the VJP with the indicator of colour c holds
    at (i, j) the entry of the one row i of colour c that may be non-zero in column j."""
    n, d = x.shape
    sparsity_of = getattr(model, "jacobian_sparsity", None)
    sparsity = None if sparsity_of is None else sparsity_of()
    colours = torch.arange(d) if sparsity is None else sparsity[0]
    k = int(colours.max()) + 1  # on the CPU: no device sync
    colours = colours.to(x.device)
    with torch.enable_grad():
        xg = x if (create_graph and x.requires_grad) else x.detach().requires_grad_(True)
        out = model(t, xg)
        probe = (colours[None] == torch.arange(k, device=x.device)[:, None]).to(x.dtype)
        grads = probe[:, None, :].expand(k, n, d)
        (rows,) = torch.autograd.grad(
            out, xg, grads, is_grads_batched=True, create_graph=create_graph
        )
    if sparsity is not None:  # row i of J: the VJP of i's colour, on i's pattern
        mask = sparsity[1].to(device=x.device, dtype=x.dtype)[:, None, :]
        rows = rows[colours] * mask if create_graph else rows[colours].mul_(mask)
    jac = rows.permute(1, 0, 2)
    return (out, jac) if create_graph else (out.detach(), jac.detach())


def _hutchinson(model: nn.Module, t: Tensor, x: Tensor, probe: Tensor, create_graph: bool):
    """b_t(x) and v^T (grad b) v for probes v (k, n, d) averaged over k: ((n, d), (n,))."""
    with torch.enable_grad():
        xg = x if (create_graph and x.requires_grad) else x.detach().requires_grad_(True)
        out = model(t, xg)
        (vjp,) = torch.autograd.grad(
            out, xg, probe, is_grads_batched=True, create_graph=create_graph
        )
    div = (vjp * probe).sum(-1).mean(0)
    return (out, div) if create_graph else (out.detach(), div.detach())


def _probe(generator: torch.Generator, k: int, x: Tensor) -> Tensor:
    signs = torch.randint(0, 2, (k, *x.shape), generator=generator)
    return (2 * signs - 1).to(x)


def _div(model, t, x, exact, probes, generator, create_graph):
    """b and div b: exact trace of the Jacobian or the Hutchinson estimate."""
    if exact:
        out, jac = _jacobian(model, t, x, create_graph)
        return out, jac.diagonal(dim1=1, dim2=2).sum(1)
    return _hutchinson(model, t, x, _probe(generator, probes, x), create_graph)


def _transport(model, t0: float, t1: float, x: Tensor, exact: bool, probes: int, generator):
    """The Heun map T x from t0 to t1 and log |det grad T| (exact, or the trapezoid of the
    Hutchinson divergences); -inf where det grad T <= 0 (T not invertible there). The exact
    Jacobians are formed for at most JACOBIAN_ENTRIES entries at a time (walker chunks)."""
    chunk = max(1, JACOBIAN_ENTRIES // x.shape[1] ** 2)
    if exact and x.shape[0] > chunk:
        parts = [_transport(model, t0, t1, c, exact, probes, generator) for c in x.split(chunk)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    h = t1 - t0
    tt0 = torch.tensor(t0, dtype=x.dtype, device=x.device)
    tt1 = torch.tensor(t1, dtype=x.dtype, device=x.device)
    if exact:
        k1, j1 = _jacobian(model, tt0, x)
        k2, j2 = _jacobian(model, tt1, x + h * k1)
        sign, logdet = torch.linalg.slogdet(heun_jacobian(j1.double(), j2.double(), h))
        logdet = torch.where(sign > 0, logdet, torch.full_like(logdet, -math.inf))
    else:
        k1, d1 = _hutchinson(model, tt0, x, _probe(generator, probes, x), False)
        k2, d2 = _hutchinson(model, tt1, x + h * k1, _probe(generator, probes, x), False)
        logdet = 0.5 * h * (d1 + d2).double()
    return x + 0.5 * h * (k1 + k2), logdet


# --- the walkers ---------------------------------------------------------------------------


class _OnDevice:
    """A base density used on ``device``: its samples are moved there and its log density is
    evaluated where the base lives (autograd carries the gradient across devices)."""

    def __init__(self, base: Any, device: torch.device):
        self.base, self.device = base, device
        self.home = base.sample(1, make_generator(0)).device

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.base.sample(n, generator).to(self.device)

    def log_prob(self, x: Tensor) -> Tensor:
        return self.base.log_prob(x.to(self.home)).to(x.device)


def _base_on(base: Any, device: torch.device | None) -> Any:
    """The base on ``device``: a DiagonalNormal is moved, any other base is wrapped."""
    if device is None:
        return base
    if isinstance(base, DiagonalNormal):
        return DiagonalNormal(base.mean.to(device), base.std.to(device))
    return _OnDevice(base, device)


@dataclass
class _Path:
    """The annealed path: counted target, base, schedule; log pi_t = -U_t and its parts."""

    annealed: AnnealedDensity
    kind: str
    power: float

    def beta(self, t: float) -> tuple[float, float]:
        b, db = schedule(torch.tensor(t, dtype=torch.float64), self.kind, self.power)
        return float(b), float(db)

    def state(self, x: Tensor, beta: float, parts: tuple[Tensor, ...] | None = None) -> State:
        """Walkers x with log pi_beta, its gradient and (log p_0, log rho*, grads) as aux."""
        lp0, lp1, g0, g1 = self.annealed.components(x) if parts is None else parts
        return State(x, (1 - beta) * lp0 + beta * lp1, (1 - beta) * g0 + beta * g1,
                     (lp0, lp1, g0, g1))  # fmt: skip


class Trajectory(NamedTuple):
    """Walkers after a run: final state, log weights A_1 (float64), per-step records of
    (t, x, log rho* - log p_0, grad log p_0, grad log rho*, A_t) and MALA acceptances."""

    state: State
    log_w: Tensor
    records: list[tuple[float, Tensor, Tensor, Tensor, Tensor, Tensor]]
    acceptance: list[tuple[float, float]]
    bad_steps: int
    log_z: Tensor | None = None
    resamplings: int = 0
    step_sizes: tuple[float, ...] = ()
    folded: tuple[int, ...] = ()  # indices k of the steps with a non-invertible walker


def simulate(
    path: _Path,
    model: NETSModel | None,
    x: Tensor,
    grid: Tensor,
    eps: Callable[[float], float],
    generator: torch.Generator,
    *,
    exact: bool = True,
    probes: int = 1,
    moves: int = 1,
    record: bool = False,
    resample_threshold: float = 0.0,
    groups: int = 1,
    mass_matrix: str = "identity",
    adapt: bool = False,
) -> Trajectory:
    r"""Move walkers x ~ p_0 along ``grid`` (0 = t_0 < ... < t_K = 1) by the three split steps
    of the module docstring (annealing, Heun transport by b, MALA at eps_t); b = 0 when
    ``model`` is None (then this is AIS with MALA moves of step size sqrt(2 eps_t h)).

    With ``resample_threshold`` r > 0 the walkers form ``groups`` independent populations of
    equal size (consecutive rows); whenever ESS/N of a population's weights falls below r after
    the transport (before the MALA move), its log mean exp(A) is added to its ``log_z`` and it is
    resampled (systematic) with A reset to 0, as in SMC (Del Moral et al.,
    arXiv:cond-mat/0212648): exp(log_z) mean exp(A_1) per population is still an unbiased
    estimate of Z.

    ``mass_matrix="diag"`` preconditions the MALA moves by the walkers' (unweighted) variance
    at each step, ``adapt=True`` replaces the step size sqrt(2 eps_t h) by one found at t = 0
    (doubling until the acceptance crosses 1/2) and then retuned after every move,
    step <- step exp(2 (acceptance - 0.574)): the moves of :func:`~.ais.run_ais`, so that with
    b = 0 and the linear schedule this is that AIS run. Either keeps every move exact for
    pi_t, so the weights are unchanged; eps only has to be > 0 where moves are made."""
    state = path.state(x, 0.0)
    size = None
    if adapt and moves > 0:
        metric = _metric(state.position, None, mass_matrix)
        size = find_reasonable_step_size(path.annealed.at(0.0), state, generator, 1.0, metric)
    used: list[float] = []
    log_w = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    records, acceptance, bad, folded = [], [], 0, []
    log_z = torch.zeros(groups, dtype=torch.float64, device=x.device)
    resamplings = 0
    b0 = 0.0
    if record:
        records.append(_record(0.0, state, log_w))
    for k in range(len(grid) - 1):
        t0, t1 = float(grid[k]), float(grid[k + 1])
        h = t1 - t0
        b1, _ = path.beta(t1)
        lp0, lp1 = state.aux[0], state.aux[1]
        log_w = log_w + (b1 - b0) * (lp1 - lp0).double()
        old = path.state(state.position, b1, state.aux)
        if model is not None:
            with torch.no_grad():
                y, logdet = _transport(model, t0, t1, old.position, exact, probes, generator)
            ok = torch.isfinite(y).all(1) & torch.isfinite(logdet)
            y = torch.where(ok[:, None], y, old.position)
            new = path.state(y, b1)
            dw = (new.log_prob - old.log_prob).double() + logdet
            ok &= torch.isfinite(dw)
            n_bad = int((~ok).sum())
            bad += n_bad
            if n_bad:
                folded.append(k)
            log_w = torch.where(ok, log_w + torch.where(ok, dw, 0.0), -math.inf)
            state = select(ok, new, old)
        else:
            state = old
        if resample_threshold > 0:
            state, log_w, inc, k = _resample_groups(
                state, log_w, groups, resample_threshold, generator
            )
            log_z, resamplings = log_z + inc, resamplings + k
        e = eps(t1)
        if e > 0 and moves > 0:
            metric = _metric(state.position, None, mass_matrix)
            for _ in range(moves):
                step = math.sqrt(2 * e * h) if size is None else size
                state, info = mala(path.annealed.at(b1), step, metric).step(generator, state)
                a = float(info.acceptance_rate.mean())
                acceptance.append((t1, a))
                used.append(step)
                if size is not None:
                    size *= math.exp(ADAPT_RATE * (a - TARGET_ACCEPT))
        if record:
            records.append(_record(t1, state, log_w))
        b0 = b1
    return Trajectory(state, log_w, records, acceptance, bad, log_z, resamplings, tuple(used),
                      tuple(folded))  # fmt: skip


def refine_grid(grid: Tensor, steps: list[int] | tuple[int, ...]) -> Tensor:
    """``grid`` with the midpoint of each interval [t_k, t_{k+1}], k in ``steps``, added."""
    mids = [0.5 * (grid[k] + grid[k + 1]) for k in sorted(set(steps))]
    return torch.sort(torch.cat([grid, torch.stack(mids)]))[0] if mids else grid


def _resample_groups(
    state: State, log_w: Tensor, groups: int, threshold: float, generator: torch.Generator
) -> tuple[State, Tensor, Tensor, int]:
    """Resample (systematic, within each of ``groups`` consecutive populations) those whose
    ESS/N is below ``threshold``: new state, log weights (0 there), the log mean exp(A) of
    every population (0 where it was not resampled) and how many were."""
    lw = log_w.view(groups, -1)
    low = ess_of_weights(lw, -1) < threshold
    if not bool(low.any()):
        return state, log_w, torch.zeros_like(lw[:, 0]), 0
    m = lw.shape[1]
    rows = torch.arange(groups * m, device=lw.device).view(groups, m)
    idx = systematic_resample(lw.cpu(), generator).to(lw.device) + rows[:, :1]
    idx = torch.where(low[:, None], idx, rows).flatten()
    new_w = torch.where(low[:, None], torch.zeros_like(lw), lw).flatten()
    inc = torch.where(low, log_mean_exp(lw, -1), 0.0)
    return _gather(state, idx), new_w, inc, int(low.sum())


def _record(t: float, state: State, log_w: Tensor):
    lp0, lp1, g0, g1 = state.aux
    return (t, state.position, (lp1 - lp0), g0, g1, log_w.clone())


def _grid(steps: int, generator: torch.Generator | None = None) -> Tensor:
    """0, then K points (k + u) / (K + 1) with one random shift u (or u = 1/2), then... 1."""
    if generator is None:
        return torch.linspace(0, 1, steps + 1, dtype=torch.float64)
    u = float(torch.rand((), generator=generator, dtype=torch.float64))
    inner = (torch.arange(steps - 1, dtype=torch.float64) + u) / (steps - 1)
    return torch.cat(
        [torch.zeros(1, dtype=torch.float64), inner, torch.ones(1, dtype=torch.float64)]
    )


# --- training ------------------------------------------------------------------------------


@dataclass
class _Batch:
    t: Tensor
    x: Tensor
    ell: Tensor
    g0: Tensor
    g1: Tensor
    w: Tensor  # self-normalised weight of the walker among those at its time (action matching)
    n_times: int = 0

    @classmethod
    def from_records(cls, records: list) -> _Batch:
        ts, xs, ells, g0s, g1s, ws = [], [], [], [], [], []
        for t, x, ell, g0, g1, lw in records:
            ts.append(torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device))
            xs.append(x), ells.append(ell), g0s.append(g0), g1s.append(g1)
            ws.append(torch.softmax(lw, 0).to(x.dtype))
        return cls(*(torch.cat(v) for v in (ts, xs, ells, g0s, g1s, ws)), n_times=len(records))

    @classmethod
    def cat(cls, batches: list[_Batch]) -> _Batch:
        if len(batches) == 1:
            return batches[0]
        keys = ("t", "x", "ell", "g0", "g1", "w")
        return cls(*(torch.cat([getattr(b, k) for b in batches]) for k in keys), n_times=0)

    def take(self, idx: Tensor) -> _Batch:
        return _Batch(self.t[idx], self.x[idx], self.ell[idx], self.g0[idx], self.g1[idx],
                      self.w[idx], self.n_times)  # fmt: skip


def _pinn_loss(
    model: NETSModel,
    path: _Path,
    batch: _Batch,
    exact: bool,
    probes: int,
    gen: torch.Generator,
    weighted: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """The PINN objective on a batch, each residual divided by the running variance of
    dlog pi_t/dt in its time bin (``weighted``) or by its mean over the bins; returns
    (loss, per-point residuals detached, dlog pi/dt)."""
    beta, dbeta = schedule(batch.t, path.kind, path.power)
    grad_log_pi = (1 - beta)[:, None] * batch.g0 + beta[:, None] * batch.g1
    dlog_pi_dt = dbeta * batch.ell
    x = batch.x.detach().requires_grad_(True)
    b, div = _div(model, batch.t, x, exact, probes, gen, create_graph=True)
    r = pinn_residual(div, grad_log_pi, b, dlog_pi_dt, model.free_energy(batch.t).to(x.dtype))
    var = model.loss_var[_bin(batch.t)] if weighted else model.loss_var.mean()
    weight = 1.0 / var.to(r.dtype)
    return (weight * r.square()).mean(), r.detach(), dlog_pi_dt.detach()


def _action_loss(model: NETSModel, path: _Path, batch: _Batch, base_x: Tensor, final: _Batch):
    r"""Action matching with weighted walkers: E_0[phi_0] - E_1[phi_1] + mean over the time
    points of sum_i W_i (|grad phi|^2 / 2 + dphi/dt)(t_i, x_i) (one Monte Carlo estimate
    of the time integral with t uniform over the records)."""
    phi = model.drift
    with torch.enable_grad():
        t = batch.t.detach().requires_grad_(True)
        x = batch.x.detach().requires_grad_(True)
        out = phi(t, x)
        gx, gt = torch.autograd.grad(out.sum(), (x, t), create_graph=True)
    inner = (0.5 * gx.square().flatten(1).sum(1) + gt) * batch.w
    n_per_time = batch.w.sum().clamp(min=1e-12)  # the batch's share of times
    zero = base_x.new_zeros(base_x.shape[0])
    one = final.x.new_ones(final.x.shape[0])
    e0 = phi(zero, base_x).mean()
    e1 = (phi(one, final.x) * final.w).sum()
    return e0 - e1 + inner.sum() / n_per_time


class _Logger:
    """metrics.jsonl lines and the checkpoint in a :class:`~..run_folder.RunFolder`; a
    progress bar. ``log_dir`` may be a folder the caller opened (the command line's)."""

    def __init__(
        self, log_dir: str | Path | RunFolder | None, total: int, progress: bool, resume: bool
    ):
        self.folder = (
            log_dir if isinstance(log_dir, RunFolder) else RunFolder(log_dir, resume=resume)
        )
        self.bar = progress_bar(total, progress, "nets")

    @property
    def dir(self) -> Path | None:
        return self.folder.path

    def log(self, row: dict[str, Any]) -> None:
        self.bar.set_postfix(
            loss=f"{row['loss']:.3g}", ess=f"{row['ess']:.3f}", logZ=f"{row['log_Z']:.3f}"
        )
        self.folder.log(row)

    def save(self, state: dict[str, Any]) -> None:
        self.folder.save_checkpoint(state)

    def load(self) -> dict[str, Any] | None:
        return self.folder.checkpoint()

    def accept(self, iteration: int | None) -> None:
        """Start writing; drop the metrics.jsonl lines logged after round ``iteration`` (a
        crash between checkpoints; all of them when None): the resumed rounds write them
        again."""
        self.folder.accept()
        self.folder.rewind("iteration", iteration)


@dataclass
class _TrainOptions:
    iterations: int
    walkers: int
    steps: int
    updates: int
    batch_size: int
    lr: float
    objective: str
    exact: bool
    probes: int
    moves: int
    log_every: int
    checkpoint_every: int
    buffer: int
    time_weighted: bool
    history: list[dict[str, Any]] = field(default_factory=list)


def _train(
    model: NETSModel,
    path: _Path,
    base: Any,
    dtype: torch.dtype | None,
    generator: torch.Generator,
    o: _TrainOptions,
    logger: _Logger,
    resume_state: dict[str, Any] | None,
) -> list[dict[str, Any]]:
    """Alternate short simulations (detached walkers on a random grid, eps_t adapted to the
    MALA acceptance per time bin) with ``updates`` Adam steps of the objective."""
    opt = torch.optim.Adam(model.parameters(), lr=o.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(o.iterations, 1), o.lr * 0.1)
    start, history = 0, list(o.history)
    if resume_state is not None:
        opt.load_state_dict(resume_state["optimizer"])
        sched.load_state_dict(resume_state["scheduler"])
        start = resume_state["iteration"]
        logger.bar.update(start)
    counter = path.annealed.target
    earlier = 0.0 if resume_state is None else resume_state.get("seconds", 0.0)
    clock, acc_loss, acc_n, buffer = time.perf_counter() - earlier, 0.0, 0, []
    if resume_state is not None and "buffer" in resume_state:  # the same rounds as unbroken
        device = model.log_eps.device
        buffer = [_Batch(**{k: v.to(device) if isinstance(v, Tensor) else v
                            for k, v in b.items()}) for b in resume_state["buffer"]]  # fmt: skip
        acc_loss, acc_n = resume_state["accumulated"]

    def save(done: int) -> None:
        logger.save({
            "model": model.state_dict(),
            "config": model.config,
            "drift_config": getattr(model.drift, "config", None),
            "seconds": time.perf_counter() - clock,
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "iteration": done,
            "generator": generator.get_state(),
            "evaluations": counter.evaluations,
            "history": history,
            "buffer": [dict(vars(b)) for b in buffer],
            "accumulated": (acc_loss, acc_n),
        })  # fmt: skip

    with deferred_interrupt() as interrupt:
        for it in range(start, o.iterations):
            x0 = base.sample(o.walkers, generator)
            x0 = x0.to(dtype) if dtype is not None else x0
            traj = simulate(path, model, x0, _grid(o.steps, generator), model.eps, generator,
                            exact=o.exact, probes=o.probes, moves=o.moves, record=True)  # fmt: skip
            _adapt_eps(model, traj.acceptance)
            buffer = (
                [*buffer[-(o.buffer - 1) :], _Batch.from_records(traj.records)]
                if o.buffer > 1
                else [_Batch.from_records(traj.records)]
            )
            data = _Batch.cat(buffer)
            if it == start and resume_state is None:
                _init_scales(model, path, data)
            for _ in range(o.updates):
                idx = torch.randint(0, data.t.shape[0], (o.batch_size,), generator=generator)
                batch = data.take(idx.to(data.t.device))
                if o.objective == "pinn":
                    loss, _, dldt = _pinn_loss(model, path, batch, o.exact, o.probes, generator,
                                               o.time_weighted)  # fmt: skip
                    _update_var(model, batch.t, dldt)
                else:
                    final = _Batch.from_records(traj.records[-1:])
                    loss = _action_loss(model, path, batch, x0, final)
                if not torch.isfinite(loss):
                    saved = logger.dir is not None and (logger.dir / CHECKPOINT).exists()
                    kept = f"the checkpoint in {logger.dir} is kept" if saved else "no checkpoint"
                    raise FloatingPointError(
                        f"nets: the {o.objective} loss is {float(loss.detach())} in training round "
                        f"{it + 1}; stopped ({kept}; try a smaller lr or more train_steps)"
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
                opt.step()
                acc_loss, acc_n = acc_loss + float(loss.detach()), acc_n + 1
            sched.step()
            logger.bar.update(1)
            if (it + 1) % o.log_every == 0 or it + 1 == o.iterations:
                log_z, se = log_Z_from_weights(traj.log_w)
                row = {
                    "iteration": it + 1,
                    "loss": acc_loss / max(acc_n, 1),
                    "ess": float(ess_of_weights(traj.log_w)),
                    "log_Z": log_z,
                    "log_Z_stderr": se,
                    "log_Z_F": model.log_Z_from_F(),
                    "evaluations": counter.evaluations,
                    "seconds": time.perf_counter() - clock,
                    "lr": sched.get_last_lr()[0],
                }
                history.append(row)
                logger.log(row)
                acc_loss, acc_n = 0.0, 0
            last = it + 1 == o.iterations
            if o.checkpoint_every and ((it + 1) % o.checkpoint_every == 0 or last):
                save(it + 1)
            if interrupt.requested and not last:
                save(it + 1)
                kept = (
                    f"checkpoint of round {it + 1} in {logger.dir}" if logger.dir else "no log_dir"
                )
                raise TrainingInterrupted(
                    f"nets: interrupted in training round {it + 1} of {o.iterations}; {kept}"
                    + ("; resume with resume=True (--option resume=true)" if logger.dir else "")
                )
    return history


def _adapt_eps(model: NETSModel, acceptance: list[tuple[float, float]]) -> None:
    """log eps_bin += 2 (mean acceptance in the bin - 0.574): eps_t follows the acceptance."""
    if not acceptance:
        return
    t = torch.tensor([a[0] for a in acceptance])
    a = torch.tensor([a[1] for a in acceptance], dtype=torch.float64)
    bins = _bin(t - 1e-9)
    total = torch.zeros(BINS, dtype=torch.float64).index_add_(0, bins, a)
    count = torch.zeros(BINS, dtype=torch.float64).index_add_(0, bins, torch.ones_like(a))
    seen = count > 0
    step = torch.where(seen, 2.0 * (total / count.clamp(min=1) - TARGET_ACCEPT), 0.0)
    # bins without a step this time follow their nearest seen neighbour's change
    if seen.any():
        idx = torch.nonzero(seen).flatten()
        nearest = idx[(torch.arange(BINS)[:, None] - idx[None]).abs().argmin(1)]
        step = step[nearest]
    model.log_eps += step.to(model.log_eps.device)


def _init_scales(model: NETSModel, path: _Path, data: _Batch) -> None:
    """Loss weights and the output scale of dF/dt from the first simulation's dlog pi/dt."""
    _, dbeta = schedule(data.t, path.kind, path.power)
    dldt = (dbeta * data.ell).double()
    model.loss_var.fill_(max(float(dldt.var()), 1e-6))
    _update_var(model, data.t, dldt, rate=1.0)
    model.free_energy.c.fill_(max(float(dldt.abs().mean()), 1.0))


def _update_var(model: NETSModel, t: Tensor, dldt: Tensor, rate: float = 0.05) -> None:
    """Running variance of dlog pi_t/dt per time bin (the PINN loss weights)."""
    dev = model.loss_var.device
    bins, d = _bin(t).to(dev), dldt.double().to(dev)
    s1 = torch.zeros(BINS, dtype=torch.float64, device=dev).index_add_(0, bins, d)
    s2 = torch.zeros_like(s1).index_add_(0, bins, d.square())
    c = torch.zeros_like(s1).index_add_(0, bins, torch.ones_like(d))
    ok = c > 1
    var = (s2 / c.clamp(min=1) - (s1 / c.clamp(min=1)).square()).clamp(min=1e-6)
    model.loss_var[ok] = (1 - rate) * model.loss_var[ok] + rate * var[ok]


# --- the runner ----------------------------------------------------------------------------


def _combine_batches(traj: Trajectory, batches: int) -> tuple[Tensor, float, float | None, Tensor]:
    """R resampled populations of m walkers: log weights log Z_r + log m softmax(A_r) (so that
    log mean exp is log Z_hat = log mean_r Z_r), log Z_hat, the delta-method error over the
    populations (None when R = 1) and the population of every walker."""
    lw = traj.log_w.cpu().view(batches, -1)
    log_z = traj.log_z.cpu() + log_mean_exp(lw, -1)
    m = lw.shape[1]
    log_w = (log_z[:, None] + torch.log_softmax(lw, -1) + math.log(m)).flatten()
    z = (log_z - log_z.max()).exp()
    stderr = float(z.std() / (math.sqrt(batches) * z.mean())) if batches > 1 else None
    groups = torch.arange(batches).repeat_interleave(m)
    return log_w, float(log_mean_exp(log_z, 0)), stderr, groups


def _check_positive(name: str, value: Any, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be a {kind} number, got {value!r}")
    return float(value)


def _eps_fn(model: NETSModel | None, eps: Any, scale: float) -> Callable[[float], float]:
    if eps is None:
        if model is None:
            raise ValueError("eps=None uses the trained eps_t; without a model pass eps=")
        return lambda t: scale * model.eps(t)
    if callable(eps):
        return lambda t: scale * float(eps(t))
    e = _check_positive("eps", eps, allow_zero=True)
    return lambda t: scale * e


def run_nets(
    target: Any,
    n: int = 2000,
    seed: int = 0,
    init: None = None,
    *,
    steps: int = 100,
    refine: int = 0,
    eps: float | str | Callable[[float], float] | None = None,
    eps_scale: float = 1.0,
    mass_matrix: str = "identity",
    eps_sweep: tuple[float, ...] = EPS_SWEEP,
    sweep_walkers: int = 500,
    resample: bool = False,
    resample_threshold: float = 0.0,
    batches: int | None = None,
    moves: int = 1,
    schedule: str = "power",
    schedule_power: float = 3.0,
    base: Any = None,
    base_scale: float | None = None,
    objective: str = "pinn",
    model: NETSModel | None = None,
    drift: str | None = "learned",
    net: str | nn.Module | None = None,
    width: int | None = None,
    depth: int | None = None,
    block: int | None = None,
    net_options: dict[str, Any] | None = None,
    features: int = 64,
    feature_scale: float = 8.0,
    iterations: int = 200,
    train_walkers: int = 128,
    train_steps: int = 50,
    updates: int = 48,
    batch_size: int = 256,
    buffer: int = 4,
    time_weighted: bool = False,
    lr: float = 3e-3,
    divergence: str = "auto",
    exact_max_dim: int = 32,
    log_det: str = "auto",
    probes: int = 1,
    log_dir: str | Path | RunFolder | None = None,
    resume: bool = False,
    log_every: int = 10,
    checkpoint_every: int = 50,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> SampleResult:
    r"""NETS (arXiv:2410.02711): learn a drift b_t by the PINN (or action-matching) objective,
    then run n walkers of the NETS SDE with Jarzynski weights (module docstring).

    Arguments:
        target: a :class:`~interpolants.targets.Target`.
        n: walkers (samples returned).
        seed: seeds the run's one torch.Generator (training and sampling).
        init: must be None (walkers start from the base).
        steps: K, time steps of the sampling run (uniform grid on [0, 1]).
        refine: before the sampling run, up to this many pilot runs of ``sweep_walkers``
            walkers (evaluations counted), each halving every step where a pilot walker's
            Heun map was not invertible; the main run then uses that grid, fixed before
            its walkers are drawn, so its estimator is unaffected by the pilot (0: none).
            A fold biases log Z upwards (module docstring).
        eps: the diffusion eps_t of the sampling run: None (default) the eps_t tuned to
            MALA acceptance 0.574 during training; a number or a function of t; "sweep":
            try ``eps_sweep`` multiples of the tuned eps_t on ``sweep_walkers`` walkers each
            and keep the one of largest ESS (its evaluations are counted); "adapt": MALA
            steps found at t = 0 and retuned to acceptance 0.574 after every move, as
            :func:`~.ais.run_ais` does (:func:`simulate`).
        eps_scale: multiplies eps_t.
        mass_matrix: the MALA preconditioner of the sampling run: "identity" (default) or
            "diag", the walkers' variance at every step (as run_ais); with "diag", eps is
            in units of that variance, so pass eps="adapt" or a number.
        resample: return the walkers resampled (systematic) by their weights, with equal
            log weights log Z_hat; log Z_hat and its error come from the weights before.
        resample_threshold: r in [0, 1]: during the sampling run, resample the walkers
            (systematic) whenever their ESS/N falls below r, as SMC does, and carry the
            normaliser (:func:`simulate`); 0 (default) never: the plain NETS estimator. Resampling
            lets mass move between modes the drift does not connect, at the price of
            correlated walkers.
        batches: R independent populations of n / R walkers, each resampled on its own
            (default 10 when resampling; moved together, as one batch of n, on the device);
            log Z_hat = log mean_r Z_hat_r with the delta-method standard error over the R
            populations (as ``run_smc``); ``groups`` labels them.
        moves: MALA moves per step.
        schedule, schedule_power: beta_t of the path (:func:`schedule`): "power" t^p
            (default p = 3), "linear", "geometric" or "reverse_power" 1 - (1 - t)^p (for
            targets with broad tails, e.g. the funnel).
        base, base_scale: the base p_0 (default ``target.base``) or N(0, base_scale^2 I).
        objective: "pinn" (default) or "action" (action matching, b = grad phi).
        model: a trained :class:`NETSModel` (e.g. ``result.info["model"]``): no training.
        drift: "learned" (default), or None for b = 0 (annealed importance sampling with
            MALA moves of step sqrt(2 eps_t h); then give eps).
        net, width, depth: the drift network: "mlp" (vectors, width 128, depth 3; the
            default), "conv" (the periodic convolutional network, default for L x L lattice
            targets), "blocks" (one MLP shared by the blocks of ``block`` coordinates, default
            for targets that declare ``block_size``, e.g. many_well: independent blocks), or a
            module net(t, x) -> (n, dim).
        block: coordinates per block of net="blocks" (default the target's ``block_size``,
            else 2).
        net_options: further keyword arguments of the network's class, e.g.
            ``{"hop": False}`` for net="conv" (a receptive field one site smaller, whose
            exact Jacobians take 64 VJPs instead of 256 at L = 16; see
            :class:`~interpolants.nn.LatticeDrift`).
        features, feature_scale: random Fourier features of x / s for the MLP (64 at
            scale 8 by default; on gmm40 they take the PINN loss from 0.5 to 0.1).
        iterations: training rounds; each simulates ``train_walkers`` walkers on a random
            grid of ``train_steps`` steps, then makes ``updates`` Adam
            steps (learning rate ``lr``, cosine decay to lr / 10) on minibatches of
            ``batch_size`` (t, x) points of the last ``buffer`` simulations. Updates cost
            no target evaluations: 48 (default) instead of 24 lifted gmm40's ESS/N from 0.89
            to 0.90-0.91 at the same evaluations (benchmarks/RESULTS_nets.md).
        time_weighted: divide the squared PINN residual by the running variance of
            dU_t/dt in its time bin (default False: one constant for all t, so that the
            loss weighs the residual as it enters the variance of the weights).
        divergence: of the training loss: "exact" (Jacobians), "hutchinson" (``probes``
            Rademacher probes) or "auto": exact when dim <= ``exact_max_dim``.
        log_det: of the sampling run's transport steps: "exact" (the weights are unbiased),
            "hutchinson" (the trapezoid of Hutchinson divergences: d times cheaper, biased;
            see the module docstring) or "auto" (default): exact when dim <= 50.
        log_dir: a run folder for metrics.jsonl (loss, ESS, log Z every ``log_every``
            rounds) and checkpoint.safetensors (every ``checkpoint_every`` rounds); one that
            already holds something is refused unless ``resume``.
        resume: continue the training from log_dir's checkpoint (refused, before anything
            is written, when the drift's settings differ).
        dtype: walker dtype (default the base's).
        device: where the walkers, the drift and the target evaluations live (e.g. "cuda";
            default: where the base samples). Random numbers come from one CPU generator,
            so a seed gives the same draws on every device.
        progress: show a progress bar with the loss, ESS and log Z of training.

    Returns:
        :class:`~.result.SampleResult` with log weights A_1, log Z, its delta-method standard
        error, ESS/N and all target evaluations (training included); ``info`` holds the
        model, the training history, the eps used, the evaluations of training and of
        sampling apart, and the ESS of every eps of a sweep.
    """
    n, steps = check_int("n", n, 2), check_int("steps", steps, 1)
    refine = check_int("refine", refine, 0)
    iterations, moves = check_int("iterations", iterations, 0), check_int("moves", moves, 0)
    train_walkers = check_int("train_walkers", train_walkers, 2)
    train_steps = check_int("train_steps", train_steps, 2)
    updates, batch_size = check_int("updates", updates, 0), check_int("batch_size", batch_size)
    buffer, features = check_int("buffer", buffer), check_int("features", features, 0)
    feature_scale = _check_positive("feature_scale", feature_scale)
    probes, exact_max_dim = check_int("probes", probes), check_int("exact_max_dim", exact_max_dim)
    log_every = check_int("log_every", log_every)
    checkpoint_every = check_int("checkpoint_every", checkpoint_every, 0)
    sweep_walkers = check_int("sweep_walkers", sweep_walkers, 2)
    lr, eps_scale = _check_positive("lr", lr), _check_positive("eps_scale", eps_scale, True)
    if not (isinstance(resample_threshold, (int, float)) and 0 <= resample_threshold <= 1):
        raise ValueError(f"resample_threshold must be in [0, 1], got {resample_threshold!r}")
    batches = (
        check_int("batches", batches)
        if batches is not None
        else (10 if resample_threshold > 0 else 1)
    )
    if n % batches or n // batches < 2:
        raise ValueError(f"n={n} must be a multiple of batches={batches} with >= 2 per batch")
    if init is not None:
        raise ValueError("init: nets starts from the base distribution; pass base= instead")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    schedule_power = _check_positive("schedule_power", schedule_power)
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence must be one of {DIVERGENCES}, got {divergence!r}")
    if log_det not in LOG_DETS:
        raise ValueError(f"log_det must be one of {LOG_DETS}, got {log_det!r}")
    if drift not in ("learned", None):
        raise ValueError(f"drift must be 'learned' or None (b = 0), got {drift!r}")
    if model is not None and not isinstance(model, NETSModel):
        raise ValueError(f"model must be a NETSModel, got {type(model).__name__}")
    if isinstance(eps, str) and eps not in ("sweep", "adapt"):
        raise ValueError(
            f"eps must be None, a number, a function of t, 'sweep' or 'adapt', got {eps!r}"
        )
    if mass_matrix not in ("identity", "diag"):
        raise ValueError(f"mass_matrix must be 'identity' or 'diag', got {mass_matrix!r}")
    if mass_matrix == "diag" and (eps is None or eps == "sweep"):
        raise ValueError(
            "mass_matrix='diag' measures eps in units of the walkers' variance, not the trained "
            "eps_t: pass eps='adapt' or a number"
        )
    if eps == "adapt" and eps_scale != 1:
        raise ValueError(f"eps='adapt' tunes the step itself; eps_scale must be 1, got {eps_scale}")
    if (
        eps_sweep is not None and not all(isinstance(e, (int, float)) and e >= 0 for e in eps_sweep)
    ) or not eps_sweep:
        raise ValueError(f"eps_sweep must be non-negative numbers, got {eps_sweep!r}")
    if isinstance(eps, (int, float)):
        _check_positive("eps", eps, allow_zero=True)
    if drift is None and (eps is None or eps == "sweep"):
        raise ValueError("drift=None (b = 0) has no trained eps_t: pass eps= a number or 'adapt'")

    start = time.perf_counter()
    density = CountedDensity(target)
    generator = make_generator(seed)
    device = None if device is None else torch.device(device)
    base = _base_on(_resolve_base(target, base, base_scale, dtype), device)
    # the network's input scale from a separate stream, so that b = 0 draws what AIS draws
    probe_x = base.sample(256, make_generator(seed + 7919))
    scale = probe_x.float().std(0).clamp(min=1e-3)
    exact = divergence == "exact" or (divergence == "auto" and target.dim <= exact_max_dim)
    exact_log_det = log_det == "exact" or (
        log_det == "auto" and target.dim <= LOG_DET_EXACT_MAX_DIM
    )
    path = _Path(AnnealedDensity(density, base), schedule, schedule_power)
    history: list[dict[str, Any]] = []
    logger = _Logger(log_dir, iterations if model is None and drift else 0, progress, resume)
    earlier_seconds = 0.0  # training seconds before a resumed checkpoint
    if drift is not None and model is None:
        config = {"schedule": schedule, "schedule_power": schedule_power, "objective": objective,
                  "dim": target.dim}  # fmt: skip
        with torch.random.fork_rng():  # initial weights from the seed, global stream untouched
            torch.manual_seed(seed)
            raw = build_drift(target, net, scale, width, depth, features, feature_scale, block,
                              net_options)  # fmt: skip
            if objective == "action":
                raw = _Potential(raw, scale)
            mean_scale = float(scale.mean())
            model = NETSModel(raw, config, eps0=(0.5 * mean_scale) ** 2 * train_steps / 2)
        model.to(device or scale.device)
        if resume and log_dir is None:
            raise ValueError("resume=True needs log_dir (where the checkpoint is)")
        resume_state = logger.load() if resume else None
        if resume_state is not None:
            drift_config = getattr(model.drift, "config", None)
            saved = (resume_state["config"], resume_state.get("drift_config", drift_config))
            if saved[0] != model.config or not same_drift(saved[1], model.drift):
                raise ValueError(
                    f"resume: the checkpoint in {log_dir} was made with {saved}, "
                    f"now {(model.config, drift_config)}"
                )
            model.load_state_dict(resume_state["model"])
            generator.set_state(resume_state["generator"])
            density.evaluations = resume_state["evaluations"]
            history = resume_state["history"]
            earlier_seconds = resume_state.get("seconds", 0.0)
        # resumed: lines past the checkpoint go; no checkpoint yet: start again, so does the log
        logger.accept(None if resume_state is None else resume_state["iteration"])
        opts = _TrainOptions(iterations, train_walkers, train_steps, updates, batch_size, lr,
                             objective, exact, probes, moves, log_every, checkpoint_every,
                             buffer if objective == "pinn" else 1, time_weighted,
                             history)  # fmt: skip
        history = _train(model, path, base, dtype, generator, opts, logger, resume_state)
    elif model is not None:
        if model.config.get("dim") != target.dim:
            raise ValueError(
                f"model was trained for dim={model.config.get('dim')}, target has {target.dim}"
            )
        path = _Path(path.annealed, model.config["schedule"], model.config["schedule_power"])
        if device is not None:
            model.to(device)
    logger.bar.close()
    train_evals = density.evaluations
    train_seconds = time.perf_counter() - start + earlier_seconds  # with a resumed run's past
    drift_model = model if drift is not None else None

    def run(
        m: int, eps_fn: Callable[[float], float], threshold: float = 0.0, grid: Tensor | None = None
    ) -> Trajectory:
        x0 = base.sample(m, generator)
        x0 = x0.to(dtype) if dtype is not None else x0
        grid = _grid(steps) if grid is None else grid
        return simulate(path, drift_model, x0, grid, eps_fn, generator,
                        exact=exact_log_det, probes=probes, moves=moves,
                        resample_threshold=threshold, groups=batches,
                        mass_matrix=mass_matrix, adapt=eps == "adapt")  # fmt: skip

    sweep: list[dict[str, float]] = []
    if eps == "sweep":
        best, best_ess = None, -1.0
        for s in eps_sweep:
            traj = run(sweep_walkers, _eps_fn(model, None, s))
            ess = float(ess_of_weights(traj.log_w))
            sweep.append({"eps_scale": s, "ess": ess, "log_Z": float(log_mean_exp(traj.log_w, 0))})
            if ess > best_ess:
                best, best_ess = s, ess
        eps_fn = _eps_fn(model, None, best * eps_scale)
    elif eps == "adapt":
        eps_fn = _eps_fn(None, 1.0, 1.0)  # only its sign matters: moves everywhere
    else:
        eps_fn = _eps_fn(model, eps, eps_scale)
    grid, refinements = _grid(steps), 0
    while drift_model is not None and refinements < refine:
        folded = run(sweep_walkers, eps_fn, grid=grid).folded
        if not folded:
            break
        grid, refinements = refine_grid(grid, folded), refinements + 1
    traj = run(n, eps_fn, resample_threshold, grid)
    if traj.bad_steps:
        warnings.warn(
            f"nets: the transport map was not invertible (or not finite) for {traj.bad_steps} "
            "walker-steps, whose weights were set to 0; where the Heun map folds, log Z is "
            "biased upwards (the fold's image is counted twice): use more steps or refine=",
            stacklevel=2,
        )
    samples, groups = traj.state.position, None
    if resample_threshold > 0:
        log_w, log_Z, stderr, groups = _combine_batches(traj, batches)
        groups = groups.to(samples.device)
    else:
        log_w = traj.log_w
        log_Z, stderr = log_Z_from_weights(log_w)
    ess = float(ess_of_weights(log_w))
    if resample:
        idx = systematic_resample(log_w[None], generator)[0].to(samples.device)
        samples = samples[idx]
        log_w = torch.full_like(log_w, log_Z)
    acc = [a for _, a in traj.acceptance]
    info: dict[str, Any] = {
        "target": density.name,
        "steps": steps,
        "grid_steps": len(grid) - 1,
        "refinements": refinements,
        "eps_scale": eps_scale if eps != "sweep" else best * eps_scale,
        "eps_profile": torch.tensor([eps_fn(float(t)) for t in grid[1:]])
        if eps != "adapt"
        else None,
        "mass_matrix": mass_matrix,
        "step_size_per_move": torch.tensor(traj.step_sizes, dtype=torch.float64),
        "eps_sweep": sweep,
        "training_evaluations": train_evals,
        "training_seconds": train_seconds,
        "sampling_evaluations": density.evaluations - train_evals,
        "iterations": iterations if drift is not None else 0,
        "divergence": "exact" if exact else "hutchinson",
        "log_det": "exact" if exact_log_det else "hutchinson",
        "schedule": path.kind,
        "non_invertible_steps": traj.bad_steps,
        "resampled": bool(resample),
        "resample_threshold": float(resample_threshold),
        "batches": batches,
        "resampling_steps": traj.resamplings,
        "history": history,
        "model": drift_model,
    }
    if drift_model is not None:
        info["log_Z_F"] = drift_model.log_Z_from_F()
    if history:
        info["final_train_ess"] = history[-1]["ess"]
    return SampleResult(
        samples=samples,
        method="nets",
        log_weights=log_w.to(samples.device),
        log_Z=log_Z,
        log_Z_stderr=stderr,
        ess=ess,
        evaluations=density.evaluations,
        acceptance_rate=sum(acc) / len(acc) if acc else None,
        groups=None if resample else groups,
        info=info,
    )
