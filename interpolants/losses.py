r"""Quadratic objectives whose unique minimisers are the interpolant's fields (arXiv 2303.08797).

Over t ~ U(0, 1), (x0, x1) and z:

- velocity:  L_b(b)     = E[ |b(t, x_t)|^2 - 2 dx_t/dt . b(t, x_t) ]      -> b = E[dx_t | x_t]
- denoiser:  L_eta(eta) = E[ |eta(t, x_t)|^2 - 2 z . eta(t, x_t) ]        -> eta = E[z | x_t]
- score:     L_s(s)     = E[ |s(t, x_t)|^2 + 2 gamma^{-1} z . s(t, x_t) ] -> s = -E[z | x_t] / gamma

For the one-sided interpolant (gamma = 0, x0 ~ N(0, I)) the noise is x0 and gamma is alpha.
Each is |f - target|^2 less E|target|^2, a constant: the minimum of L_b is -E|b(t, x_t)|^2.
The functions return the batch mean (``reduction="mean"``) or per-sample values ("none").

What :func:`~interpolants.fit` descends is an :class:`Objective` object: the loop draws the
end points from a coupling (:mod:`interpolants.couplings`) and calls ``objective.loss``, so a
new objective (the flow maps of :mod:`interpolants.flowmaps`) arrives as a class, not as an
edit of the loop.
:class:`InterpolantObjective` sums the quadratic objectives above over t;
:class:`MaxLikelihood` is the maximum-likelihood baseline through the ODE.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from .couplings import Coupling, CouplingSample, Paired
from .generative import GenerativeModel
from .interpolant import TIME_DISTRIBUTIONS, Interpolant, InterpolantSample, sample_times
from .interpolant import broadcast_like as _bcast

__all__ = [
    "FIELDS",
    "InterpolantObjective",
    "LossTerms",
    "MaxLikelihood",
    "Objective",
    "call_field",
    "denoiser_loss",
    "drift_loss",
    "field_loss",
    "score_loss",
    "velocity_loss",
]

FIELDS = ("velocity", "score", "denoiser", "drift")


def _reduce(per_sample: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "none":
        return per_sample
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def _check(pred: Tensor, s: InterpolantSample, name: str) -> None:
    if pred.shape != s.xt.shape:
        raise ValueError(
            f"{name} has shape {tuple(pred.shape)}; expected that of x_t {tuple(s.xt.shape)}"
        )


def _quadratic(pred: Tensor, target: Tensor, reduction: str) -> Tensor:
    """|f|^2 - 2 target . f summed over the event dimensions."""
    return _reduce((pred * (pred - 2 * target)).flatten(1).sum(1), reduction)


def velocity_loss(velocity: Tensor, sample: InterpolantSample, reduction: str = "mean") -> Tensor:
    """E |b|^2 - 2 dx_t/dt . b, minimised by b = E[dx_t/dt | x_t] (2303.08797, eq. for L_b)."""
    _check(velocity, sample, "velocity")
    return _quadratic(velocity, sample.dxt, reduction)


def _noise(interpolant: Interpolant, sample: InterpolantSample) -> Tensor:
    return sample.x0 if interpolant.is_deterministic else sample.z


def denoiser_loss(
    denoiser: Tensor, sample: InterpolantSample, interpolant: Interpolant, reduction: str = "mean"
) -> Tensor:
    """E |eta|^2 - 2 z . eta, minimised by eta = E[z | x_t] (x0 in place of z when gamma = 0)."""
    _check(denoiser, sample, "denoiser")
    return _quadratic(denoiser, _noise(interpolant, sample), reduction)


def score_loss(
    score: Tensor, sample: InterpolantSample, interpolant: Interpolant, reduction: str = "mean"
) -> Tensor:
    """E |s|^2 + 2 gamma^{-1} z . s, minimised by s = -E[z | x_t] / gamma (2303.08797).

    gamma^{-1} blows up at the end points: sample t away from them (``sample_times(trim=...)``).
    """
    _check(score, sample, "score")
    scale = _bcast(interpolant.noise_scale(sample.t), sample.xt)
    return _quadratic(score, -_noise(interpolant, sample) / scale, reduction)


def drift_loss(
    drift: Tensor, sample: InterpolantSample, interpolant: Interpolant, reduction: str = "mean"
) -> Tensor:
    r"""E |b_F|^2 - 2 R_t . b_F with R_t = alpha' x0 + beta' x1 + sigma'(t) W_t, W_t = sqrt(t) z:
    minimised by the drift b_F = E[R_t | x_t] of the SDE dX = b_F dt + sigma(t) dW that carries
    the point mass X_0 = x0 to x1's law (forecasting, arXiv 2403.13724). The Ito term sigma dW
    is the SDE's: R_t differs from dx_t/dt by sigma / (2 sqrt t) z, so b_F = b + (sigma^2 / 2) s
    stays finite at t = 0 where the velocity b of a point mass does not."""
    _check(drift, sample, "drift")
    t = sample.t
    coefficient = _bcast(interpolant.dsigma(t) * torch.sqrt(t), sample.xt)
    da, db = _bcast(interpolant.dalpha(t), sample.xt), _bcast(interpolant.dbeta(t), sample.xt)
    target = da * sample.x0 + db * sample.x1 + coefficient * sample.z
    return _quadratic(drift, target, reduction)


def field_loss(
    name: str, prediction: Tensor, sample: InterpolantSample, interpolant: Interpolant
) -> Tensor:
    """The quadratic objective of field ``name`` ("velocity", "score", "denoiser" or
    "drift"), batch mean."""
    if name == "drift":
        return drift_loss(prediction, sample, interpolant)
    if name == "velocity":
        return velocity_loss(prediction, sample)
    if name == "score":
        return score_loss(prediction, sample, interpolant)
    if name == "denoiser":
        return denoiser_loss(prediction, sample, interpolant)
    raise ValueError(f"field must be one of {FIELDS}, got {name!r}")


def call_field(net: Callable[..., Tensor], t: Tensor, x: Tensor, cond: Tensor | None) -> Tensor:
    """``net(t, x)``, or ``net(t, x, cond=cond)`` for a conditioned batch."""
    return net(t, x) if cond is None else net(t, x, cond=cond)


Nets = Mapping[str, Callable[..., Tensor]]

EVERY_ROW = slice(None)


@dataclass(frozen=True)
class LossTerms:
    """What :meth:`Objective.loss` may return instead of a scalar: the loss descended and named
    scalars that :func:`~interpolants.fit` logs beside it (e.g. unweighted residuals)."""

    loss: Tensor
    logs: Mapping[str, Tensor]


class Objective(abc.ABC):
    """What :func:`~interpolants.fit` descends: a loss of the networks on a batch of end points.

    ``fields`` names the networks it trains (a subset of :data:`FIELDS`); ``name`` is how a
    run's config records it (the class name unless set). :meth:`bind` (once, before training)
    may fill in defaults that depend on the interpolant and the coupling and refuse what does
    not fit them.

    :meth:`loss` draws everything random for the whole batch from ``generator`` and then
    evaluates the networks on ``rows`` of it only: P processes, each passing
    ``rows=slice(rank, None, P)``, then see exactly the batch of one process. It returns the
    scalar loss, or a :class:`LossTerms` with named values to log beside it (the same names on
    every step and every process). :meth:`model` says what model the trained networks make.
    """

    name: ClassVar[str] = "objective"
    conditions: ClassVar[bool] = True  # whether its networks take the data's labels as cond
    fields: tuple[str, ...]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__

    def bind(self, interpolant: Interpolant, coupling: Coupling | None) -> Objective:
        """This objective for ``interpolant`` and ``coupling``; the default returns it
        unchanged."""
        return self

    def model(self, interpolant: Interpolant, nets: Mapping[str, Any], coupling: Coupling) -> Any:
        """The model that the trained ``nets`` make with ``coupling`` (its base, or the
        conditioning); None (the default): a :class:`~interpolants.GenerativeModel` of the
        fields."""
        return None

    @abc.abstractmethod
    def loss(
        self,
        nets: Nets,
        interpolant: Interpolant,
        batch: CouplingSample,
        generator: torch.Generator | None = None,
        rows: slice = EVERY_ROW,
    ) -> Tensor | LossTerms:
        """The scalar loss of ``nets`` ({field: network}) on ``rows`` of ``batch``."""


@dataclass(frozen=True)
class InterpolantObjective(Objective):
    r"""The quadratic objectives of arXiv 2303.08797 summed over ``fields``,

        L = sum_f E_t E_{(x0, x1) ~ coupling, z ~ N(0, I)} L_f(t, x_t),

    each minimised by its field (:func:`velocity_loss`, :func:`score_loss`,
    :func:`denoiser_loss`): t from ``time_distribution`` on [trim, 1 - trim], x_t =
    alpha x0 + beta x1 + gamma z, the networks called as ``net(t, x_t)`` or
    ``net(t, x_t, cond=cond)``.

    Arguments:
        fields: any of "velocity", "score", "denoiser".
        time_distribution: "uniform", "logit-normal", "late" or "early"
            (:func:`~interpolants.sample_times`); weights the time integral, not the minimiser.
        trim: keeps t away from the end points where gamma' or 1/gamma blow up; None: 1e-3
            when gamma > 0 or a score / denoiser is trained, else 0 (fixed by :meth:`bind`).
        antithetic: average each draw over z and -z (variance reduction of the gamma' z
            term); None: on when gamma > 0.

    Example:
        >>> import torch, interpolants as si
        >>> from interpolants.couplings import CouplingSample
        >>> objective = si.losses.InterpolantObjective(fields=("velocity",))
        >>> net = lambda t, x: torch.zeros_like(x)
        >>> pair = CouplingSample(torch.zeros(4, 2), torch.ones(4, 2))
        >>> objective.loss({"velocity": net}, si.Interpolant("linear"), pair)
        tensor(0.)
    """

    name: ClassVar[str] = "interpolant"
    fields: tuple[str, ...] = ("velocity",)
    time_distribution: str = "uniform"
    trim: float | None = None
    antithetic: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", tuple(self.fields))
        bad = [f for f in self.fields if f not in FIELDS]
        if bad or not self.fields:
            raise ValueError(f"fields must be a non-empty subset of {FIELDS}, got {self.fields!r}")
        if self.time_distribution not in TIME_DISTRIBUTIONS:
            raise ValueError(
                f"time_distribution must be one of {TIME_DISTRIBUTIONS}, "
                f"got {self.time_distribution!r}"
            )
        if self.trim is not None:
            if not isinstance(self.trim, (int, float)) or isinstance(self.trim, bool):
                raise ValueError(f"trim must be a number, got {self.trim!r}")
            if not 0 <= self.trim < 0.5:
                raise ValueError(f"trim must lie in [0, 0.5), got {self.trim!r}")
        if self.antithetic not in (None, True, False):
            raise ValueError(f"antithetic must be True, False or None, got {self.antithetic!r}")

    def bind(self, interpolant: Interpolant, coupling: Coupling | None) -> InterpolantObjective:
        if "drift" in self.fields and not _point_mass(coupling, interpolant):
            raise ValueError(
                "fields with 'drift' train the forecasting drift from a point mass: pass "
                "base=si.couplings.Paired(x_now) (noise 0) and a stochastic interpolant, e.g. "
                "Interpolant('quadratic', gamma='wiener')"
            )
        trim, antithetic = self.trim, self.antithetic
        if trim is None:
            trim = 0.0 if interpolant.is_deterministic and self.fields == ("velocity",) else 1e-3
        if antithetic is None:
            antithetic = not interpolant.is_deterministic
        return dataclasses.replace(self, trim=trim, antithetic=antithetic)

    def model(self, interpolant: Interpolant, nets: Mapping[str, Any], coupling: Coupling) -> Any:
        """A :class:`~interpolants.forecasting.ForecastModel` when the drift is trained."""
        if "drift" not in self.fields:
            return None
        from .forecasting import ForecastModel

        return ForecastModel(interpolant, nets["drift"], coupling)

    def loss(
        self,
        nets: Nets,
        interpolant: Interpolant,
        batch: CouplingSample,
        generator: torch.Generator | None = None,
        rows: slice = EVERY_ROW,
    ) -> Tensor:
        bound = self if None not in (self.trim, self.antithetic) else self.bind(interpolant, None)
        x0, cond = batch.x0, batch.cond
        t = sample_times(
            x0.shape[0],
            trim=bound.trim or 0.0,
            generator=generator,
            dtype=x0.dtype,
            device=x0.device,
            distribution=self.time_distribution,
        )
        s = interpolant.sample(
            x0, batch.x1, t, generator=generator, antithetic=bool(bound.antithetic)
        )
        if cond is not None and bound.antithetic:
            cond = torch.cat([cond, cond])
        if rows != EVERY_ROW:
            s = InterpolantSample(*(getattr(s, f.name)[rows] for f in dataclasses.fields(s)))
            cond = None if cond is None else cond[rows]
        total = x0.new_zeros(())
        for name in self.fields:
            total = total + field_loss(
                name, call_field(nets[name], s.t, s.xt, cond), s, interpolant
            )
        return total


def _point_mass(coupling: Coupling | None, interpolant: Interpolant) -> bool:
    paired = isinstance(coupling, Paired) and coupling.noise == 0 and coupling.start == "coupled"
    return paired and not interpolant.is_deterministic


@dataclass(frozen=True)
class MaxLikelihood(Objective):
    r"""-E log rho_1(x1) of the flow dX = b(t, X) dt, differentiated through the ODE solver:
    log rho_1(x1) = log rho_0(X_0) - int_0^1 div b(t, X_t) dt along the ODE through x1 (the
    maximum-likelihood baseline of continuous flows, FFJORD, arXiv 1810.01367). Trains the
    velocity alone; draws nothing but the Hutchinson probes.

    Arguments:
        ode_steps: Heun steps of the likelihood ODE.
        divergence: "hutchinson" (one probe) or "exact".
        base: the density rho_0; None: the coupling's base (fixed by :meth:`bind`), N(0, I)
            when there is none.
    """

    name: ClassVar[str] = "max_likelihood"
    fields: ClassVar[tuple[str, ...]] = ("velocity",)
    ode_steps: int = 10
    divergence: str = "hutchinson"
    base: Any = None

    def __post_init__(self) -> None:
        steps = self.ode_steps
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise ValueError(f"ml_ode_steps must be a positive integer, got {steps!r}")
        if self.divergence not in ("hutchinson", "exact"):
            raise ValueError(
                f"ml_divergence must be 'hutchinson' or 'exact', got {self.divergence!r}"
            )

    def bind(self, interpolant: Interpolant, coupling: Coupling | None) -> MaxLikelihood:
        if self.base is not None or coupling is None:
            return self
        if coupling.base is None:
            raise ValueError(
                "max_likelihood needs the density of x0: a coupling whose base is known (bound "
                "to the data: coupling.bind(batch)), or MaxLikelihood(base=...)"
            )
        return dataclasses.replace(self, base=coupling.base)

    def loss(
        self,
        nets: Nets,
        interpolant: Interpolant,
        batch: CouplingSample,
        generator: torch.Generator | None = None,
        rows: slice = EVERY_ROW,
    ) -> Tensor:
        if batch.cond is not None:
            raise ValueError("max_likelihood does not condition on cond yet: use cond=None")
        model = GenerativeModel(interpolant, nets["velocity"], base=self.base)
        logp = model.log_prob(
            batch.x1[rows],
            divergence=self.divergence,
            steps=self.ode_steps,
            generator=generator,
            create_graph=True,
        )
        return -logp.mean()
