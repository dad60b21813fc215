r"""The escort: a learned transport T from target a towards target b for escorted free-energy
estimates (FEAT, He, Du, Vargas, Wang, ..., Vanden-Eijnden, arXiv:2504.11516; escorted
Jarzynski, Vaikuntanathan & Jarzynski, PRL 100 (2008) 190601, arXiv:0804.3055).

The velocity v_t(x) is fitted by the stochastic-interpolant (flow-matching) loss between
independent draws x_0 ~ a, x_1 ~ b (Albergo & Vanden-Eijnden, arXiv:2209.15571;
Albergo, Boffi & Vanden-Eijnden, arXiv:2303.08797):

    L(v) = E_{t ~ U(0,1), x_0, x_1} |v_t(x_t) - dx_t/dt|^2,

which needs draws of both ends and no target evaluation. The default path is the
trigonometric one about the pooled mean mu of the draws,

    x_t = mu + cos(pi t / 2) (x_0 - mu) + sin(pi t / 2) (x_1 - mu),

which keeps the spread: when a and b agree in mean and covariance its velocity vanishes
(x_0, x_1 independent), so that for nearby targets (two couplings, two temperatures) the
escort starts near the identity and learns only their difference; path="linear" is
x_t = (1 - t) x_0 + t x_1, whose velocity is not zero even for a = b. T is K Heun steps of the ODE
dx/dt = v_t(x), and log |det grad T| the exact log-determinant of those discrete steps
(:func:`interpolants.divergence.heun_step`), so the escorted work below is exact for the map
that is used, whatever the quality of the fit; only its variance depends on the fit. The
reverse direction applies the exact inverse of the same discrete map (each Heun step inverted
by fixed-point iteration), so forward and reverse works satisfy Crooks' theorem for one map
and Bennett's acceptance ratio combines them (FEAT's escorted BAR).

Before the flow, by default, an affine map x -> mu_b + L_b L_a^{-1} (x - mu_a) that matches
the draws' means and covariances (L the Cholesky factors of covariances shrunk towards their
diagonals by d / (n + d); with few draws, n < 10 d, the diagonals alone); the flow is then
fitted between the mapped draws of a and the draws of b, and learns only what the first two
moments miss (for Gaussians: nothing). Its log-determinant is the constant
log |det L_b| - log |det L_a|. On a lattice the default is instead one monotone map of
every site fitted to the pooled site values (:class:`Quantile`: quantile matching,
F_b^{-1} o F_a, piecewise linear).

For fields on an L x L periodic lattice (phi^4) the velocity is instead a small
translation-equivariant convolutional network (:class:`~interpolants.nn.LatticeDrift`, one
circular 3 x 3 convolution by default): it shares its weights over the L^2 sites, so a few
hundred draws per end fit it, where a dense MLP in L^2 dimensions does not beat the identity.

On a torus (targets whose base is the uniform density on [0, 1)^d, the particles), the field
sees x through sin(2 pi x), cos(2 pi x): a periodic velocity gives a map that commutes with
integer shifts, a diffeomorphism of the torus, so that Z is kept over one cell.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ...divergence import heun_step
from ...nn.drifts import LatticeDrift
from ...nn.embedding import TimeEmbedding
from ...nn.mlp import mlp

__all__ = [
    "PATHS",
    "Affine",
    "EscortField",
    "HeunTransport",
    "Quantile",
    "fit_escort",
    "interpolate",
]

INVERSE_TOL = 1e-9  # fixed-point iterations of an inverse Heun step stop below this change
INVERSE_ITERATIONS = 200


class EscortField(nn.Module):
    r"""v_t(x) = s * MLP([phi((x - mu) / s), e(t)]), mu and s the pooled mean and standard
    deviation of the training draws (per coordinate), phi the identity, or on a torus
    phi(x) = [sin 2 pi x, cos 2 pi x] (then mu = 0, s = 1)."""

    def __init__(self, dim: int, width: int, depth: int, periodic: bool, mean: Tensor,
                 scale: Tensor):  # fmt: skip
        super().__init__()
        self.periodic = periodic
        self.embed = TimeEmbedding(8)
        features = 2 * dim if periodic else dim
        self.net = mlp(features + self.embed.dim, dim, width, depth, zero_last=True)
        self.register_buffer("mean", mean)
        self.register_buffer("scale", scale)

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        t = t.to(x.dtype).expand(x.shape[0]) if t.ndim == 0 else t.to(x.dtype)
        if self.periodic:
            arg = 2 * math.pi * x
            z = torch.cat([arg.sin(), arg.cos()], 1)
        else:
            z = (x - self.mean) / self.scale
        return self.scale * self.net(torch.cat([z, self.embed(t)], 1))


PATHS = ("trig", "linear")


def interpolate(
    path: str, t: Tensor, x0: Tensor, x1: Tensor, mean: Tensor
) -> tuple[Tensor, Tensor]:
    """(x_t, dx_t/dt) of ``path`` ("trig" about ``mean``, or "linear"), t of shape (n,)."""
    if path == "linear":
        return x0 + t[:, None] * (x1 - x0), x1 - x0
    theta = 0.5 * math.pi * t[:, None]
    c, s = theta.cos(), theta.sin()
    return mean + c * (x0 - mean) + s * (x1 - mean), 0.5 * math.pi * (
        c * (x1 - mean) - s * (x0 - mean)
    )


def fit_escort(
    x0: Tensor, x1: Tensor, *, steps: int, batch_size: int, lr: float, width: int, depth: int,
    periodic: bool, generator: torch.Generator, path: str = "trig", lattice: int | None = None,
) -> tuple[nn.Module, list[float]]:  # fmt: skip
    """Fit :class:`EscortField` (or, for fields on an L x L torus, ``lattice`` = L, the
    translation-equivariant :class:`~interpolants.nn.LatticeDrift`: ``depth`` circular 3 x 3
    convolutions of ``width`` channels, local, so its exact Jacobians take few VJPs) by the
    interpolant loss of the module docstring on draws x0 of a and x1 of b (Adam,
    cosine-decayed learning rate, random pairs in every batch; float64). On a torus the draws
    are read modulo 1 and x_1 is taken as the image nearest x_0 (the linear path). Returns the
    field and its loss every 100 steps."""
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    x0, x1 = x0.detach().double(), x1.detach().double()
    if periodic:
        x0, x1, path = x0.remainder(1.0), x1.remainder(1.0), "linear"
    pooled = torch.cat([x0, x1])
    mean, scale = pooled.mean(0), pooled.std(0).clamp_min(1e-6)
    pooled_mean = mean
    if periodic:
        mean, scale = torch.zeros_like(mean), torch.ones_like(scale)
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # the network's initial weights
        field: nn.Module = (
            EscortField(x0.shape[1], width, depth, periodic, mean, scale)
            if lattice is None
            else LatticeDrift(lattice, float(scale.mean()), width=width, depth=depth, hop=False)
        ).double()
    opt = torch.optim.Adam(field.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    losses, running = [], 0.0
    with torch.enable_grad():
        for k in range(steps):
            i = torch.randint(x0.shape[0], (batch_size,), generator=generator)
            j = torch.randint(x1.shape[0], (batch_size,), generator=generator)
            t = torch.rand(batch_size, generator=generator, dtype=torch.float64)
            a, b = x0[i], x1[j]
            if periodic:  # the nearest image of b
                b = a + (b - a + 0.5).remainder(1.0) - 0.5
            xt, dxt = interpolate(path, t, a, b, pooled_mean)
            loss = (field(t, xt) - dxt).square().sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            running += float(loss.detach())
            if (k + 1) % 100 == 0:
                losses.append(running / 100)
                running = 0.0
    field.requires_grad_(False)
    return field, losses


class Affine:
    """x -> shift + matrix @ x and its inverse, with the constant log |det matrix|."""

    def __init__(self, matrix: Tensor, shift: Tensor):
        self.matrix, self.shift = matrix.double(), shift.double()
        self.inverse_matrix = torch.linalg.inv(self.matrix)
        self.logdet = float(torch.linalg.slogdet(self.matrix)[1])

    @classmethod
    def matching(cls, x0: Tensor, x1: Tensor, kind: str = "dense") -> Affine:
        """The map that takes the mean and covariance of x0 to those of x1 (module
        docstring); ``kind`` "diag": the variances only (a scaling per coordinate);
        "scalar": the mean and variance over all coordinates (one scale, for lattices)."""

        if kind == "scalar":  # one scale and one shift for all coordinates (lattices)
            ratio = x1.double().std() / x0.double().std()
            d = x0.shape[1]
            matrix = ratio * torch.eye(d, dtype=torch.float64)
            shift = (x1.double().mean() - ratio * x0.double().mean()).expand(d)
            return cls(matrix, shift)

        def factor(x: Tensor) -> Tensor:
            n, d = x.shape
            cov = torch.cov(x.double().T).reshape(d, d)
            shrink = 1.0 if kind == "diag" else d / (n + d)
            cov = (1 - shrink) * cov + shrink * torch.diag(cov.diagonal())
            eye = torch.eye(d, dtype=torch.float64)
            return torch.linalg.cholesky(cov + 1e-10 * cov.diagonal().mean() * eye)

        la, lb = factor(x0), factor(x1)
        matrix = lb @ torch.linalg.inv(la)
        shift = x1.double().mean(0) - x0.double().mean(0) @ matrix.T
        return cls(matrix, shift)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(A x + c, log |det A|) per row."""
        return x @ self.matrix.T + self.shift, torch.full_like(x[:, 0], self.logdet)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return (y - self.shift) @ self.inverse_matrix.T, torch.full_like(y[:, 0], -self.logdet)


class Quantile:
    r"""One monotone map g of every coordinate, g = F_b^{-1} o F_a on the pooled coordinates of
    the draws (every site of a lattice has the same law): piecewise linear through the
    ``knots`` quantiles of a and of b (levels 0.5 / K ... 1 - 0.5 / K), extended linearly
    beyond the end knots. log |det grad| = sum_i log g'(x_i), g' the slope of x_i's
    segment; the inverse goes through the same knots the other way (exact)."""

    def __init__(self, knots_a: Tensor, knots_b: Tensor):
        self.knots_a, self.knots_b = knots_a.double(), knots_b.double()

    @classmethod
    def matching(cls, x0: Tensor, x1: Tensor, knots: int = 64) -> Quantile:
        levels = (torch.arange(knots, dtype=torch.float64) + 0.5) / knots
        qa = torch.quantile(x0.double().flatten(), levels)
        qb = torch.quantile(x1.double().flatten(), levels)
        # strictly increasing knots: ties (atoms) spread by a hair
        tiny = 1e-9 * (1.0 + torch.arange(knots, dtype=torch.float64))
        return cls(torch.cummax(qa, 0).values + tiny, torch.cummax(qb, 0).values + tiny)

    @staticmethod
    def _through(x: Tensor, src: Tensor, dst: Tensor) -> tuple[Tensor, Tensor]:
        i = torch.searchsorted(src, x.contiguous()).clamp(1, src.numel() - 1)
        slope = (dst[i] - dst[i - 1]) / (src[i] - src[i - 1])
        return dst[i - 1] + slope * (x - src[i - 1]), slope.log().sum(1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._through(x, self.knots_a, self.knots_b)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return self._through(y, self.knots_b, self.knots_a)


class HeunTransport:
    r"""The annealing engine's transport (t0, t1, x) -> (T x, log |det grad T|) for one level
    from t0 = 0 to t1 = 1 (or back, t0 = 1 to t1 = 0): ``steps`` Heun steps of the ODE
    dx/dt = field(t, x) after the ``premap`` (:class:`Affine`, :class:`Quantile` or None),
    forwards with their exact log-determinants, backwards by inverting the same steps
    (fixed-point iteration; a walker whose inversion does not converge gets log det = -inf,
    weight 0, counted in ``failed``). Computed in float64."""

    def __init__(
        self, field: Callable[[Tensor, Tensor], Tensor], steps: int,
        premap: Affine | Quantile | None = None,
    ):  # fmt: skip
        self.field, self.steps, self.failed, self.premap = field, steps, 0, premap
        self.grid = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64).tolist()
        self.generator = torch.Generator().manual_seed(0)  # unused: exact log-determinants

    def _step(self, t0: float, t1: float, x: Tensor) -> tuple[Tensor, Tensor]:
        return heun_step(self.field, t0, t1, x, True, 1, self.generator)

    def _inverse_step(self, t0: float, t1: float, y: Tensor) -> tuple[Tensor, Tensor]:
        """x with Heun(t0 -> t1)(x) = y, and log |det grad| of the inverse (= -that of the step)."""
        h = t1 - t0
        tt0 = torch.tensor(t0, dtype=y.dtype)
        tt1 = torch.tensor(t1, dtype=y.dtype)
        x = y - h * self.field(tt1, y)
        for _ in range(INVERSE_ITERATIONS):
            k1 = self.field(tt0, x)
            new = y - 0.5 * h * (k1 + self.field(tt1, x + h * k1))
            change = float((new - x).abs().max()) if x.numel() else 0.0
            x = new
            if change < INVERSE_TOL:
                break
        forward, logdet = self._step(t0, t1, x)
        ok = (forward - y).abs().amax(1) < 1e3 * INVERSE_TOL + 1e-9 * y.abs().amax(1)
        self.failed += int((~ok).sum())
        return x, torch.where(ok, -logdet, torch.full_like(logdet, -math.inf))

    def __call__(self, t0: float, t1: float, x: Tensor) -> tuple[Tensor, Tensor]:
        y = x.double()
        total = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
        with torch.no_grad():
            if t1 > t0:
                if self.premap is not None:
                    y, logdet = self.premap.forward(y)
                    total = total + logdet
                for a, b in zip(self.grid[:-1], self.grid[1:], strict=True):
                    y, logdet = self._step(a, b, y)
                    total = total + logdet
            else:
                for a, b in zip(self.grid[-2::-1], self.grid[:0:-1], strict=True):
                    y, logdet = self._inverse_step(a, b, y)
                    total = total + logdet
                if self.premap is not None:
                    y, logdet = self.premap.inverse(y)
                    total = total + logdet
        return y.to(x.dtype), total
