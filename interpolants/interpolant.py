r"""Stochastic interpolants x_t = alpha(t) x0 + beta(t) x1 + gamma(t) z.

Boundary conditions alpha(0) = beta(1) = 1, alpha(1) = beta(0) = 0, gamma(0) = gamma(1) = 0,
z ~ N(0, I) independent of (x0, x1). References: Albergo & Vanden-Eijnden, "Building
normalizing flows with stochastic interpolants" (arXiv 2209.15571); Albergo, Boffi &
Vanden-Eijnden, "Stochastic interpolants: a unifying framework for flows and diffusions"
(arXiv 2303.08797).

Each coefficient is a :class:`Schedule`: its value, its time derivative and ``half_dsq``,
(1/2) d/dt f(t)^2 = f f'. The last stays finite where f' does not (gamma = sqrt(t(1-t)) at
the end points, alpha = sqrt(1 - t^2) at t = 1), which is what closed-form fields need.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "GAMMAS",
    "PATHS",
    "Interpolant",
    "InterpolantSample",
    "Schedule",
    "as_time",
    "broadcast_like",
    "sample_times",
]

Fn = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Schedule:
    """A coefficient f(t) with f'(t) and (1/2) d/dt f^2 as functions of a tensor t."""

    value: Fn
    deriv: Fn
    half_dsq: Fn | None = None
    wiener: Schedule | None = None  # sigma(t) of gamma = sigma(t) sqrt(t), where known

    def fdf(self, t: Tensor) -> Tensor:
        """f(t) f'(t), from ``half_dsq`` when the schedule provides it."""
        if self.half_dsq is not None:
            return self.half_dsq(t)
        return self.value(t) * self.deriv(t)


def _const(c: float) -> Fn:
    return lambda t: torch.full_like(t, c)


def _schedule_from_callable(f: Callable[[Tensor], Tensor], name: str) -> Schedule:
    """Wrap a user's f(t); f'(t) by autograd (f must act elementwise on t)."""

    def value(t: Tensor) -> Tensor:
        out = f(t)
        if not isinstance(out, Tensor):
            out = torch.as_tensor(out, dtype=t.dtype, device=t.device).expand_as(t)
        return out

    def deriv(t: Tensor) -> Tensor:
        with torch.inference_mode(False), torch.enable_grad():
            tg = t.detach().clone().requires_grad_(True)
            y = value(tg)
            if not y.requires_grad:  # a constant
                return torch.zeros_like(t)
            (g,) = torch.autograd.grad(y.sum(), tg, allow_unused=True)
        return torch.zeros_like(t) if g is None else g.detach()

    return Schedule(value, deriv)


# --- alpha/beta pairs ----------------------------------------------------------------

_HALF_PI = 0.5 * math.pi


def _linear() -> tuple[Schedule, Schedule]:
    """alpha = 1 - t, beta = t (2209.15571)."""
    return Schedule(lambda t: 1 - t, _const(-1.0)), Schedule(lambda t: t, _const(1.0))


def _trig() -> tuple[Schedule, Schedule]:
    """alpha = cos(pi t / 2), beta = sin(pi t / 2) (2303.08797, trigonometric).

    Kept as is for any gamma (the authors' code rescales both by sqrt(1 - gamma^2) when
    gamma > 0; pass ``alpha=``/``beta=`` callables for that variant).
    """
    alpha = Schedule(
        lambda t: torch.cos(_HALF_PI * t), lambda t: -_HALF_PI * torch.sin(_HALF_PI * t)
    )
    beta = Schedule(lambda t: torch.sin(_HALF_PI * t), lambda t: _HALF_PI * torch.cos(_HALF_PI * t))
    return alpha, beta


def _gvp() -> tuple[Schedule, Schedule]:
    """Generalised variance preserving: beta = t, alpha = sqrt(1 - t^2), alpha^2 + beta^2 = 1.

    The one-sided form of this path is the score-based diffusion (VP) interpolant
    x_t = sqrt(1 - t^2) z + t x1 of 2303.08797; alpha' is singular at t = 1, alpha alpha' = -t.
    (SiT, arXiv 2401.08740, calls cos/sin "GVP"; that path is "trig" here.)
    """
    alpha = Schedule(
        lambda t: torch.sqrt((1 - t * t).clamp_min(0)),
        lambda t: -t / torch.sqrt((1 - t * t).clamp_min(1e-30)),
        lambda t: -t,
    )
    return alpha, Schedule(lambda t: t, _const(1.0))


_VP_BMIN, _VP_BMAX = 0.1, 20.0


def _vp() -> tuple[Schedule, Schedule]:
    r"""Variance-preserving diffusion schedule (Song et al. arXiv 2011.13456) in interpolant time.

    beta(t) = exp(-(1/4)(1-t)^2 (b_max - b_min) - (1/2)(1-t) b_min), alpha = sqrt(1 - beta^2),
    b_min = 0.1, b_max = 20. As for diffusion models, the t = 0 conditions hold only up to
    beta(0) = exp(-5.025) ~ 6.6e-3.
    """

    def log_beta(t: Tensor) -> Tensor:
        s = 1 - t
        return -0.25 * s * s * (_VP_BMAX - _VP_BMIN) - 0.5 * s * _VP_BMIN

    def dlog_beta(t: Tensor) -> Tensor:
        return 0.5 * (1 - t) * (_VP_BMAX - _VP_BMIN) + 0.5 * _VP_BMIN

    def beta(t: Tensor) -> Tensor:
        return torch.exp(log_beta(t))

    def dbeta(t: Tensor) -> Tensor:
        return beta(t) * dlog_beta(t)

    def alpha(t: Tensor) -> Tensor:
        return torch.sqrt((-torch.expm1(2 * log_beta(t))).clamp_min(0))

    def dalpha(t: Tensor) -> Tensor:
        b2 = torch.exp(2 * log_beta(t))
        return -b2 * dlog_beta(t) / torch.sqrt((1 - b2).clamp_min(1e-30))

    def half_dsq_alpha(t: Tensor) -> Tensor:
        return -torch.exp(2 * log_beta(t)) * dlog_beta(t)

    return Schedule(alpha, dalpha, half_dsq_alpha), Schedule(beta, dbeta)


def _encdec() -> tuple[Schedule, Schedule]:
    r"""Encoder-decoder (2303.08797): alpha = cos^2(pi t) if t < 1/2, beta = cos^2(pi t) if t > 1/2.

    x_t passes through pure noise gamma(1/2) z at t = 1/2; use with gamma > 0 there.
    """

    def c2(t: Tensor) -> Tensor:
        return torch.cos(math.pi * t).square()

    def dc2(t: Tensor) -> Tensor:
        return -math.pi * torch.sin(2 * math.pi * t)

    first, second = (lambda t: t < 0.5), (lambda t: t > 0.5)
    zero = torch.zeros_like
    alpha = Schedule(
        lambda t: torch.where(first(t), c2(t), zero(t)),
        lambda t: torch.where(first(t), dc2(t), zero(t)),
    )
    beta = Schedule(
        lambda t: torch.where(second(t), c2(t), zero(t)),
        lambda t: torch.where(second(t), dc2(t), zero(t)),
    )
    return alpha, beta


def _quadratic() -> tuple[Schedule, Schedule]:
    """alpha = 1 - t, beta = t^2: the forecasting path of arXiv 2403.13724, whose beta'(0) = 0
    keeps the loss and its gradients tame at t = 0."""
    return Schedule(lambda t: 1 - t, _const(-1.0)), Schedule(lambda t: t * t, lambda t: 2 * t)


PATHS: dict[str, Callable[[], tuple[Schedule, Schedule]]] = {
    "linear": _linear,
    "quadratic": _quadratic,
    "trig": _trig,
    "vp": _vp,
    "gvp": _gvp,
    "encdec": _encdec,
}

# --- gamma choices -------------------------------------------------------------------


def _gamma_zero(a: float) -> Schedule:
    return Schedule(torch.zeros_like, torch.zeros_like, torch.zeros_like)


def _gamma_brownian(a: float) -> Schedule:
    """gamma = sqrt(a t (1 - t)), gamma gamma' = a (1 - 2t) / 2 (2303.08797)."""
    return Schedule(
        lambda t: torch.sqrt((a * t * (1 - t)).clamp_min(0)),
        lambda t: a * (1 - 2 * t) / (2 * torch.sqrt((a * t * (1 - t)).clamp_min(1e-30))),
        lambda t: 0.5 * a * (1 - 2 * t),
    )


def _gamma_bsquared(a: float) -> Schedule:
    """gamma = a t (1 - t)."""
    return Schedule(lambda t: a * t * (1 - t), lambda t: a * (1 - 2 * t))


def _gamma_sinesquared(a: float) -> Schedule:
    """gamma = a sin^2(pi t)."""
    return Schedule(
        lambda t: a * torch.sin(math.pi * t).square(),
        lambda t: a * math.pi * torch.sin(2 * math.pi * t),
    )


def _gamma_sigmoid(a: float) -> Schedule:
    r"""gamma = a s(f) s(-f) with s the logistic function and f = 10 (t - 1/2): a bump at 1/2.

    Shifted so that gamma(0) = gamma(1) = 0 exactly: gamma = a (h(t) - h(0)), h = s(f) s(-f);
    its peak is a (1/4 - h(0)) ~ 0.24 a. (This package's own smooth bump, not the authors'.)
    """
    k = 10.0
    h0 = math.exp(-0.5 * k) / (1 + math.exp(-0.5 * k)) ** 2

    def h(t: Tensor) -> Tensor:
        f = k * (t - 0.5)
        return torch.sigmoid(f) * torch.sigmoid(-f)

    def dh(t: Tensor) -> Tensor:
        f = k * (t - 0.5)
        s = torch.sigmoid(f)
        return k * s * (1 - s) * (1 - 2 * s)

    return Schedule(lambda t: a * (h(t) - h0), lambda t: a * dh(t))


def _gamma_wiener(a: float) -> Schedule:
    r"""gamma = a (1 - t) sqrt(t): the noise sigma(t) W_t of a Wiener process W with sigma(t) =
    a (1 - t), the forecasting interpolant x_t = alpha x0 + beta x1 + sigma(t) W_t of arXiv
    2403.13724 seen at a fixed t (W_t ~ sqrt(t) z); gamma gamma' = a^2 (1 - t)(1 - 3t) / 2."""
    root = lambda t: torch.sqrt(t.clamp_min(0))  # noqa: E731
    sigma = Schedule(lambda t: a * (1 - t), _const(-a))
    return Schedule(
        lambda t: a * (1 - t) * root(t),
        lambda t: a * (1 - 3 * t) / (2 * torch.sqrt(t.clamp_min(1e-30))),
        lambda t: 0.5 * a * a * (1 - t) * (1 - 3 * t),
        wiener=sigma,
    )


GAMMAS: dict[str, Callable[[float], Schedule]] = {
    "zero": _gamma_zero,
    "brownian": lambda a: _gamma_brownian(1.0),
    "a-brownian": _gamma_brownian,
    "bsquared": _gamma_bsquared,
    "sinesquared": _gamma_sinesquared,
    "sigmoid": _gamma_sigmoid,
    "wiener": _gamma_wiener,
}

_DEFAULT_GAMMA = {"encdec": "sinesquared"}


@dataclass(frozen=True)
class InterpolantSample:
    """One draw of the interpolant: x_t and its time derivative, with what built them."""

    t: Tensor
    x0: Tensor
    x1: Tensor
    z: Tensor
    xt: Tensor
    dxt: Tensor


def as_time(t: Tensor | float, x: Tensor, name: str = "t") -> Tensor:
    """t as a (batch,) tensor in x's dtype/device; ValueError outside [0, 1] or wrong size."""
    if isinstance(t, Tensor):
        t = t.to(dtype=x.dtype, device=x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        elif t.shape != x.shape[:1]:
            raise ValueError(
                f"{name} must be a float or have shape ({x.shape[0]},), got {tuple(t.shape)}"
            )
    else:
        t = torch.full(x.shape[:1], float(t), dtype=x.dtype, device=x.device)
    if bool(((t < 0) | (t > 1)).any()):
        raise ValueError(f"{name} must lie in [0, 1], got values in [{t.min():.4g}, {t.max():.4g}]")
    return t


def broadcast_like(c: Tensor, x: Tensor) -> Tensor:
    """c of shape (batch,) (a coefficient per sample) reshaped to broadcast against x."""
    return c.reshape(c.shape + (1,) * (x.ndim - c.ndim))


class Interpolant:
    r"""x_t = alpha(t) x0 + beta(t) x1 + gamma(t) z, z ~ N(0, I) (arXiv 2303.08797).

    Arguments:
        path: "linear" (alpha = 1 - t, beta = t), "quadratic" (alpha = 1 - t, beta = t^2, for
            forecasting), "trig", "vp", "gvp" or "encdec"; ignored when ``alpha`` and ``beta``
            are given.
        gamma: "zero" (the default, deterministic interpolant; with a Gaussian x0 it is the
            one-sided interpolant), "brownian" (sqrt(t(1-t))), "a-brownian" (sqrt(a t(1-t))),
            "bsquared" (a t(1-t)), "sinesquared" (a sin^2(pi t)), "sigmoid", "wiener" (a (1 - t)
            sqrt(t): sigma(t) W_t with sigma = a (1 - t), for forecasting), or a callable of t.
        a: the scale of the gamma choices that take one.
        alpha, beta: callables of t for a custom path (derivatives by autograd).

    Example:
        >>> I = Interpolant("trig", gamma="brownian")
        >>> s = I.sample(torch.randn(8, 2), torch.randn(8, 2), torch.rand(8))
        >>> s.xt.shape, s.dxt.shape
        (torch.Size([8, 2]), torch.Size([8, 2]))
    """

    def __init__(
        self,
        path: str = "linear",
        gamma: str | Callable[[Tensor], Tensor] | None = None,
        *,
        a: float = 1.0,
        alpha: Callable[[Tensor], Tensor] | None = None,
        beta: Callable[[Tensor], Tensor] | None = None,
    ):
        if (alpha is None) != (beta is None):
            raise ValueError("alpha and beta must be given together for a custom path")
        if a <= 0:
            raise ValueError(f"a must be positive, got {a!r}")
        if alpha is not None:
            self.path = "custom"
            self._alpha = _schedule_from_callable(alpha, "alpha")
            self._beta = _schedule_from_callable(beta, "beta")  # type: ignore[arg-type]
        else:
            if path not in PATHS:
                raise ValueError(f"path must be one of {sorted(PATHS)}, got {path!r}")
            self.path = path
            self._alpha, self._beta = PATHS[path]()
        if gamma is None:
            gamma = _DEFAULT_GAMMA.get(self.path, "zero")
        if callable(gamma):
            self.gamma_name = "custom"
            self._gamma = _schedule_from_callable(gamma, "gamma")
        else:
            if gamma not in GAMMAS:
                raise ValueError(
                    f"gamma must be one of {sorted(GAMMAS)} or a callable, got {gamma!r}"
                )
            self.gamma_name = gamma
            self._gamma = GAMMAS[gamma](a)
        self.a = a
        if self.path == "custom" or self.gamma_name == "custom":
            self._check_boundary()

    def _check_boundary(self) -> None:
        ends = torch.tensor([0.0, 1.0], dtype=torch.float64)
        want = {"alpha": (1.0, 0.0), "beta": (0.0, 1.0), "gamma": (0.0, 0.0)}
        for name, sched in (("alpha", self._alpha), ("beta", self._beta), ("gamma", self._gamma)):
            got = sched.value(ends).tolist()
            if any(abs(g - w) > 1e-6 for g, w in zip(got, want[name], strict=True)):
                raise ValueError(
                    f"{name} must satisfy {name}(0) = {want[name][0]}, "
                    f"{name}(1) = {want[name][1]}; "
                    f"got {got[0]:.4g}, {got[1]:.4g}"
                )

    def noise_scale(self, t: Tensor) -> Tensor:
        """The scale of the noise the denoiser predicts: gamma(t), or alpha(t) when gamma = 0
        (the one-sided interpolant, whose noise is x0 ~ N(0, I)). t unchecked: internal use."""
        return (self._alpha if self.is_deterministic else self._gamma).value(t)

    def spec(self) -> dict[str, object]:
        """The constructor arguments of a named interpolant: Interpolant(**spec) rebuilds it."""
        if "custom" in (self.path, self.gamma_name):
            raise ValueError("an interpolant built from callables has no spec and cannot be saved")
        return {"path": self.path, "gamma": self.gamma_name, "a": self.a}

    @property
    def is_deterministic(self) -> bool:
        """True when gamma = 0: with a Gaussian x0 this is the one-sided interpolant."""
        return self.gamma_name == "zero"

    def __repr__(self) -> str:
        extra = (
            f", a={self.a}"
            if self.gamma_name in ("a-brownian", "bsquared", "sinesquared", "wiener")
            else ""
        )
        return f"Interpolant({self.path!r}, gamma={self.gamma_name!r}{extra})"

    # coefficient access: floats or tensors of t
    def _eval(self, f: Fn, t: Tensor | float) -> Tensor:
        tt = torch.as_tensor(t, dtype=t.dtype if isinstance(t, Tensor) else torch.float64)
        if bool(((tt < 0) | (tt > 1)).any()):
            raise ValueError(
                f"t must lie in [0, 1], got values in [{tt.min():.4g}, {tt.max():.4g}]"
            )
        return f(tt)

    def alpha(self, t: Tensor | float) -> Tensor:
        return self._eval(self._alpha.value, t)

    def beta(self, t: Tensor | float) -> Tensor:
        return self._eval(self._beta.value, t)

    def gamma(self, t: Tensor | float) -> Tensor:
        return self._eval(self._gamma.value, t)

    def dalpha(self, t: Tensor | float) -> Tensor:
        return self._eval(self._alpha.deriv, t)

    def dbeta(self, t: Tensor | float) -> Tensor:
        return self._eval(self._beta.deriv, t)

    def dgamma(self, t: Tensor | float) -> Tensor:
        return self._eval(self._gamma.deriv, t)

    def alpha_dalpha(self, t: Tensor | float) -> Tensor:
        """alpha alpha' = (1/2) d/dt alpha^2, finite where alpha' is not."""
        return self._eval(self._alpha.fdf, t)

    def beta_dbeta(self, t: Tensor | float) -> Tensor:
        return self._eval(self._beta.fdf, t)

    def sigma(self, t: Tensor | float) -> Tensor:
        """sigma(t) of the interpolant read as x_t = alpha x0 + beta x1 + sigma(t) W_t (W a
        Wiener process, W_t ~ sqrt(t) z): sigma = gamma / sqrt(t), exact for gamma="wiener"
        (arXiv 2403.13724); at t = 0 the limit t -> 0+ for the named gammas."""
        return self._eval(self._sigma_value, t)

    def dsigma(self, t: Tensor | float) -> Tensor:
        """sigma'(t) (:meth:`sigma`): sigma' sqrt(t) = gamma' - gamma / (2 t)."""
        return self._eval(self._sigma_deriv, t)

    def _sigma_value(self, t: Tensor) -> Tensor:
        if self._gamma.wiener is not None:
            return self._gamma.wiener.value(t)
        tiny = torch.finfo(t.dtype).tiny ** 0.5
        return self._gamma.value(t.clamp_min(tiny)) / torch.sqrt(t.clamp_min(tiny))

    def _sigma_deriv(self, t: Tensor) -> Tensor:
        if self._gamma.wiener is not None:
            return self._gamma.wiener.deriv(t)
        tc = t.clamp_min(torch.finfo(t.dtype).eps)
        root = torch.sqrt(tc)
        return (self._gamma.deriv(tc) - self._gamma.value(tc) / (2 * tc)) / root

    def gamma_dgamma(self, t: Tensor | float) -> Tensor:
        """gamma gamma' = (1/2) d/dt gamma^2, finite at t = 0, 1 for the Brownian gamma."""
        return self._eval(self._gamma.fdf, t)

    def sample(
        self,
        x0: Tensor,
        x1: Tensor,
        t: Tensor | float,
        z: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        antithetic: bool = False,
    ) -> InterpolantSample:
        r"""Draw x_t = alpha x0 + beta x1 + gamma z and dx_t/dt = alpha' x0 + beta' x1 + gamma' z.

        Arguments:
            x0, x1: (batch, *event) end points (x0 at t = 0).
            t: a float or (batch,) times in [0, 1].
            z: the noise, drawn from N(0, I) when None (ignored when gamma = 0).
            antithetic: return 2 batch rows per input, with z and -z, the variance reduction
                for the gamma' z term of 2303.08797 (the losses average over the pair).
        """
        if x0.shape != x1.shape:
            raise ValueError(
                f"x0 and x1 must have the same shape, got {tuple(x0.shape)} and {tuple(x1.shape)}"
            )
        if x0.ndim < 2:
            raise ValueError(f"x0 must have shape (batch, *event), got {tuple(x0.shape)}")
        t = as_time(t, x0)
        if z is None:
            z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        elif z.shape != x0.shape:
            raise ValueError(f"z must have the shape of x0 {tuple(x0.shape)}, got {tuple(z.shape)}")
        if antithetic:
            x0, x1, t, z = (
                torch.cat([x0, x0]),
                torch.cat([x1, x1]),
                torch.cat([t, t]),
                torch.cat([z, -z]),
            )
        a, b = broadcast_like(self._alpha.value(t), x0), broadcast_like(self._beta.value(t), x0)
        da, db = broadcast_like(self._alpha.deriv(t), x0), broadcast_like(self._beta.deriv(t), x0)
        xt, dxt = a * x0 + b * x1, da * x0 + db * x1
        if not self.is_deterministic:
            g, dg = (
                broadcast_like(self._gamma.value(t), x0),
                broadcast_like(self._gamma.deriv(t), x0),
            )
            xt, dxt = xt + g * z, dxt + dg * z
        return InterpolantSample(t=t, x0=x0, x1=x1, z=z, xt=xt, dxt=dxt)


TIME_DISTRIBUTIONS = ("uniform", "logit-normal", "late", "early")


def sample_times(
    n: int,
    *,
    trim: float = 0.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    distribution: str = "uniform",
) -> Tensor:
    """Training times in [trim, 1 - trim], shape (n,). Trim the ends where gamma' or 1/gamma
    blow up.

    ``distribution`` weights the objective's time integral (its minimiser is unchanged):
    "uniform" t ~ U(0, 1); "logit-normal" t = sigmoid(N(0, 1)), more weight mid-way (Esser et
    al., arXiv:2403.03206); "late" t = sqrt(u), density 2t, more weight near the data end
    t = 1; "early" t = 1 - sqrt(u), density 2(1 - t). Then t -> trim + (1 - 2 trim) t.
    """
    if not 0.0 <= trim < 0.5:
        raise ValueError(f"trim must lie in [0, 0.5), got {trim!r}")
    if distribution == "logit-normal":
        t = torch.randn(n, generator=generator, dtype=dtype, device=device).sigmoid()
    elif distribution in ("uniform", "late", "early"):
        t = torch.rand(n, generator=generator, dtype=dtype, device=device)
        if distribution == "late":
            t = t.sqrt()
        elif distribution == "early":
            t = 1 - t.sqrt()
    else:
        raise ValueError(
            f"time distribution must be one of {TIME_DISTRIBUTIONS}, got {distribution!r}"
        )
    return trim + (1 - 2 * trim) * t
