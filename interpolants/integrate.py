r"""ODE and SDE solvers, divergences and the change-of-variables likelihood.

Solvers are data: a Butcher tableau with its declared order, run by one explicit Runge-Kutta
stepper, fixed-step or adaptive (embedded error estimate, step rejection). Fields are called
as ``field(t, x)`` with ``t`` a (batch,) tensor.

- ODE: dX = b(t, X) dt, forward or backward in time ("euler", "heun", "rk4", "dopri5").
- SDE: dX = f(t, X) dt + sqrt(2 eps(t)) dW, Euler-Maruyama or the stochastic Heun step.
- Likelihood: log rho_1(X_1) = log rho_0(X_0) - int_0^1 div b(t, X_t) dt (arXiv 2209.15571,
  2303.08797), the divergence exact (one vector-Jacobian product per dimension, batched) or by
  Hutchinson's estimator v^T (db/dx) v with E[v v^T] = I (FFJORD, arXiv 1810.01367).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import torch
from torch import Tensor

from .checks import positive_int
from .divergence import DIVERGENCES, divergence, hutchinson_probe
from .progress import progress_bar

__all__ = [
    "DOPRI5",
    "EULER",
    "HEUN",
    "RK4",
    "SOLVERS",
    "Solution",
    "Tableau",
    "checked_times",
    "divergence",
    "hutchinson_probe",
    "odeint",
    "odeint_with_divergence",
    "rk_step",
    "sdeint",
]

Field = Callable[[Tensor, Tensor], Tensor]
Diffusion = float | Callable[[Tensor], Tensor | float]


@dataclass(frozen=True)
class Tableau:
    """An explicit Runge-Kutta method: nodes c, matrix a (lower rows), weights b, its order.

    ``b_err`` holds b - b_hat of an embedded lower-order method (adaptive solvers only).
    """

    name: str
    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    order: int
    b_err: tuple[float, ...] | None = None

    @property
    def adaptive(self) -> bool:
        return self.b_err is not None


EULER = Tableau("euler", (0.0,), ((),), (1.0,), order=1)
HEUN = Tableau("heun", (0.0, 1.0), ((), (1.0,)), (0.5, 0.5), order=2)
RK4 = Tableau(
    "rk4",
    (0.0, 0.5, 0.5, 1.0),
    ((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
    (1 / 6, 1 / 3, 1 / 3, 1 / 6),
    order=4,
)
_DP_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_DP_BHAT = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)
DOPRI5 = Tableau(
    "dopri5",
    (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0),
    (
        (),
        (1 / 5,),
        (3 / 40, 9 / 40),
        (44 / 45, -56 / 15, 32 / 9),
        (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
        (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
        _DP_B[:6],
    ),
    _DP_B,
    order=5,
    b_err=tuple(b - bh for b, bh in zip(_DP_B, _DP_BHAT, strict=True)),
)
"""Dormand & Prince (1980) 5(4), first-same-as-last: the 7th stage is the next step's 1st."""

SOLVERS: dict[str, Tableau] = {t.name: t for t in (EULER, HEUN, RK4, DOPRI5)}


@dataclass
class Solution:
    """The end state of an integration and what it cost.

    ``nfe``: field evaluations; ``steps``: accepted steps; ``rejected``: rejected steps
    (adaptive solvers); ``divergence_integral``: int_{t0}^{t1} div b(t, X_t) dt, (batch,),
    when the divergence was integrated along.
    """

    x: Tensor
    nfe: int
    steps: int
    rejected: int = 0
    divergence_integral: Tensor | None = None


def get_tableau(solver: str | Tableau) -> Tableau:
    if isinstance(solver, Tableau):
        return solver
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {sorted(SOLVERS)}, got {solver!r}")
    return SOLVERS[solver]


def _lincomb(x: Tensor, h: float, coeffs: tuple[float, ...], ks: list[Tensor]) -> Tensor:
    """x + h sum_j coeffs_j k_j, skipping zero coefficients."""
    y = x
    for cj, kj in zip(coeffs, ks, strict=False):
        if cj != 0.0:
            y = torch.add(y, kj, alpha=h * cj)
    return y


def rk_step(
    field: Field,
    t: float,
    x: Tensor,
    h: float,
    tab: Tableau,
    k1: Tensor | None = None,
    t_next: float | None = None,
) -> tuple[Tensor, Tensor | None, list[Tensor]]:
    """One explicit Runge-Kutta step: (x_{n+1}, error estimate or None, stage slopes).

    ``k1`` reuses a known slope at (t, x) (first-same-as-last); the stage count is then one
    evaluation fewer. ``t_next`` is the exact end time of the step, used for the stages with
    c = 1 so that no rounding carries a stage time past the end of the interval.
    """
    n = x.shape[0]
    ks: list[Tensor] = []
    for i, (ci, ai) in enumerate(zip(tab.c, tab.a, strict=True)):
        if i == 0 and k1 is not None:
            ks.append(k1)
            continue
        tc = t_next if (ci == 1.0 and t_next is not None) else t + ci * h
        ti = torch.full((n,), tc, dtype=x.dtype, device=x.device)
        ks.append(field(ti, _lincomb(x, h, ai, ks)))
    x_new = _lincomb(x, h, tab.b, ks)
    err = _lincomb(torch.zeros_like(x), h, tab.b_err, ks) if tab.b_err is not None else None
    return x_new, err, ks


def _check_output(k: Tensor, x: Tensor) -> None:
    if not isinstance(k, Tensor) or k.shape != x.shape:
        shape = tuple(k.shape) if isinstance(k, Tensor) else type(k).__name__
        raise ValueError(f"the field returned shape {shape} for x of shape {tuple(x.shape)}")


def time_grid(t0: float, t1: float, steps: int) -> list[float]:
    """steps + 1 uniform times from t0 to t1, both end points exact."""
    positive_int("steps", steps)
    return [t0 + (t1 - t0) * i / steps for i in range(steps)] + [t1]


def checked_times(times: Sequence[float] | Tensor, t0: float, t1: float) -> list[float]:
    """``times`` as a list of floats from t0 to t1 (at least two entries, strictly monotone
    in the direction of t1), else a ValueError naming ``times``."""
    grid = [float(v) for v in (times.tolist() if isinstance(times, Tensor) else times)]
    if len(grid) < 2 or grid[0] != t0 or grid[-1] != t1:
        raise ValueError(f"times must run from {t0:g} to {t1:g} (at least two entries), got {grid}")
    sign = 1.0 if t1 >= t0 else -1.0
    if any(sign * (b - a) <= 0 for a, b in pairwise(grid)):
        order = "increasing" if sign > 0 else "decreasing"
        raise ValueError(f"times must be strictly {order}, got {grid}")
    return grid


def _steps(grid: list[float], progress: bool, desc: str) -> Iterable[tuple[float, float]]:
    """Successive (t, t_next) pairs of the grid, behind a progress bar when asked."""
    pairs = pairwise(grid)
    if not progress:
        return pairs
    return progress_bar(len(grid) - 1, desc=desc, iterable=pairs, unit="step")


def _fixed(
    field: Field, x: Tensor, t0: float, t1: float, steps: int, tab: Tableau, progress: bool = False
) -> Solution:
    grid = time_grid(t0, t1, steps)
    for i, (ta, tb) in enumerate(_steps(grid, progress, tab.name)):
        x, _, ks = rk_step(field, ta, x, tb - ta, tab, t_next=tb)
        if i == 0:
            _check_output(ks[0], x)
    return Solution(x=x, nfe=steps * len(tab.c), steps=steps)


def _rms(u: Tensor) -> float:
    return float(u.square().mean().sqrt())


def _worst_rms(u: Tensor) -> float:
    """max over the batch of each sample's RMS: the step is judged by its worst sample."""
    return float(u.flatten(1).square().mean(1).sqrt().max())


def _adaptive(
    field: Field,
    x: Tensor,
    t0: float,
    t1: float,
    tab: Tableau,
    atol: float,
    rtol: float,
    max_steps: int,
) -> Solution:
    """Step-size control with the embedded error (Hairer, Norsett & Wanner, II.4).

    The error norm is each sample's RMS of err / (atol + rtol |x|), maximised over the batch,
    so that every sample meets the tolerance whatever the batch size; the step factor is
    0.9 e^(-1/q), q the order of the embedded pair's lower member plus one, within [0.2, 10].
    """
    if atol <= 0 or rtol < 0:
        raise ValueError(
            f"atol must be positive and rtol non-negative, got atol={atol}, rtol={rtol}"
        )
    direction = 1.0 if t1 > t0 else -1.0
    n, q = x.shape[0], tab.order

    def at(t: float) -> Tensor:
        return torch.full((n,), t, dtype=x.dtype, device=x.device)

    k1 = field(at(t0), x)
    _check_output(k1, x)
    # initial step (Hairer, Norsett & Wanner, II.4, algorithm for h0)
    scale = atol + rtol * x.abs()
    d0, d1 = _rms(x / scale), _rms(k1 / scale)
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    h0 = min(h0, abs(t1 - t0))
    k_probe = field(at(t0 + direction * h0), x + direction * h0 * k1)
    d2 = _rms((k_probe - k1) / scale) / h0
    h1 = (0.01 / max(d1, d2)) ** (1 / (q + 1)) if max(d1, d2) > 1e-15 else max(1e-6, h0 * 1e-3)
    h = min(100 * h0, h1)
    nfe, accepted, rejected, t = 2, 0, 0, t0
    while t != t1:
        if accepted + rejected >= max_steps:
            raise RuntimeError(
                f"dopri5 took more than max_steps={max_steps} steps at t={t:.6g}; "
                "loosen atol/rtol or raise max_steps"
            )
        last = h >= abs(t1 - t)
        h = min(h, abs(t1 - t))
        t_next = t1 if last else t + direction * h
        x_new, err, ks = rk_step(field, t, x, direction * h, tab, k1=k1, t_next=t_next)
        nfe += len(tab.c) - 1
        scale = atol + rtol * torch.maximum(x.abs(), x_new.abs())
        e = _worst_rms(err / scale)  # type: ignore[operator]
        if not math.isfinite(e):
            raise FloatingPointError(f"non-finite state or field at t={t:.6g} in dopri5")
        if e <= 1.0:
            t, x, k1 = t_next, x_new, ks[-1]
            accepted += 1
            factor = 10.0 if e == 0 else min(10.0, 0.9 * e ** (-1 / q))
        else:
            rejected += 1
            factor = max(0.2, 0.9 * e ** (-1 / q))
        h *= factor
    return Solution(x=x, nfe=nfe, steps=accepted, rejected=rejected)


def odeint(
    field: Field,
    x: Tensor,
    t0: float = 0.0,
    t1: float = 1.0,
    *,
    steps: int = 100,
    solver: str | Tableau = "heun",
    atol: float = 1e-5,
    rtol: float = 1e-5,
    max_steps: int = 100_000,
    progress: bool = False,
) -> Solution:
    r"""Solve dX/dt = field(t, X) from X(t0) = x to t1 (t1 < t0 runs backward in time).

    Arguments:
        field: callable (t of shape (batch,), x) -> dx/dt shaped like x.
        x: (batch, *event) initial state.
        steps: uniform steps of the fixed-step solvers (ignored by "dopri5").
        solver: "euler" (order 1), "heun" (2), "rk4" (4) or "dopri5" (5(4), adaptive).
        atol, rtol: tolerances of the adaptive solver: each sample's RMS of the scaled error.
        progress: show a progress bar over the fixed steps.

    Returns:
        A :class:`Solution` with the end state and the number of field evaluations.

    Example:
        >>> sol = odeint(lambda t, x: -x, torch.ones(4, 1), steps=10, solver="rk4")
        >>> round(float(sol.x[0]), 5), sol.nfe
        (0.36788, 40)
    """
    tab = get_tableau(solver)
    t0, t1 = float(t0), float(t1)
    if t0 == t1:
        return Solution(x=x, nfe=0, steps=0)
    if tab.adaptive:
        return _adaptive(field, x, t0, t1, tab, atol, rtol, max_steps)
    return _fixed(field, x, t0, t1, steps, tab, progress)


def _diffusion_fn(diffusion: Diffusion) -> Callable[[float], float]:
    if callable(diffusion):

        def eps(t: float) -> float:
            v = float(diffusion(torch.tensor(t, dtype=torch.float64)))
            if not v >= 0:
                raise ValueError(f"diffusion(t) must be non-negative, got {v} at t={t:.4g}")
            return v

        return eps
    if not float(diffusion) >= 0:
        raise ValueError(f"diffusion must be non-negative, got {diffusion!r}")
    return lambda t: float(diffusion)


SDE_METHODS = ("euler", "heun")


def sdeint(
    drift: Field,
    diffusion: Diffusion,
    x: Tensor,
    t0: float = 0.0,
    t1: float = 1.0,
    *,
    steps: int = 100,
    method: str = "heun",
    generator: torch.Generator | None = None,
    progress: bool = False,
    times: Sequence[float] | Tensor | None = None,
) -> Solution:
    r"""Solve dX = f(t, X) dt + sqrt(2 eps(t)) dW from X(t0) = x to t1 (either direction).

    With h = (t1 - t0) / steps (or the gaps between consecutive ``times``, a grid from t0 to
    t1 that replaces the uniform one) and dW ~ N(0, |h| I):

    - "euler" (Euler-Maruyama): X' = X + h f(t, X) + sqrt(2 eps(t)) dW;
    - "heun" (stochastic Heun, additive noise): predictor X~ = X + h f(t, X) + g(t) dW, then
      X' = X + h (f(t, X) + f(t + h, X~)) / 2 + (g(t) + g(t + h)) dW / 2, g = sqrt(2 eps).
      The last step is a plain Euler-Maruyama step so the drift is never evaluated at t1,
      where a score may be singular (as in Karras et al., arXiv 2206.00364, Alg. 2).

    Arguments:
        drift: callable (t of shape (batch,), x) -> tensor like x.
        diffusion: eps >= 0, a float or a callable of t (a 0-dim tensor).
    """
    if method not in SDE_METHODS:
        raise ValueError(f"method must be one of {SDE_METHODS}, got {method!r}")
    eps = _diffusion_fn(diffusion)
    if times is None:
        grid = time_grid(float(t0), float(t1), steps)
    else:
        grid = checked_times(times, float(t0), float(t1))
        steps = len(grid) - 1
    n, nfe = x.shape[0], 0

    def at(t: float) -> Tensor:
        return torch.full((n,), t, dtype=x.dtype, device=x.device)

    for i, (t, t_next) in enumerate(_steps(grid, progress, f"sde {method}")):
        h, sqrt_h = t_next - t, math.sqrt(abs(t_next - t))
        dw = sqrt_h * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        f0 = drift(at(t), x)
        if i == 0:
            _check_output(f0, x)
        g0 = math.sqrt(2 * eps(t))
        pred = x + h * f0 + g0 * dw
        nfe += 1
        if method == "euler" or i == steps - 1:
            x = pred
            continue
        f1 = drift(at(t_next), pred)
        g1 = math.sqrt(2 * eps(t_next))
        x = x + (0.5 * h) * (f0 + f1) + (0.5 * (g0 + g1)) * dw
        nfe += 1
    return Solution(x=x, nfe=nfe, steps=steps)


# --- divergence and likelihood --------------------------------------------------------


def odeint_with_divergence(
    field: Field,
    x: Tensor,
    t0: float = 0.0,
    t1: float = 1.0,
    *,
    steps: int = 100,
    solver: str | Tableau = "heun",
    divergence_method: str = "exact",
    probe: str = "rademacher",
    generator: torch.Generator | None = None,
    create_graph: bool = False,
    atol: float = 1e-5,
    rtol: float = 1e-5,
) -> Solution:
    r"""Solve dX/dt = b(t, X) together with dL/dt = div b(t, X), L(t0) = 0.

    Returns the end state and L(t1) = int_{t0}^{t1} div b(t, X_t) dt in ``divergence_integral``;
    then log rho_{t1}(X_{t1}) = log rho_{t0}(X_{t0}) - L(t1). The Hutchinson probe is drawn once
    and held fixed along the path, so each sample's estimate is unbiased.
    """
    shape, n = x.shape, x.shape[0]
    if not create_graph:  # no gradient flows to x: say so rather than return a wrong one
        x = x.detach()
    noise = hutchinson_probe(x, probe, generator) if divergence_method == "hutchinson" else None
    if divergence_method not in DIVERGENCES:
        raise ValueError(f"divergence must be one of {DIVERGENCES}, got {divergence_method!r}")

    def augmented(t: Tensor, y: Tensor) -> Tensor:
        xt = y[:, :-1].reshape(shape)
        out, div = divergence(field, t, xt, divergence_method, noise, create_graph)
        return torch.cat([out.reshape(n, -1), div[:, None]], dim=1)

    y0 = torch.cat([x.reshape(n, -1), x.new_zeros(n, 1)], dim=1)
    sol = odeint(augmented, y0, t0, t1, steps=steps, solver=solver, atol=atol, rtol=rtol)
    sol.x, sol.divergence_integral = sol.x[:, :-1].reshape(shape), sol.x[:, -1]
    return sol
