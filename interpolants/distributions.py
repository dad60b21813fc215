"""Simple densities used as bases and endpoints: standard and diagonal Gaussians, mixtures.

Every distribution here has ``sample(n, generator=None) -> (n, *event_shape)``,
``log_prob(x) -> (n,)`` (normalised, in nats) and ``event_shape``. Anything with that
surface can serve as a base; :func:`as_distribution` adapts ``torch.distributions``
objects and tensors of samples to it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from .checks import positive_int

__all__ = [
    "DiagonalNormal",
    "Distribution",
    "Empirical",
    "GaussianMixture",
    "MixtureOfGaussians",
    "StandardNormal",
    "TorchDistribution",
    "as_distribution",
    "distribution_from_spec",
    "distribution_spec",
    "is_standard_normal",
]

LOG_2PI = math.log(2 * math.pi)


@runtime_checkable
class Distribution(Protocol):
    """What a base or endpoint density must offer."""

    event_shape: torch.Size

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor: ...

    def log_prob(self, x: Tensor) -> Tensor: ...


def _check_event(x: Tensor, event_shape: torch.Size, name: str = "x") -> None:
    if tuple(x.shape[1:]) != tuple(event_shape):
        raise ValueError(
            f"{name} has shape {tuple(x.shape)}; "
            f"expected (batch, {', '.join(map(str, event_shape))})"
        )


class StandardNormal:
    r"""N(0, I) on ``event_shape``: log p(x) = -|x|^2 / 2 - (d / 2) log 2 pi.

    Example:
        >>> base = StandardNormal((2,))
        >>> base.log_prob(torch.zeros(1, 2))
        tensor([-1.8379])
    """

    def __init__(
        self,
        event_shape: int | Sequence[int],
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ):
        shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
        if not shape or any(int(s) < 1 for s in shape):
            raise ValueError(f"event_shape must be positive sizes, got {event_shape!r}")
        self.event_shape = torch.Size(shape)
        self.dtype = dtype
        self.device = torch.device(device) if device is not None else torch.device("cpu")

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        positive_int("n", n)
        return torch.randn(
            (n, *self.event_shape), generator=generator, dtype=self.dtype, device=self.device
        )

    def log_prob(self, x: Tensor) -> Tensor:
        _check_event(x, self.event_shape)
        d = self.event_shape.numel()
        return -0.5 * x.flatten(1).square().sum(1) - 0.5 * d * LOG_2PI


class DiagonalNormal:
    r"""N(mean, diag(std^2)) on vectors: log p(x) = sum_i log N(x_i; m_i, s_i^2)."""

    def __init__(self, mean: Tensor, std: Tensor | float):
        mean = torch.as_tensor(mean)
        if mean.ndim != 1:
            raise ValueError(f"mean must have shape (d,), got {tuple(mean.shape)}")
        std = torch.as_tensor(std, dtype=mean.dtype).expand_as(mean).clone()
        if not torch.all(std > 0):
            raise ValueError("std must be positive")
        self.mean, self.std = mean, std
        self.event_shape = torch.Size(mean.shape)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        positive_int("n", n)
        z = torch.randn((n, *self.event_shape), generator=generator, dtype=self.mean.dtype)
        return self.mean + self.std * z.to(self.mean.device)

    def log_prob(self, x: Tensor) -> Tensor:
        _check_event(x, self.event_shape)
        u = (x - self.mean) / self.std
        return -0.5 * (u.square() + LOG_2PI).sum(1) - self.std.log().sum()


class MixtureOfGaussians:
    r"""sum_k w_k N(m_k, diag(s_k^2)) on vectors: a normalised density with ``sample``.

    Also ``interpolants.GaussianMixture`` (an alias kept for the README and older code); the
    unnormalised *target* of the samplers is the other class,
    :class:`interpolants.targets.GaussianMixture`, which holds one of these.

    Arguments:
        means: (k, d) component means.
        stds: (k,) isotropic or (k, d) per-dimension standard deviations.
        weights: (k,) non-negative weights (normalised here); None for equal weights.
    """

    def __init__(self, means: Tensor, stds: Tensor | float, weights: Tensor | None = None):
        means = torch.as_tensor(means)
        if means.ndim != 2:
            raise ValueError(f"means must have shape (k, d), got {tuple(means.shape)}")
        k, d = means.shape
        stds = torch.as_tensor(stds, dtype=means.dtype, device=means.device)
        if stds.ndim == 0:
            stds = stds.expand(k)
        if stds.ndim == 1:
            if stds.shape[0] != k:
                raise ValueError(
                    f"stds must have shape ({k},) or ({k}, {d}), got {tuple(stds.shape)}"
                )
            stds = stds[:, None].expand(k, d)
        if stds.shape != (k, d):
            raise ValueError(f"stds must have shape ({k},) or ({k}, {d}), got {tuple(stds.shape)}")
        if not torch.all(stds > 0):
            raise ValueError("stds must be positive")
        if weights is None:
            weights = torch.full((k,), 1.0 / k, dtype=means.dtype, device=means.device)
        weights = torch.as_tensor(weights, dtype=means.dtype, device=means.device)
        if weights.shape != (k,) or torch.any(weights < 0) or weights.sum() <= 0:
            raise ValueError(f"weights must be {k} non-negative numbers with a positive sum")
        self.means, self.stds = means, stds.contiguous()
        self.weights = weights / weights.sum()
        self.event_shape = torch.Size((d,))

    def component_log_prob(self, x: Tensor) -> Tensor:
        """log w_k + log N(x; m_k, s_k^2) for every component: (n, k)."""
        _check_event(x, self.event_shape)
        u = (x[:, None, :] - self.means) / self.stds
        log_n = -0.5 * (u.square() + LOG_2PI).sum(-1) - self.stds.log().sum(-1)
        return log_n + self.weights.log()

    def log_prob(self, x: Tensor) -> Tensor:
        return torch.logsumexp(self.component_log_prob(x), dim=1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        positive_int("n", n)
        dev = self.means.device
        idx = torch.multinomial(self.weights.cpu(), n, replacement=True, generator=generator)
        z = torch.randn((n, *self.event_shape), generator=generator, dtype=self.means.dtype)
        idx, z = idx.to(dev), z.to(dev)
        return self.means[idx] + self.stds[idx] * z


GaussianMixture = MixtureOfGaussians
"""The former name of :class:`MixtureOfGaussians`, kept as an alias."""


class Empirical:
    """Samples given as a tensor: drawn uniformly with replacement; no density."""

    def __init__(self, samples: Tensor):
        if samples.ndim < 2 or samples.shape[0] < 1:
            raise ValueError(
                f"base samples must have shape (n, *event), got {tuple(samples.shape)}"
            )
        self.samples = samples
        self.event_shape = torch.Size(samples.shape[1:])

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        positive_int("n", n)
        idx = torch.randint(self.samples.shape[0], (n,), generator=generator)
        return self.samples[idx.to(self.samples.device)]

    def log_prob(self, x: Tensor) -> Tensor:
        raise ValueError(
            "base was given as samples and has no density: pass a distribution as base"
        )


class TorchDistribution:
    """Adapts a ``torch.distributions.Distribution`` (which takes no generator).

    With a generator, a seed is drawn from it and the draw is made under that seed with the
    global generator forked, so runs stay reproducible and global state is untouched.
    """

    def __init__(self, dist: torch.distributions.Distribution):
        self.dist = dist
        self.event_shape = torch.Size(dist.batch_shape + dist.event_shape)
        if len(self.event_shape) == 0:
            raise ValueError("base distribution must have a non-scalar event (use Independent)")

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        positive_int("n", n)
        if generator is None:
            return self.dist.sample((n,))
        seed = int(torch.randint(2**62, (1,), generator=generator))
        # manual_seed also seeds every CUDA device: fork theirs too once CUDA is in use
        cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        with torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if cuda else []):
            torch.manual_seed(seed)
            return self.dist.sample((n,))

    def log_prob(self, x: Tensor) -> Tensor:
        _check_event(x, self.event_shape)
        lp = self.dist.log_prob(x)
        return lp.flatten(1).sum(1) if lp.ndim > 1 else lp


def as_distribution(base: object) -> Distribution:
    """Turn a base given as a distribution, a ``torch.distributions`` object or samples into
    something with ``sample(n, generator)`` and ``log_prob(x)``."""
    if isinstance(base, Tensor):
        return Empirical(base)
    if isinstance(base, torch.distributions.Distribution):
        return TorchDistribution(base)
    if callable(getattr(base, "sample", None)) and hasattr(base, "event_shape"):
        return base  # type: ignore[return-value]
    raise TypeError(
        "base must be None, a Tensor of samples, a torch.distributions.Distribution or an object "
        f"with sample(n, generator) and log_prob(x); got {type(base).__name__}"
    )


def is_standard_normal(dist: object) -> bool:
    """True when ``dist`` is N(0, I), so the score follows from the velocity."""
    if isinstance(dist, StandardNormal):
        return True
    if isinstance(dist, DiagonalNormal):
        return bool(torch.all(dist.mean == 0) and torch.all(dist.std == 1))
    if isinstance(dist, MixtureOfGaussians):
        one = len(dist.weights) == 1
        return one and bool(torch.all(dist.means == 0) and torch.all(dist.stds == 1))
    if isinstance(dist, TorchDistribution):
        d = dist.dist
        while isinstance(d, torch.distributions.Independent):
            d = d.base_dist
        if isinstance(d, torch.distributions.Normal):
            return bool(torch.all(d.loc == 0) and torch.all(d.scale == 1))
        if isinstance(d, torch.distributions.MultivariateNormal):
            eye = torch.eye(d.loc.shape[-1], dtype=d.loc.dtype, device=d.loc.device)
            return bool(torch.all(d.loc == 0) and torch.allclose(d.covariance_matrix, eye))
    return False


# --- descriptions by data, for safe checkpoints ---------------------------------------------

_TORCH_PARAMS = {"MultivariateNormal": ("loc", "scale_tril")}  # one of several parametrisations


def _torch_spec(dist: torch.distributions.Distribution) -> dict[str, object]:
    name = type(dist).__name__
    if getattr(torch.distributions, name, None) is not type(dist):
        raise TypeError(f"{name} is not a torch.distributions class")
    if isinstance(dist, torch.distributions.Independent):
        return {
            "class": name,
            "base_distribution": _torch_spec(dist.base_dist),
            "reinterpreted_batch_ndims": dist.reinterpreted_batch_ndims,
        }
    keys = _TORCH_PARAMS.get(name) or [k for k in dist.arg_constraints if k in vars(dist)]
    spec = {"class": name, **{k: getattr(dist, k) for k in keys}}
    try:  # only a description that rebuilds the distribution is kept
        _torch_from_spec(spec)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{name} cannot be described by its parameters ({err})") from err
    return spec


def _torch_from_spec(spec: dict[str, object]) -> torch.distributions.Distribution:
    options = dict(spec)
    cls = getattr(torch.distributions, str(options.pop("class")), None)
    if not (isinstance(cls, type) and issubclass(cls, torch.distributions.Distribution)):
        raise ValueError(f"unknown torch distribution {spec.get('class')!r}")
    if "base_distribution" in options:
        options["base_distribution"] = _torch_from_spec(options["base_distribution"])  # type: ignore[arg-type]
    return cls(**options)


def distribution_spec(dist: object) -> dict[str, object]:
    """A description of ``dist`` by tensors and plain data, rebuilt by
    :func:`distribution_from_spec`; a TypeError for a distribution it cannot describe."""
    if isinstance(dist, StandardNormal):
        return {
            "kind": "StandardNormal",
            "event_shape": list(dist.event_shape),
            "dtype": dist.dtype,
        }
    if isinstance(dist, DiagonalNormal):
        return {"kind": "DiagonalNormal", "mean": dist.mean, "std": dist.std}
    if isinstance(dist, MixtureOfGaussians):
        # the kind keeps the class's former name: checkpoints stay readable both ways
        return {"kind": "GaussianMixture", "means": dist.means, "stds": dist.stds,
                "weights": dist.weights}  # fmt: skip
    if isinstance(dist, Empirical):
        return {"kind": "Empirical", "samples": dist.samples}
    if isinstance(dist, TorchDistribution):
        try:
            return {"kind": "torch", "distribution": _torch_spec(dist.dist)}
        except TypeError as err:
            raise TypeError(f"base {type(dist.dist).__name__} cannot be saved: {err}") from err
    raise TypeError(
        f"base {type(dist).__name__} cannot be saved (only StandardNormal, DiagonalNormal, "
        "MixtureOfGaussians, samples and torch.distributions can): pass it again to load(base=...)"
    )


def distribution_from_spec(spec: dict[str, object]) -> Distribution:
    """The distribution that :func:`distribution_spec` described."""
    kind = spec.get("kind")
    if kind == "StandardNormal":
        return StandardNormal(spec["event_shape"], dtype=spec["dtype"])  # type: ignore[arg-type]
    if kind == "DiagonalNormal":
        return DiagonalNormal(spec["mean"], spec["std"])  # type: ignore[arg-type]
    if kind == "GaussianMixture":
        return MixtureOfGaussians(spec["means"], spec["stds"], spec["weights"])  # type: ignore[arg-type]
    if kind == "Empirical":
        return Empirical(spec["samples"])  # type: ignore[arg-type]
    if kind == "torch":
        return TorchDistribution(_torch_from_spec(spec["distribution"]))  # type: ignore[arg-type]
    raise ValueError(f"unknown base distribution kind {kind!r}")
