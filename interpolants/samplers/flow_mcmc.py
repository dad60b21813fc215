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

import math
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from ..generative import GenerativeModel
from ..interpolant import Interpolant
from ..losses import velocity_loss
from ..nn import CouplingFlow, MLPField
from .adaptation import MASS_MATRICES, window_adaptation
from .api import chain_result, initial_positions, register_method
from .diagnostics import (
    ess_of_weights,
    log_Z_from_weights,
    mcse_mean,
)
from .hmc import (
    CountedDensity,
    GaussianMetric,
    Info,
    Kernel,
    State,
    check_fraction,
    check_initial,
    check_int,
    make_generator,
    metropolis,
    progress_bar,
)
from .mala import mala
from .result import SampleResult

__all__ = [
    "TRANSPORTS",
    "CouplingTransport",
    "DefensiveMixture",
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

TRANSPORTS = ("coupling", "interpolant")


# --- the math -----------------------------------------------------------------------------


def independent_mh_log_ratio(
    log_rho_new: Tensor, log_q_new: Tensor, log_rho_old: Tensor, log_q_old: Tensor
) -> Tensor:
    r"""log alpha = log rho*(x') + log q(x) - log rho*(x) - log q(x'): the independent
    Metropolis-Hastings test of a proposal x' ~ q from x (arXiv:2105.12603, the global move).

    rho* may be unnormalised (Z cancels); so may q only if the same constant is in both terms.
    """
    return (log_rho_new - log_q_new) - (log_rho_old - log_q_old)


def mode_switches(labels: Tensor) -> Tensor:
    """Changes of mode label along each chain: labels (draws, chains) -> (chains,) counts."""
    if labels.ndim != 2:
        raise ValueError(f"labels must have shape (draws, chains), got {tuple(labels.shape)}")
    return (labels[1:] != labels[:-1]).sum(0)


def mode_weights(labels: Tensor, modes: int) -> tuple[Tensor, Tensor]:
    """Weights of the modes 0..modes-1 and their Monte Carlo standard errors (from the
    multi-chain autocorrelation, :func:`~.diagnostics.mcse_mean`): labels (draws, chains)."""
    if labels.ndim != 2:
        raise ValueError(f"labels must have shape (draws, chains), got {tuple(labels.shape)}")
    onehot = torch.nn.functional.one_hot(labels.long(), modes).double()
    return mcse_mean(onehot)


# --- transports ---------------------------------------------------------------------------


@runtime_checkable
class Transport(Protocol):
    """q = T#rho_b with a tractable density, fitted step by step to walker positions."""

    def sample_with_log_prob(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]: ...

    def log_prob(self, x: Tensor) -> Tensor: ...

    def fit_step(self, x: Tensor, generator: torch.Generator) -> float: ...


class CouplingTransport:
    r"""A :class:`~interpolants.nn.CouplingFlow` over rho_b fitted by maximum likelihood:
    one Adam step on -(1/B) sum_i log q(x_i) per :meth:`fit_step` (arXiv:2105.12603)."""

    def __init__(
        self,
        dim: int,
        base: Any,
        dtype: torch.dtype,
        layers: int = 8,
        width: int = 64,
        lr: float = 1e-3,
        seed: int = 0,
    ):
        with torch.random.fork_rng():  # seeded initial weights, global stream untouched
            torch.manual_seed(seed)
            self.flow = CouplingFlow(dim, base, layers=layers, width=width).to(dtype)
        self.optimizer = torch.optim.Adam(self.flow.parameters(), lr=lr)

    def sample_with_log_prob(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            return self.flow.sample_with_log_prob(n, generator)

    def log_prob(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return self.flow.log_prob(x)

    def fit_step(self, x: Tensor, generator: torch.Generator) -> float:
        loss = -self.flow.log_prob(x).mean()
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.flow.parameters(), 10.0)
        self.optimizer.step()
        return float(loss.detach())


class InterpolantTransport:
    r"""A continuous flow: b_t fitted by the interpolant loss E|b_t(x_t)|^2 - 2 dx_t/dt . b_t
    with x_t = (1 - t) x_b + t x, x_b ~ rho_b, x the walkers (arXiv:2209.15571); q from the
    ODE likelihood with the exact divergence and ``ode_steps`` RK4 steps.

    The MH ratio takes q of a proposal from the forward solve and q of a walker from the
    backward one; these agree only up to the RK4 error (max |difference| about 1e-3 at 8 steps
    and 1e-5 at 20 on the test's 2D target), so the chain's invariant law is exact only as
    ``ode_steps`` grows; the coupling transport has no such error."""

    def __init__(
        self,
        dim: int,
        base: Any,
        dtype: torch.dtype,
        width: int = 128,
        depth: int = 3,
        lr: float = 1e-3,
        ode_steps: int = 20,
        seed: int = 0,
    ):
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.net = MLPField(dim, width=width, depth=depth).to(dtype)
        self.interpolant = Interpolant("linear")
        self.model = GenerativeModel(self.interpolant, self.net, base=base)
        self.base, self.dtype, self.ode_steps = base, dtype, ode_steps
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=lr)

    def sample_with_log_prob(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        x0 = self.base.sample(n, generator).to(self.dtype)
        from ..integrate import odeint_with_divergence

        sol = odeint_with_divergence(self.net, x0, 0.0, 1.0, steps=self.ode_steps, solver="rk4")
        return sol.x.detach(), (self.base.log_prob(x0).to(x0) - sol.divergence_integral).detach()

    def log_prob(self, x: Tensor) -> Tensor:
        return self.model.log_prob(x, steps=self.ode_steps, solver="rk4").detach()

    def fit_step(self, x: Tensor, generator: torch.Generator) -> float:
        x0 = self.base.sample(x.shape[0], generator).to(x)
        t = torch.rand(x.shape[0], generator=generator, dtype=x.dtype)
        s = self.interpolant.sample(x0, x, t)
        loss = velocity_loss(self.net(s.t, s.xt), s)
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 10.0)
        self.optimizer.step()
        return float(loss.detach())


# --- the moves ----------------------------------------------------------------------------


def global_move(
    generator: torch.Generator,
    state: State,
    log_q: Tensor,
    transport: Transport,
    density: CountedDensity,
    allow: Any = None,
) -> tuple[State, Tensor, Info]:
    """One independent MH move of every walker through ``transport``; returns the new state,
    log q at the new positions and the move's :class:`~.hmc.Info`. ``allow``, if given, maps
    the proposals (n, dim) to a mask (n,): a walker may only move where it is True (the MH
    move for rho* restricted to that set)."""
    x_new, log_q_new = transport.sample_with_log_prob(state.position.shape[0], generator)
    x_new, log_q_new = x_new.to(state.position), log_q_new.to(state.position)
    ev = density(x_new)
    log_alpha = independent_mh_log_ratio(ev.log_prob, log_q_new, state.log_prob, log_q)
    log_alpha = torch.where(torch.isfinite(log_q_new), log_alpha, -math.inf)
    if allow is not None:
        log_alpha = torch.where(allow(x_new), log_alpha, -math.inf)
    proposal = State(x_new, ev.log_prob, ev.grad, tuple(ev.aux))
    new, info = metropolis(generator, log_alpha, proposal, state, 1)
    return new, torch.where(info.is_accepted, log_q_new, log_q), info


@dataclass
class TrainedTransport:
    """What :func:`train_transport` hands on: the frozen transport, the walkers' state, the
    local kernel, and the training diagnostics."""

    transport: Transport
    state: State
    kernel: Kernel
    step_size: float
    metric: GaussianMetric | None
    density: CountedDensity
    acceptance_trace: Tensor  # (rounds,) mean global acceptance per training round
    loss_trace: Tensor  # (rounds,) mean training loss per round
    log_prob_trace: Tensor  # (iterations, chains), warm-up and training
    rounds: int
    stopped_by: str


def _make_transport(
    transport: str | Transport, dim: int, base: Any, dtype: torch.dtype, options: dict, seed: int
) -> Transport:
    if not isinstance(transport, str):
        if not isinstance(transport, Transport):
            raise ValueError(
                "transport must be 'coupling', 'interpolant' or an object with "
                "sample_with_log_prob, log_prob and fit_step"
            )
        return transport
    if transport == "coupling":
        return CouplingTransport(dim, base, dtype, seed=seed, **options)
    if transport == "interpolant":
        return InterpolantTransport(dim, base, dtype, seed=seed, **options)
    raise ValueError(f"transport must be one of {TRANSPORTS} or a Transport, got {transport!r}")


class DefensiveMixture:
    r"""q = (1 - lam) T#rho_b + lam (1/K) sum_k N(mu_k, Sigma_k): a transport mixed with one
    Gaussian per group of anchor walkers (defensive importance sampling, Hesterberg 1995).

    mu_k, Sigma_k are the mean and covariance of the anchors of group k over about the last
    half of the training rounds (shrunk towards the diagonal by s = 1 - n_k / 2d if n_k < 2d;
    shrinking a correlated field's covariance more inflates its stiff directions), Sigma_k
    then multiplied by ``scale``^2 (a scale > 1 reaches tails the anchors have not explored
    yet; radial_velocity's third mode needed 1.5), refitted every training round by
    :meth:`refit`; frozen with the transport. The density is
    evaluated as this mixture, so the independent MH move through q stays exact; since
    q >= lam N_k / K, every initial mode keeps proposal mass, and the importance weights
    rho*/q stay bounded where a Gaussian tail covers the target's.
    """

    def __init__(self, transport: Transport, lam: float, scale: float = 1.0):
        self.transport, self.lam, self.scale = transport, float(lam), float(scale)
        self.means: Tensor | None = None
        self.chol: Tensor | None = None
        self._sums: list | None = None

    def refit(self, groups: list[Tensor], memory: float = 0.0) -> None:
        """Add the anchors' positions of this round, one (n_k, dim) tensor per group, to
        moment sums that keep the fraction ``memory`` of the earlier sums, and refit the
        Gaussians from them."""
        if self._sums is None or len(self._sums) != len(groups):
            self._sums = [None] * len(groups)
        means, chols = [], []
        for k, x in enumerate(groups):
            new = (float(x.shape[0]), x.sum(0), x.T @ x)
            old = self._sums[k]
            if old is not None and memory > 0:
                new = tuple(memory * o + v for o, v in zip(old, new, strict=True))
            self._sums[k] = new
            n, s1, s2 = new
            d = x.shape[1]
            m = s1 / n
            c = (s2 - n * torch.outer(m, m)) / max(n - 1, 1)
            s = min(max(1 - n / (2 * d), 0.0), 1.0)  # towards the diagonal only if n < 2d
            c = (1 - s) * c + s * torch.diag(c.diagonal())
            c = c + 1e-8 * c.diagonal().mean().clamp(min=1e-12) * torch.eye(d, dtype=c.dtype)
            means.append(m)
            chols.append(self.scale * torch.linalg.cholesky(c))
        self.means, self.chol = torch.stack(means), torch.stack(chols)

    def component_log_prob(self, x: Tensor) -> Tensor:
        """log N(x; mu_k, Sigma_k), (K, n)."""
        assert self.means is not None and self.chol is not None
        d = x.shape[1]
        diff = (x[None] - self.means[:, None].to(x)).transpose(1, 2)  # (K, d, n)
        z = torch.linalg.solve_triangular(self.chol.to(x), diff, upper=False)
        log_det = self.chol.diagonal(dim1=1, dim2=2).log().sum(1).to(x)  # (K,)
        return -0.5 * z.square().sum(1) - log_det[:, None] - 0.5 * d * math.log(2 * math.pi)

    def _gauss_log_prob(self, x: Tensor) -> Tensor:
        lp = self.component_log_prob(x)
        return torch.logsumexp(lp, 0) - math.log(lp.shape[0])

    def log_prob(self, x: Tensor) -> Tensor:
        if self.means is not None and self.lam == 1:
            return self._gauss_log_prob(x)
        lq = self.transport.log_prob(x).to(x)
        if self.means is None or self.lam == 0:
            return lq
        return torch.logaddexp(
            math.log1p(-self.lam) + lq, math.log(self.lam) + self._gauss_log_prob(x)
        )

    def sample_with_log_prob(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        if self.means is None or self.lam == 0:
            return self.transport.sample_with_log_prob(n, generator)
        chol, means = self.chol, self.means
        if self.lam < 1:  # lam = 1: the Gaussians alone, the transport is not run
            x, _ = self.transport.sample_with_log_prob(n, generator)
            x = x.detach()
            chol, means = chol.to(x), means.to(x)
        gauss = torch.rand(n, generator=generator, dtype=torch.float64) < self.lam
        k = torch.randint(means.shape[0], (n,), generator=generator)
        eps = torch.randn(n, means.shape[1], generator=generator, dtype=torch.float64).to(means)
        y = means[k] + (chol[k] @ eps[:, :, None])[:, :, 0]
        x = y if self.lam == 1 else torch.where(gauss[:, None], y, x)
        return x, self.log_prob(x)

    def fit_step(self, x: Tensor, generator: torch.Generator) -> float:
        return self.transport.fit_step(x, generator)


def _rows(state: State, sl: slice) -> State:
    return State(
        state.position[sl], state.log_prob[sl], state.grad[sl], tuple(a[sl] for a in state.aux)
    )


def _join(a: State, b: State) -> State:
    return State(
        torch.cat([a.position, b.position]),
        torch.cat([a.log_prob, b.log_prob]),
        torch.cat([a.grad, b.grad]),
        tuple(torch.cat([u, v]) for u, v in zip(a.aux, b.aux, strict=True)),
    )


DEFAULT_CHAINS = 64


def _walkers(
    target: Any, chains: int | None, init: Tensor | None, dtype: Any, generator: torch.Generator
) -> tuple[Tensor, int]:
    """Walkers from ``init``: (chains, dim) as given; k < chains rows (the mode locations) are
    repeated in turn to fill ``chains``; rows of width 1 are broadcast over the dimensions.
    Also returns the number of groups: k in the second case (walker j starts at mode j % k),
    else 1."""
    if init is None:
        x = initial_positions(
            target, chains, DEFAULT_CHAINS if chains is None else chains, None, dtype, generator
        )
        return x, 1
    init = torch.as_tensor(init)
    if init.ndim == 2 and init.shape[1] == 1 and target.dim > 1:
        init = init.expand(-1, target.dim)
    if chains is None and init.ndim == 2 and init.shape[0] < DEFAULT_CHAINS:
        chains = DEFAULT_CHAINS  # a few mode locations: fill the default number of walkers
    groups = 1
    if init.ndim == 2 and chains is not None and 1 <= init.shape[0] < chains:
        groups = init.shape[0]
        init = init[torch.arange(chains) % init.shape[0]]
    return initial_positions(target, chains, 1, init, dtype, generator), groups


def train_transport(
    target: Any,
    init: Tensor | None = None,
    seed: int = 0,
    *,
    transport: str | Transport = "coupling",
    transport_options: dict | None = None,
    base: Any = None,
    chains: int | None = None,
    warmup: int = 200,
    local_steps: int = 5,
    train_steps: int = 5,
    batch_size: int = 256,
    buffer: int = 20,
    anchors: int | None = None,
    defensive: float = 0.0,
    defensive_scale: float = 1.0,
    max_rounds: int = 500,
    min_rounds: int = 50,
    plateau_window: int = 25,
    plateau_tol: float = 0.05,
    step_size: float | None = None,
    target_accept: float = 0.574,
    mass_matrix: str | Tensor = "diag",
    dtype: torch.dtype | None = None,
    progress: bool = False,
    generator: torch.Generator | None = None,
) -> TrainedTransport:
    r"""The training phase of flow-MCMC: MALA warm-up, then rounds of ``local_steps`` MALA
    moves, one global move through the current transport, and ``train_steps`` fitting steps
    on minibatches of the training data's last ``buffer`` rounds of positions.

    Training data (stratified anchors, the default): ``anchors`` extra walkers (default as many
    as the walkers) start as copies of the walkers' starting points, in turn, so that every
    initial mode holds the same number of them; they make the local MALA moves and global moves
    restricted to their own mode's basin (a proposal is open to an anchor of group k only if
    it is most likely under group k's Gaussian, fitted once to the anchors after the warm-up),
    and their positions are the transport's training data. The transport thus learns every
    initial mode with equal mass, whatever their weights, the anchors explore their modes
    faster than by MALA once the transport is good, and the walkers' global moves (exact MH)
    correct the weights. Training on the walkers themselves
    (``anchors=0``, the papers' scheme) collapses when a light mode holds few walkers: the
    global moves first carry them to the heavy mode, the flow then forgets the light mode and
    nothing brings walkers back (radial_velocity: weight 1.000 for a mode of weight 0.919).
    The anchors cost ``local_steps + 1`` evaluations each per round, and only during
    training; production runs on the walkers alone.

    ``defensive`` = lam > 0 mixes the transport with one Gaussian per initial mode fitted to
    its anchors (:class:`DefensiveMixture`): a second, explicit guarantee of coverage, and a
    good proposal where the modes are nearly Gaussian; lam = 0 (default) keeps the pure
    transport (a Gaussian in R^d is no proposal for, e.g., the particles on the torus, and
    needs n_k >> d anchor positions per mode). On phi4_1d (d = 100) lam = 0.8 raised the
    global acceptance from 0.02 to 0.20 (benchmarks/RESULTS_flow_mcmc.md).

    Stopping (the acceptance plateau): after ``min_rounds`` rounds, training stops at the
    first round where the mean global acceptance a_new over the last ``plateau_window``
    rounds exceeds that of the window before, a_old, by less than the fraction
    ``plateau_tol`` of it, a_new - a_old < plateau_tol max(a_old, 1e-3) (a relative test: a
    rise from 0.01 to 0.02 is no plateau); else at ``max_rounds``.
    See :func:`run_flow_mcmc` for the arguments.
    """
    warmup, local_steps = check_int("warmup", warmup, 0), check_int("local_steps", local_steps, 0)
    train_steps, batch_size = (
        check_int("train_steps", train_steps, 0),
        check_int("batch_size", batch_size),
    )
    buffer, max_rounds = check_int("buffer", buffer), check_int("max_rounds", max_rounds, 0)
    min_rounds, plateau_window = (
        check_int("min_rounds", min_rounds, 0),
        check_int("plateau_window", plateau_window),
    )
    target_accept = check_fraction("target_accept", target_accept)
    if anchors is not None:
        anchors = check_int("anchors", anchors, 0)
    if (
        isinstance(defensive, bool)
        or not isinstance(defensive, (int, float))
        or not (0 <= defensive <= 1)
    ):
        raise ValueError(f"defensive must be a number in [0, 1], got {defensive!r}")
    if isinstance(defensive_scale, bool) or not (
        isinstance(defensive_scale, (int, float)) and defensive_scale > 0
    ):
        raise ValueError(f"defensive_scale must be a positive number, got {defensive_scale!r}")
    if not isinstance(plateau_tol, (int, float)) or plateau_tol < 0:
        raise ValueError(f"plateau_tol must be a number >= 0, got {plateau_tol!r}")
    if step_size is not None and not (isinstance(step_size, (int, float)) and step_size > 0):
        raise ValueError(f"step_size must be a positive number or None, got {step_size!r}")
    if isinstance(mass_matrix, str) and mass_matrix not in MASS_MATRICES:
        raise ValueError(
            f"mass_matrix must be one of {MASS_MATRICES} or a tensor, got {mass_matrix!r}"
        )
    if transport_options is not None and not isinstance(transport_options, dict):
        raise ValueError(
            f"transport_options must be a dict, got {type(transport_options).__name__}"
        )
    base = target.base if base is None else base
    if not (callable(getattr(base, "sample", None)) and callable(getattr(base, "log_prob", None))):
        raise ValueError("base must have sample(n, generator) and log_prob(x)")
    generator = make_generator(seed) if generator is None else generator
    density = CountedDensity(target)
    x0, groups = _walkers(target, chains, init, dtype, generator)
    M = x0.shape[0]
    model = _make_transport(
        transport, target.dim, base, x0.dtype, dict(transport_options or {}), seed
    )
    A = (M if anchors is None else anchors) if max_rounds > 0 else 0
    if isinstance(model, DefensiveMixture):
        mixture = model
    elif defensive > 0:
        if A == 0 and max_rounds > 0:
            raise ValueError("defensive > 0 needs anchors > 0 (the Gaussians are fitted to them)")
        mixture = model = DefensiveMixture(model, defensive, defensive_scale)
    else:
        mixture = None
    # the anchors' basins: Gaussians fitted once, to the anchors after the warm-up, label the
    # proposals (most likely component); fixed, so that a group cannot drift to another mode
    labeller = DefensiveMixture(model, 0.0)
    anchor_group = torch.arange(A) % M % groups  # walker j starts at mode j % groups
    x_all = torch.cat([x0, x0[torch.arange(A) % M]]) if A else x0

    state = mala(density, 1.0).init(x_all)
    check_initial(state, density.name)
    bar = progress_bar(warmup + max_rounds, progress, "flow-mcmc training")
    adapted = window_adaptation(
        density,
        lambda eps, metric: mala(density, eps, metric),
        state,
        generator,
        warmup,
        target_accept,
        mass_matrix,
        step_size,
        callback=lambda i: bar.update(1),
    )
    kernel = mala(density, adapted.step_size, adapted.metric)
    state = adapted.state
    trace = [adapted.log_prob_trace.reshape(-1, M + A)[:, :M]]
    log_q = None

    def allow(x: Tensor) -> Tensor:
        """Walkers move anywhere; anchors only within their own mode's basin (the proposals
        most likely under their group's Gaussian), so each group explores its mode by the
        global moves too, but never leaves it."""
        ok = torch.ones(x.shape[0], dtype=torch.bool)
        if A and groups > 1:
            ok[M:] = labeller.component_log_prob(x[M:]).argmax(0) == anchor_group
        return ok

    history: list[Tensor] = []
    acc: list[float] = []
    losses: list[float] = []
    stopped_by, rounds = "max_rounds", 0
    for r in range(max_rounds):
        for _ in range(local_steps):
            state, _ = kernel.step(generator, state)
            trace.append(state.log_prob[None, :M])
        if A and not history:  # the anchors' Gaussians before the first global move
            start = [state.position[M:][anchor_group == g] for g in range(groups)]
            if groups > 1:
                labeller.refit(start)
            if mixture is not None:
                mixture.refit(start)
        if local_steps or log_q is None:
            log_q = model.log_prob(state.position).to(state.position)
        state, log_q, info = global_move(generator, state, log_q, model, density, allow)
        walkers = _rows(state, slice(0, M))
        trace.append(walkers.log_prob[None])
        acc.append(float(info.acceptance_rate[:M].mean()))
        data = state.position[M:] if A else walkers.position
        history = [*history[-(buffer - 1) :], data] if buffer > 1 else [data]
        pool = torch.cat(history)
        if mixture is not None and A:  # the anchors' moments over about the last half
            mixture.refit(
                [data[anchor_group == g] for g in range(groups)], memory=1 - 2 / (rounds + 3)
            )
        loss = 0.0
        for _ in range(train_steps):
            idx = torch.randint(
                pool.shape[0], (min(batch_size, pool.shape[0]),), generator=generator
            )
            loss += model.fit_step(pool[idx], generator) / train_steps
        losses.append(loss)
        rounds = r + 1
        bar.update(1)
        w = plateau_window
        if rounds >= max(min_rounds, 2 * w):
            new, old = sum(acc[-w:]) / w, sum(acc[-2 * w : -w]) / w
            if new - old < plateau_tol * max(old, 1e-3):
                stopped_by = "plateau"
                break
    bar.close()
    state = _rows(state, slice(0, M))
    return TrainedTransport(
        transport=model,
        state=state,
        kernel=kernel,
        step_size=adapted.step_size,
        metric=adapted.metric,
        density=density,
        acceptance_trace=torch.tensor(acc, dtype=torch.float64),
        loss_trace=torch.tensor(losses, dtype=torch.float64),
        log_prob_trace=torch.cat([t.reshape(-1, M) for t in trace]),
        rounds=rounds,
        stopped_by=stopped_by,
    )


# The options of run_flow_mcmc and run_is that go to train_transport unchanged.
_TRAIN_OPTIONS = (
    "transport",
    "transport_options",
    "base",
    "chains",
    "warmup",
    "local_steps",
    "train_steps",
    "batch_size",
    "buffer",
    "anchors",
    "defensive",
    "defensive_scale",
    "max_rounds",
    "min_rounds",
    "plateau_window",
    "plateau_tol",
    "step_size",
    "target_accept",
    "mass_matrix",
    "dtype",
)


def run_flow_mcmc(
    target: Any,
    n: int = 1000,
    seed: int = 0,
    init: Tensor | None = None,
    *,
    transport: str | Transport = "coupling",
    transport_options: dict | None = None,
    base: Any = None,
    chains: int | None = None,
    warmup: int = 200,
    local_steps: int = 5,
    train_steps: int = 5,
    batch_size: int = 256,
    buffer: int = 20,
    anchors: int | None = None,
    defensive: float = 0.0,
    defensive_scale: float = 1.0,
    max_rounds: int = 500,
    min_rounds: int = 50,
    plateau_window: int = 25,
    plateau_tol: float = 0.05,
    step_size: float | None = None,
    target_accept: float = 0.574,
    mass_matrix: str | Tensor = "diag",
    thin: int = 1,
    dtype: torch.dtype | None = None,
    progress: bool = False,
) -> SampleResult:
    r"""Flow-MCMC (Gabrie, Rotskoff & Vanden-Eijnden): MALA plus independent MH moves through a
    transport trained on the walkers, then frozen for production (see the module docstring).

    Every production iteration makes ``local_steps`` MALA moves and one global move
    (``local_steps + 1`` target evaluations per walker); ``thin`` iterations make a draw.

    Arguments:
        target: a :class:`~interpolants.targets.Target`.
        n: pooled production draws, ceil(n / chains) per chain.
        seed: seeds the run (walkers, moves, minibatches, the transport's initial weights).
        init: walker positions (chains, dim), or k < chains rows (the rough mode locations,
            repeated in turn), rows of width 1 broadcast over the dimensions; default draws
            from ``target.base``.
        transport: "coupling" (RealNVP by maximum likelihood, :mod:`interpolants.nn.realnvp`),
            "interpolant" (a velocity field by the interpolant loss, q by the ODE), or a
            :class:`Transport` (e.g. ``result.info["transport"]`` of an earlier run; it keeps
            training unless ``max_rounds=0``).
        transport_options: keyword options of :class:`CouplingTransport` (layers, width, lr)
            or :class:`InterpolantTransport` (width, depth, lr, ode_steps).
        base: rho_b (``sample``, differentiable ``log_prob``); default ``target.base``
            (e.g. the Brownian bridge of phi4_1d, the prior of radial_velocity).
        chains: walkers M (default 64, or init's rows when it has more; fewer rows are
            repeated to fill 64).
        warmup: MALA adaptation iterations before training (step size, preconditioner).
        local_steps: MALA moves between global moves.
        train_steps, batch_size, buffer: fitting steps per round, their minibatch, and how many
            recent rounds of training positions the minibatches come from.
        anchors: walkers that stay in their initial mode during training, started in turn at the
            walkers' starting points (equal numbers per initial mode); their positions are the
            training data, so the transport covers every initial mode whatever its weight
            (default: as many as ``chains``; 0 trains on the walkers, as in the papers). See
            :func:`train_transport`.
        defensive: lam in [0, 1]: propose from (1 - lam) T#rho_b + lam x (one Gaussian per
            initial mode, fitted to its anchors), :class:`DefensiveMixture`; default 0.
        defensive_scale: multiplies the Gaussians' standard deviations (> 0, default 1): a
            scale > 1 covers tails the anchors have not yet explored.
        max_rounds, min_rounds, plateau_window, plateau_tol: the training length and its
            stopping rule, see :func:`train_transport`.
        step_size, target_accept, mass_matrix: the MALA warm-up, as in
            :func:`~.api.run_mala` ("diag" by default: a dense covariance pooled over
            separated modes would mislead).
        thin: keep every ``thin``-th production iteration.
        dtype: walker dtype (default: init's, else the base's).
        progress: show progress bars.

    Returns:
        :class:`~.result.SampleResult`; ``acceptance_rate`` is the production global
        acceptance; ``info`` holds ``transport`` (the frozen transport),
        ``training_acceptance`` (per round), ``global_accepted`` (draws, chains),
        ``local_acceptance``, ``training_rounds``, ``stopped_by``, ``train_evaluations``.

    References:
        M. Gabrie, G. M. Rotskoff, E. Vanden-Eijnden, arXiv:2105.12603, arXiv:2107.08001.
    """
    options = {k: v for k, v in locals().items() if k in _TRAIN_OPTIONS}
    n, thin = check_int("n", n), check_int("thin", thin)
    generator = make_generator(seed)
    trained = train_transport(target, init, seed, progress=progress, generator=generator, **options)
    density, kernel, model, state = (
        trained.density,
        trained.kernel,
        trained.transport,
        trained.state,
    )
    train_evaluations = density.evaluations
    chains = state.position.shape[0]
    per_chain = math.ceil(n / chains)
    log_q = model.log_prob(state.position).to(state.position)
    draws, trace, accepted, glob, local = [], [], [], [], []
    bar = progress_bar(per_chain * thin, progress, "flow-mcmc production")
    for i in range(per_chain * thin):
        for _ in range(local_steps):
            state, info = kernel.step(generator, state)
            local.append(float(info.acceptance_rate.mean()))
        if local_steps:
            log_q = model.log_prob(state.position).to(state.position)
        state, log_q, info = global_move(generator, state, log_q, model, density)
        glob.append(float(info.acceptance_rate.mean()))
        trace.append(state.log_prob)
        if (i + 1) % thin == 0:
            draws.append(state.position)
            accepted.append(info.is_accepted)
        bar.update(1)
    bar.close()
    info: dict[str, Any] = {
        "target": density.name,
        "chains": chains,
        "draws_per_chain": per_chain,
        "thin": thin,
        "local_steps": local_steps,
        "transport": model,
        "transport_kind": transport if isinstance(transport, str) else type(transport).__name__,
        "step_size": trained.step_size,
        "inverse_mass_matrix": None
        if trained.metric is None
        else trained.metric.inverse_mass_matrix,
        "training_rounds": trained.rounds,
        "stopped_by": trained.stopped_by,
        "training_acceptance": trained.acceptance_trace,
        "training_loss": trained.loss_trace,
        "final_training_acceptance": float(trained.acceptance_trace[-5:].mean())
        if trained.rounds
        else None,
        "global_accepted": torch.stack(accepted),
        "global_acceptance_trace": torch.tensor(glob, dtype=torch.float64),
        "local_acceptance": sum(local) / len(local) if local else None,
        "train_evaluations": train_evaluations,
    }
    log_prob_trace = torch.cat([trained.log_prob_trace, torch.stack(trace)])
    return chain_result(
        torch.stack(draws), n, "flow-mcmc", density, sum(glob) / len(glob), log_prob_trace, info
    )


def run_is(
    target: Any,
    n: int = 1000,
    seed: int = 0,
    init: Tensor | None = None,
    *,
    transport: str | Transport = "coupling",
    transport_options: dict | None = None,
    base: Any = None,
    chains: int | None = None,
    warmup: int = 200,
    local_steps: int = 5,
    train_steps: int = 5,
    batch_size: int = 256,
    buffer: int = 20,
    anchors: int | None = None,
    defensive: float = 0.0,
    defensive_scale: float = 1.0,
    max_rounds: int = 500,
    min_rounds: int = 50,
    plateau_window: int = 25,
    plateau_tol: float = 0.05,
    step_size: float | None = None,
    target_accept: float = 0.574,
    mass_matrix: str | Tensor = "diag",
    batches: int = 1,
    dtype: torch.dtype | None = None,
    progress: bool = False,
) -> SampleResult:
    r"""Importance sampling through a transport trained by flow-MCMC (the talk's estimator):

        x_i = T(x_b,i), x_b,i ~ rho_b,   log w_i = log rho*(x_i) - log q(x_i),
        log Z_hat = log mean_i w_i,   ESS / n = (sum w)^2 / (n sum w^2),

    with the delta-method standard error of :func:`~.diagnostics.log_Z_from_weights`.
    The transport is trained as in :func:`run_flow_mcmc` (same options) unless a trained one
    is passed with ``max_rounds=0`` (then ``init`` only seeds the unused walkers). The draws
    are made in ``batches`` pieces (memory). ``evaluations`` counts the training's target
    evaluations too (``info["train_evaluations"]``).

    References:
        M. Gabrie, G. M. Rotskoff, E. Vanden-Eijnden, arXiv:2105.12603;
        A. Kong, U. Chicago TR 348 (1992) (the ESS).
    """
    options = {k: v for k, v in locals().items() if k in _TRAIN_OPTIONS}
    n, batches = check_int("n", n), check_int("batches", batches)
    generator = make_generator(seed)
    trained = train_transport(target, init, seed, progress=progress, generator=generator, **options)
    density, model = trained.density, trained.transport
    train_evaluations = density.evaluations
    xs, lws = [], []
    sizes = [n // batches + (1 if b < n % batches else 0) for b in range(batches)]
    for size in (s for s in sizes if s > 0):
        x, log_q = model.sample_with_log_prob(size, generator)
        x = x.to(trained.state.position)
        with torch.no_grad():
            lp = target.log_prob(x).detach().to(x)
        density.evaluations += size  # log_prob only, counted as one evaluation per draw
        xs.append(x)
        lws.append(torch.where(torch.isfinite(log_q), lp - log_q.to(x), -math.inf))
    x, lw = torch.cat(xs), torch.cat(lws)
    log_z, se = log_Z_from_weights(lw)
    ess = float(ess_of_weights(lw))
    return SampleResult(
        samples=x,
        method="is",
        log_weights=lw,
        log_Z=log_z,
        log_Z_stderr=se,
        ess=ess,
        evaluations=density.evaluations,
        info={
            "transport": model,
            "transport_kind": transport if isinstance(transport, str) else type(transport).__name__,
            "training_rounds": trained.rounds,
            "stopped_by": trained.stopped_by,
            "training_acceptance": trained.acceptance_trace,
            "final_training_acceptance": float(trained.acceptance_trace[-5:].mean())
            if trained.rounds
            else None,
            "train_evaluations": train_evaluations,
        },
    )


register_method("flow-mcmc", run_flow_mcmc)
register_method("is", run_is)
